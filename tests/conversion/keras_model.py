"""The sheep VAE in Keras 3, layer for layer (and name for name) the model of
include/ewe/models/sheep_vae.hpp: an encoder to (z_mean, z_log_var) and a nested
decoder Model named "decoder", evaluated on z = z_mean. Used by tests/conversion/run.sh
to produce reference outputs and Keras weight files for tools/ewe_weights.py."""
import keras
from keras import layers


def build(filters=(10, 20, 40, 80), units=(100, 50, 25), latent=2, dropout=0.1, size=28, kernel=4):
    """Returns (model, decoder): model(x) -> [z_mean, z_log_var, decoder(z_mean)]."""
    counts = {}

    def name(kind):  # Keras' own naming of a fresh session: conv2d, conv2d_1, ...
        i = counts.get(kind, 0)
        counts[kind] = i + 1
        return kind if i == 0 else f"{kind}_{i}"

    x = keras.Input((size, size, 1), name="image")
    h = x
    for f in filters:
        h = layers.Conv2D(f, kernel, padding="same", activation="relu", name=name("conv2d"))(h)
    h = layers.Flatten(name=name("flatten"))(h)
    for i, u in enumerate(units):
        h = layers.Dense(u, activation="relu", name=name("dense"))(h)
        if i + 1 < len(units):
            h = layers.Dropout(dropout, name=name("dropout"))(h)
            h = layers.BatchNormalization(name=name("batch_normalization"))(h)
    z_mean = layers.Dense(latent, name="z_mean")(h)
    z_log_var = layers.Dense(latent, name="z_log_var")(h)

    z = keras.Input((latent,), name="z")
    d = z
    for i, u in enumerate(reversed(units)):
        d = layers.Dense(u, activation="relu", name=name("dense"))(d)
        if i == 0:
            d = layers.Dropout(dropout, name=name("dropout"))(d)
            d = layers.BatchNormalization(name=name("batch_normalization"))(d)
    d = layers.Dense(size * size * filters[-1], activation="relu", name=name("dense"))(d)
    d = layers.Reshape((size, size, filters[-1]), name=name("reshape"))(d)
    for i, f in enumerate(reversed(filters)):
        stride = 2 if i == len(filters) - 1 else 1
        d = layers.Conv2DTranspose(f, kernel, strides=stride, padding="same", activation="relu",
                                   name=name("conv2d_transpose"))(d)
    d = layers.Conv2D(1, kernel, strides=2, padding="same", activation="sigmoid", name=name("conv2d"))(d)
    decoder = keras.Model(z, d, name="decoder")
    model = keras.Model(x, [z_mean, z_log_var, decoder(z_mean)], name="vae")
    return model, decoder
