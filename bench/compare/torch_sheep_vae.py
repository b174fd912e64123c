"""The sheep VAE in PyTorch, layer for layer the model of include/ewe/models/sheep_vae.hpp
(Keras semantics: TF 'same' padding, glorot-uniform kernels, zero biases, BatchNorm
momentum 0.99 / eps 1e-3, RMSprop rho 0.9 / eps 1e-7 outside the square root, loss
2*28*28*MSE + w*KL with KL averaged over latent dimensions). Used as the reference
for speed (bench/compare/*) and for training quality (docs/tutorial.md).

    python3 torch_sheep_vae.py bench --device cpu --batch 8 --steps 30 --threads 2
    python3 torch_sheep_vae.py bench --device cuda --batch 8 --steps 200 [--compile]
    python3 torch_sheep_vae.py train --data sheep.npy --epochs 30 --csv out.csv --plant cat.npy:50
"""
import argparse
import json
import resource
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class SamePadConvTranspose(nn.Module):
    """Keras Conv2DTranspose(padding='same'): the full transposed output cropped by the
    hidden convolution's TF padding (pad_before at the start, the rest at the end).

    With torch 1.x on the CPU it is computed as the equivalent ordinary convolution (input
    dilated by the stride, padded, kernel flipped and transposed) because Debian's torch
    1.13 runs ConvTranspose2d on the CPU without oneDNN, about 8x slower for this model;
    torch 2 has oneDNN there (ConvTranspose2d at least as fast as the rewrite, issue 27),
    and on a GPU cuDNN: ConvTranspose2d itself runs. check_transpose() asserts the two agree."""

    REWRITE_ON_CPU = int(torch.__version__.split(".")[0]) < 2

    @classmethod
    def cpu_method(cls):
        return "conv2d rewrite" if cls.REWRITE_ON_CPU else "ConvTranspose2d"

    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, k, stride=stride)
        self.stride, self.k = stride, k

    def crop_before(self, h):
        return max((h - 1) * self.stride + self.k - h * self.stride, 0) // 2

    def forward(self, x):
        if x.is_cuda or not self.REWRITE_ON_CPU:
            return self.reference(x)
        return self.rewritten(x)

    def rewritten(self, x):
        s, k, h = self.stride, self.k, x.shape[-1]
        if s > 1:
            dilated = x.new_zeros(x.shape[0], x.shape[1], (h - 1) * s + 1, (h - 1) * s + 1)
            dilated[..., ::s, ::s] = x
            x = dilated
        start = k - 1 - self.crop_before(h)
        end = h * s + k - 1 - x.shape[-1] - start
        kernel = self.conv.weight.transpose(0, 1).flip(2, 3)
        return F.conv2d(F.pad(x, (start, end, start, end)), kernel, self.conv.bias)

    def reference(self, x):
        h, before = x.shape[-1], self.crop_before(x.shape[-1])
        y = self.conv(x)
        return y[..., before:before + h * self.stride, before:before + h * self.stride]


def check_transpose():
    torch.manual_seed(0)
    for stride in (1, 2):
        layer = SamePadConvTranspose(6, 5, 4, stride)
        x = torch.randn(2, 6, 9, 9)
        err = (layer.rewritten(x) - layer.reference(x)).abs().max().item()
        assert err < 1e-4, f"conv-transpose rewrite differs from ConvTranspose2d by {err} (stride {stride})"


def same_conv(cin, cout, k, stride):
    """Keras Conv2D(padding='same') for square inputs: TF's asymmetric padding."""
    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, stride=stride)

        def forward(self, x):
            h = x.shape[-1]
            out = (h + stride - 1) // stride
            total = max((out - 1) * stride + k - h, 0)
            return self.conv(F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2)))
    return Conv()


class SheepVae(nn.Module):
    def __init__(self, latent=2, filters=(10, 20, 40, 80), units=(100, 50, 25), dropout=0.1, size=28):
        super().__init__()
        layers, cin = [], 1
        for f in filters:
            layers += [same_conv(cin, f, 4, 1), nn.ReLU()]
            cin = f
        layers.append(nn.Flatten())
        width = size * size * filters[-1]
        for i, u in enumerate(units):
            layers += [nn.Linear(width, u), nn.ReLU()]
            if i + 1 < len(units):
                layers += [nn.Dropout(dropout), nn.BatchNorm1d(u, momentum=0.01, eps=1e-3)]
            width = u
        self.encoder = nn.Sequential(*layers)
        self.z_mean = nn.Linear(width, latent)
        self.z_log_var = nn.Linear(width, latent)
        dec, width = [], latent
        for i, u in enumerate(reversed(units)):
            dec += [nn.Linear(width, u), nn.ReLU()]
            if i == 0:
                dec += [nn.Dropout(dropout), nn.BatchNorm1d(u, momentum=0.01, eps=1e-3)]
            width = u
        dec += [nn.Linear(width, size * size * filters[-1]), nn.ReLU(), nn.Unflatten(1, (size, size, filters[-1]))]
        self.decoder_dense = nn.Sequential(*dec)
        convs, cin = [], filters[-1]
        for i, f in enumerate(reversed(filters)):
            convs += [SamePadConvTranspose(cin, f, 4, 2 if i == len(filters) - 1 else 1), nn.ReLU()]
            cin = f
        convs += [same_conv(cin, 1, 4, 2), nn.Sigmoid()]
        self.decoder_convs = nn.Sequential(*convs)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def decode(self, z):
        h = self.decoder_dense(z).permute(0, 3, 1, 2)  # NHWC flatten order, as Keras
        return self.decoder_convs(h)

    def forward(self, x):
        h = self.encoder[0:8](x)                   # convolutions (NCHW)
        h = h.permute(0, 2, 3, 1).flatten(1)       # flatten in NHWC order, as Keras
        h = self.encoder[9:](h)
        mean, log_var = self.z_mean(h), self.z_log_var(h)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        return self.decode(z), mean, log_var


def vae_loss(x, x_hat, mean, log_var, kl_weight):
    recon = 2 * 28 * 28 * ((x_hat - x) ** 2).flatten(1).mean(1)
    kl = (-0.5 * (1 + log_var - mean ** 2 - log_var.exp())).mean(1)
    return (recon + kl_weight * kl).mean(), recon.mean(), kl.mean()


def bench(args):
    """Median ms per training step on one fixed batch (synchronized after every step, as
    `sheep_vae bench` and bench_cuda_cuda_ops time theirs). --compile wraps the model and
    its loss in torch.compile(mode="reduce-overhead") (CUDA graphs on a GPU) and compiles
    the optimizer step."""
    if args.compile and not hasattr(torch, "compile"):
        raise SystemExit(f"--compile needs PyTorch 2.0 or later; this is {torch.__version__}")
    check_transpose()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(1)
    model = SheepVae().to(device)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    x = (torch.arange(args.batch * 784, dtype=torch.float32) * 7919 % 256 / 255).reshape(args.batch, 1, 28, 28).to(device)

    class WithLoss(nn.Module):
        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, batch):
            return vae_loss(batch, *self.vae(batch), 1.0)[0]

    loss_of = WithLoss(model)
    optimizer_step = opt.step
    if args.compile:
        loss_of = torch.compile(loss_of, mode="reduce-overhead")
        optimizer_step = torch.compile(opt.step)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, warmup_s = [], 0.0
    compile_start = time.perf_counter()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            warmup_s = time.perf_counter() - compile_start
        t0 = time.perf_counter()
        if args.compile and hasattr(torch, "compiler") and hasattr(torch.compiler, "cudagraph_mark_step_begin"):
            torch.compiler.cudagraph_mark_step_begin()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(x)
        loss.backward()
        optimizer_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    ms = statistics.median(times)
    out = {"impl": "pytorch", "mode": "compile" if args.compile else "eager", "version": torch.__version__,
           "device": args.device, "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
           "warmup_s": round(warmup_s, 2), "threads": args.threads, "ms_per_step": round(ms, 4),
           "samples_per_s": round(args.batch * 1e3 / ms, 1), "final_loss": round(loss.item(), 4),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out.update({"gpu": torch.cuda.get_device_name(device), "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version(),
                    "peak_device_mib": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)})
    print(json.dumps(out))


def roc_auc(scores, labels):
    """Probability that a random positive scores above a random negative (ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels.sum()
    neg = len(labels) - pos
    return (ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg)


def score_planted(model, x_all, plant):
    """SSE and negative-ELBO anomaly scores (decoded from the posterior mean, eval mode)
    for the training drawings plus the first N of another class, and their ROC AUC."""
    path, n = plant.rsplit(":", 1)
    other = torch.from_numpy(np.load(path)[:int(n)].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    x = torch.cat([x_all, other])
    labels = np.r_[np.zeros(len(x_all)), np.ones(len(other))]
    model.eval()
    with torch.no_grad():
        h = model.encoder[0:8](x).permute(0, 2, 3, 1).flatten(1)
        h = model.encoder[9:](h)
        mean, log_var = model.z_mean(h), model.z_log_var(h)
        sse = ((model.decode(mean) - x) ** 2).flatten(1).sum(1).double().numpy()
        kl = (-0.5 * (1 + log_var - mean ** 2 - log_var.exp())).sum(1).double().numpy()
    return {"plant": plant, "roc_auc_sse": round(roc_auc(sse, labels), 4),
            "roc_auc_neg_elbo": round(roc_auc(2 * sse + kl, labels), 4)}


def train(args):
    check_transpose()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = np.load(args.data).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    if args.limit:
        data = data[:args.limit]
    x_all = torch.from_numpy(data)
    model = SheepVae()
    opt = torch.optim.RMSprop(model.parameters(), lr=args.lr, alpha=0.9, eps=1e-7)
    rows = ["epoch,loss,recon,kl,kl_weight"]
    for epoch in range(args.epochs):
        w = 0.0 if epoch < args.kl_start else min(1.0, (epoch - args.kl_start + 1) / args.kl_steep)
        order = torch.randperm(len(x_all))
        totals = np.zeros(3)
        model.train()
        for i in range(0, len(order), args.batch):
            x = x_all[order[i:i + args.batch]]
            if len(x) < 2:
                continue
            opt.zero_grad(set_to_none=True)
            loss, recon, kl = vae_loss(x, *model(x), w)
            loss.backward()
            opt.step()
            totals += np.array([loss.item(), recon.item(), kl.item()]) * len(x)
        totals /= len(x_all)
        rows.append(f"{epoch + 1},{totals[0]:.4f},{totals[1]:.4f},{totals[2]:.4f},{w:.3f}")
        print(rows[-1], flush=True)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("\n".join(rows) + "\n")
    if args.save:
        torch.save(model.state_dict(), args.save)
    if args.plant:
        print(json.dumps(score_planted(model, x_all, args.plant)), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--device", default="cpu")
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--steps", type=int, default=30)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--compile", action="store_true", help='torch.compile(mode="reduce-overhead")')
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--limit", type=int, default=0)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--kl-start", type=int, default=10)
    t.add_argument("--kl-steep", type=int, default=10)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--csv", default="")
    t.add_argument("--save", default="", help="write the trained weights (state_dict) to this file")
    t.add_argument("--plant", default="", help="OTHER.npy:N: after training, score the data plus N drawings of another class")
    a = p.parse_args()
    bench(a) if a.cmd == "bench" else train(a)
