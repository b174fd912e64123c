"""One peer framework's training step of the seed sheep VAE on the CPU, timed as
`sheep_vae bench` times ewe's: the model of include/ewe/models/sheep_vae.hpp (12,857,845
parameters, asserted), loss 2*28*28*MSE + KL (KL averaged over the latent dimensions,
both averaged over the batch: ewe's VaeLoss), RMSprop lr 1e-3 / rho 0.9 / eps 1e-7, one
fixed batch, warm-up steps excluded, each step waited for before the clock stops.
Prints one JSON line: median, min and max ms/step, peak RSS, the versions.

Peers (bench/compare/peers.sh installs them into venvs and runs them against ewe):
  keras-tf       Keras 3 on TensorFlow, `fit` (jit_compile as Keras resolves "auto")
  keras-jax      Keras 3 on JAX, `fit` (the step jitted by XLA)
  torch-eager    PyTorch eager (bench/compare/torch_sheep_vae.py's model)
  torch-compile  the same, loss and optimizer step through torch.compile (default mode)
  torch-bf16     PyTorch eager under torch.autocast("cpu", torch.bfloat16)

    python peer_step.py torch-eager --batch 8 --steps 30 --warmup 5 --threads 2
The Keras model is tests/conversion/keras_model.py's, the PyTorch model
torch_sheep_vae.py's; both are checked layer for layer against ewe by tests/conversion."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PARAMETERS = 12_857_845  # include/ewe/models/sheep_vae.hpp, non-trainable BatchNorm statistics included
RECON_SCALE = 2.0 * 28 * 28
LEARNING_RATE, RHO, EPSILON = 1e-3, 0.9, 1e-7


def fixed_batch(batch):
    """A deterministic batch of 28x28 grey images in [0, 1], NHWC, float32."""
    import numpy as np
    return ((np.arange(batch * 784, dtype=np.int64) * 7919 % 256) / 255).astype(np.float32).reshape(batch, 28, 28, 1)


def check_parameters(peer, count):
    if count != PARAMETERS:
        sys.exit(f"peer_step.py {peer}: the model has {count:,} parameters, expected {PARAMETERS:,} (ewe's seed model)")


def keras_run(args, backend):
    """Keras `fit` over warmup + steps batches (the same images each time, no shuffling);
    a callback takes the time at the end of each batch after reading the loss, which
    waits for the step (JAX dispatches asynchronously)."""
    os.environ["KERAS_BACKEND"] = backend
    if backend == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        versions = {"keras": None, "tensorflow": tf.__version__}
    else:
        import jax
        versions = {"keras": None, "jax": jax.__version__, "jaxlib": jax.lib.__version__}
    import keras
    import numpy as np
    from keras import ops
    sys.path.insert(0, os.path.join(ROOT, "tests", "conversion"))
    import keras_model
    versions["keras"] = keras.__version__
    keras.utils.set_random_seed(1)
    full, decoder = keras_model.build()
    encoder = keras.Model(full.inputs, full.outputs[:2], name="encoder")

    class Vae(keras.Model):
        def __init__(self):
            super().__init__(name="vae")
            self.encoder, self.decoder = encoder, decoder
            self.noise = keras.random.SeedGenerator(2)

        def call(self, x, training=False):
            mean, log_var = self.encoder(x, training=training)
            z = mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=self.noise)
            return self.decoder(z, training=training), mean, log_var

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            reconstruction, mean, log_var = y_pred
            recon = RECON_SCALE * ops.mean(ops.square(ops.reshape(reconstruction - x, (ops.shape(x)[0], -1))), axis=1)
            kl = ops.mean(-0.5 * (1 + log_var - ops.square(mean) - ops.exp(log_var)), axis=1)
            return ops.mean(recon + kl)

    vae = Vae()
    vae.compile(optimizer=keras.optimizers.RMSprop(LEARNING_RATE, rho=RHO, epsilon=EPSILON))
    x = fixed_batch(args.batch)
    vae(x[:1])
    check_parameters(args.peer, vae.count_params())

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends, self.loss = [], None

        def on_train_begin(self, logs=None):
            self.ends.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            self.loss = float(logs["loss"])
            self.ends.append(time.perf_counter())

    clock = StepClock()
    data = np.concatenate([x] * (args.warmup + args.steps))
    vae.fit(data, batch_size=args.batch, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    times = [(b - a) * 1e3 for a, b in zip(clock.ends, clock.ends[1:])][args.warmup:]
    return times, clock.loss, versions, {"jit_compile": bool(vae.jit_compile)}


def torch_run(args, mode):
    """PyTorch: zero_grad, loss, backward, RMSprop step per timed step (CPU ops return
    when done). torch-compile compiles the model with its loss and the optimizer step."""
    import torch
    sys.path.insert(0, HERE)
    import torch_sheep_vae
    torch_sheep_vae.check_transpose()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    model = torch_sheep_vae.SheepVae()
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    check_parameters(args.peer, sum(p.numel() for p in model.parameters()) + buffers)
    opt = torch.optim.RMSprop(model.parameters(), lr=LEARNING_RATE, alpha=RHO, eps=EPSILON)
    x = torch.from_numpy(fixed_batch(args.batch)).permute(0, 3, 1, 2).contiguous()

    def loss_of(batch):
        return torch_sheep_vae.vae_loss(batch, *model(batch), 1.0)[0]

    optimizer_step = opt.step
    if mode == "compile":
        loss_of = torch.compile(loss_of)
        optimizer_step = torch.compile(opt.step)
    times, loss = [], None
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if mode == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_of(x)
        else:
            loss = loss_of(x)
        loss.backward()
        optimizer_step()
        if step >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    extra = {"transposed_convolution": torch_sheep_vae.SamePadConvTranspose.cpu_method()}
    return times, loss.item(), {"torch": torch.__version__}, extra


PEERS = {
    "keras-tf": lambda a: keras_run(a, "tensorflow"),
    "keras-jax": lambda a: keras_run(a, "jax"),
    "torch-eager": lambda a: torch_run(a, "eager"),
    "torch-compile": lambda a: torch_run(a, "compile"),
    "torch-bf16": lambda a: torch_run(a, "bf16"),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("peer", choices=sorted(PEERS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    for name in ("batch", "steps", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, found {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be at least 0, found {args.warmup}")
    times, loss, versions, extra = PEERS[args.peer](args)
    if len(times) != args.steps:
        sys.exit(f"peer_step.py {args.peer}: timed {len(times)} steps, expected {args.steps}")
    out = {"peer": args.peer, "versions": versions, "batch": args.batch, "steps": args.steps,
           "warmup": args.warmup, "threads": args.threads, "ms_per_step": round(statistics.median(times), 3),
           "ms_min": round(min(times), 3), "ms_max": round(max(times), 3), "final_loss": round(loss, 4),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **extra}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
