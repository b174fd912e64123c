"""Which anomaly score separates other Quick, Draw! classes from sheep best? Scores a
trained sheep VAE (an ewe checkpoint.safetensors, evaluated here by the PyTorch port of
torch_sheep_vae.py, or that port's own --save weights) on the sheep and on N drawings of
each other class, and prints one ROC AUC per class and score. The score shipped as
`sheep_vae anomalies`' ink_adjusted_sse was chosen on the development classes (every
class but cat: best mean and worst-class ROC AUC over four trained models); cat is held
out, as in the issue's planted-cats check (all N cats, and the first 50).

Candidates: sse (the post's); relative_sse = sse / (ink of x + ink of x_hat);
ink_adjusted_sse = log(1 + sse) minus its least-squares line in log(1 + ink of x), the
line fitted on the sheep (`sheep_vae anomalies --reference sheep.npy`); blurred_sse = sse
after a Gaussian blur (sigma 1 pixel) of both images; neg_elbo = 2 sse + KL; the Bernoulli
negative log-likelihood; 1 - soft Dice; KL alone; latent_density = -log of a Gaussian
kernel density (Scott's bandwidth) of the sheep's latent means, leave-one-out for the sheep.

For an ewe checkpoint it first checks that PyTorch, running ewe's weights, reproduces
the SSE that ewe's own `anomalies` wrote (--ewe-scores scores.csv), so the numbers here
are the numbers of ewe's model.

    python3 anomaly_scores.py RUN/checkpoint.safetensors --data-dir DIR --n 1000 \
        --ewe-scores ANOM/scores.csv
"""
import argparse
import csv
import json

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

import torch_sheep_vae as ref

DEV_CLASSES = ["dog", "lion", "rabbit", "bear", "duck", "fish", "monkey"]
HELD_OUT = ["cat"]


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header, base = json.loads(raw[8:8 + n]), 8 + n
    return {k: torch.from_numpy(np.frombuffer(raw[base + v["data_offsets"][0]:base + v["data_offsets"][1]],
                                              np.float32).reshape(v["shape"]).copy())
            for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32"}


def load_ewe(model, path):
    """ewe's Keras-named tensors into the PyTorch port: conv kernels OHWI -> OIHW,
    transposed-conv kernels (in, kh, kw, out) -> (in, out, kh, kw), dense (in, out) -> (out, in)."""
    t = read_safetensors(path)
    name = lambda base, i: base if i == 0 else f"{base}_{i}"
    for i, layer in enumerate(model.encoder[j].conv for j in (0, 2, 4, 6)):
        layer.weight.data, layer.bias.data = t[name("conv2d", i) + "/kernel"].permute(0, 3, 1, 2), t[name("conv2d", i) + "/bias"]
    last = model.decoder_convs[-2].conv
    last.weight.data, last.bias.data = t["conv2d_4/kernel"].permute(0, 3, 1, 2), t["conv2d_4/bias"]
    dense = [m for m in list(model.encoder) + list(model.decoder_dense) if isinstance(m, torch.nn.Linear)]
    for i, layer in enumerate(dense):
        layer.weight.data, layer.bias.data = t[name("dense", i) + "/kernel"].t(), t[name("dense", i) + "/bias"]
    for layer, key in ((model.z_mean, "z_mean"), (model.z_log_var, "z_log_var")):
        layer.weight.data, layer.bias.data = t[key + "/kernel"].t(), t[key + "/bias"]
    norms = [m for m in list(model.encoder) + list(model.decoder_dense) if isinstance(m, torch.nn.BatchNorm1d)]
    for i, layer in enumerate(norms):
        p = name("batch_normalization", i) + "/"
        layer.weight.data, layer.bias.data = t[p + "gamma"], t[p + "beta"]
        layer.running_mean.data, layer.running_var.data = t[p + "moving_mean"], t[p + "moving_variance"]
    transposed = [m for m in model.decoder_convs if isinstance(m, ref.SamePadConvTranspose)]
    for i, layer in enumerate(transposed):
        p = name("conv2d_transpose", i) + "/"
        layer.conv.weight.data, layer.conv.bias.data = t[p + "kernel"].permute(0, 3, 1, 2), t[p + "bias"]


def scores(model, x):
    with torch.no_grad():
        h = model.encoder[0:8](x).permute(0, 2, 3, 1).flatten(1)
        h = model.encoder[9:](h)
        mean, log_var = model.z_mean(h), model.z_log_var(h)
        x_hat = model.decode(mean)
    sse = ((x_hat - x) ** 2).flatten(1).sum(1)
    kl = (-0.5 * (1 + log_var - mean ** 2 - log_var.exp())).sum(1)
    ink_x = x.flatten(1).sum(1)
    p = x_hat.clamp(1e-4, 1 - 1e-4)
    blur = lambda t: gaussian_filter(t.double().numpy()[:, 0], sigma=(0, 1, 1), mode="constant")
    out = {"sse": sse, "relative_sse": sse / (ink_x + x_hat.flatten(1).sum(1)), "ink_adjusted_sse": None,
           "blurred_sse": torch.from_numpy(((blur(x_hat) - blur(x)) ** 2).reshape(len(x), -1).sum(1)),
           "neg_elbo": 2 * sse + kl,
           "bernoulli_nll": -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1),
           "1-soft_dice": sse / ((x ** 2).flatten(1).sum(1) + (x_hat ** 2).flatten(1).sum(1)),
           "kl": kl, "latent_density": None}
    out = {k: (v.double().numpy() if v is not None else None) for k, v in out.items()}
    out["_ink"], out["_mean"] = ink_x.double().numpy(), mean.double().numpy()
    return out


def finish(sheep, other):
    """Scores that need the sheep: the ink line (fitted on the sheep, as --reference) and
    the latent density of the sheep's codes."""
    x, y = np.log1p(sheep["_ink"]), np.log1p(sheep["sse"])
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    intercept = y.mean() - slope * x.mean()
    codes = sheep["_mean"]
    bandwidth = codes.std(0).mean() * len(codes) ** (-1 / (codes.shape[1] + 4))
    for s in (sheep, other):
        s["ink_adjusted_sse"] = np.log1p(s["sse"]) - intercept - slope * np.log1p(s["_ink"])
        d2 = ((s["_mean"][:, None, :] - codes[None, :, :]) ** 2).sum(-1)
        k = np.exp(-0.5 * d2 / bandwidth ** 2)
        if s is sheep:
            np.fill_diagonal(k, 0)
        s["latent_density"] = -np.log(k.sum(1) / (len(codes) - (s is sheep)) + 1e-300)


def roc_auc(normal, anomalous):
    return ref.roc_auc(np.r_[normal, anomalous], np.r_[np.zeros(len(normal)), np.ones(len(anomalous))])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model", help="ewe checkpoint.safetensors or torch_sheep_vae.py --save weights")
    p.add_argument("--data-dir", required=True, help="folder of Quick, Draw! CLASS.npy files")
    p.add_argument("--n", type=int, default=1000, help="drawings per other class")
    p.add_argument("--ewe-scores", default="", help="scores.csv of `sheep_vae anomalies` on the same sheep")
    a = p.parse_args()
    torch.set_num_threads(1)
    model = ref.SheepVae()
    if a.model.endswith(".safetensors"):
        load_ewe(model, a.model)
    else:
        model.load_state_dict(torch.load(a.model))
    model.eval()
    load = lambda c, n=None: torch.from_numpy(
        np.load(f"{a.data_dir}/{c}.npy")[:n].reshape(-1, 1, 28, 28).astype(np.float32) / 255)
    sheep = scores(model, load("sheep"))
    if a.ewe_scores:
        with open(a.ewe_scores) as f:
            ewe_sse = np.array([float(r["sse"]) for r in csv.DictReader(f) if r["planted"] == "0"])
        n = min(len(ewe_sse), len(sheep["sse"]))
        err = np.abs(ewe_sse[:n] - sheep["sse"][:n]).max()
        print(f"ewe's sse vs PyTorch on ewe's weights, {n} sheep: max |difference| {err:.2e}")
        assert err < 1e-2, "the PyTorch port does not reproduce ewe's model"
    keys = [k for k in sheep if not k.startswith("_")]
    rows = {}
    for c in DEV_CLASSES + HELD_OUT:
        other = scores(model, load(c, a.n))
        finish(sheep, other)
        rows[c] = [roc_auc(sheep[k], other[k]) for k in keys]
        if c in HELD_OUT:
            rows[c + " 50"] = [roc_auc(sheep[k], other[k][:50]) for k in keys]
    print(f"ROC AUC, 1000 sheep vs {a.n} drawings of each class")
    print("class".ljust(11) + "".join(k.rjust(17) for k in keys))
    for c in DEV_CLASSES:
        print(c.ljust(11) + "".join(f"{v:17.3f}" for v in rows[c]))
    dev = np.array([rows[c] for c in DEV_CLASSES])
    print("dev mean".ljust(11) + "".join(f"{v:17.3f}" for v in dev.mean(0)))
    print("dev worst".ljust(11) + "".join(f"{v:17.3f}" for v in dev.min(0)))
    for c in HELD_OUT:
        print(f"{c} (held)".ljust(11) + "".join(f"{v:17.3f}" for v in rows[c]))
        print(f"{c} 50".ljust(11) + "".join(f"{v:17.3f}" for v in rows[c + " 50"]))


if __name__ == "__main__":
    main()
