"""The framework side of tests/conversion/run.sh.

  reference.py input OUT.npy [--count 16]         16 sheep from $EWE_DATA/sheep.npy (random
                                                  bitmaps if unset) as float32 (N, 28, 28, 1)
  reference.py keras DIR --input X.npy [--filters 10,20,40,80 --units 100,50,25 --latent 2]
                                                  seed model in Keras 3 with random weights and
                                                  BatchNorm statistics: DIR/model.weights.h5,
                                                  DIR/model.keras, DIR/{z_mean,z_log_var,reconstruction}.npy
  reference.py torch DIR --input X.npy            the same with bench/compare/torch_sheep_vae.py:
                                                  DIR/state_dict.pt and the three outputs
  reference.py keras-load ORIG WEIGHTS            a fresh Keras model accepts WEIGHTS (load_weights)
                                                  and ends up with ORIG's weights, bit for bit
  reference.py torch-load ORIG STATE              the same with load_state_dict(strict=True)
  reference.py compare FRAMEWORK_DIR EWE_DIR NAME  max relative error of each output (see rel_error)
  reference.py same A.safetensors B.safetensors   the two checkpoints hold bit-identical tensors
  reference.py errors DIR WEIGHTS                 broken copies of WEIGHTS: errors name file and tensor

Outputs are NHWC like ewe's; the model runs in eval mode (no dropout, moving BatchNorm
statistics) decoded from z = z_mean."""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOLERANCE = 1e-5
OUTPUTS = ("z_mean", "z_log_var", "reconstruction")


def rel_error(a, b):
    """max |a - b| / max |b| over the whole tensor (b: the framework's output). Normalizing by
    the tensor's largest magnitude, not element by element, keeps near-zero entries (a
    sigmoid's tails, a ReLU's zeros) from dominating while any wrong element still shows."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a).max())


def make_input(args):
    rng = np.random.default_rng(7)
    data = os.environ.get("EWE_DATA", "")
    path = os.path.join(data, "sheep.npy") if data else ""
    if path and os.path.exists(path):
        raw = np.load(path, mmap_mode="r")[: args.count]
        source = f"{path} (first {len(raw)})"
    else:
        raw = (rng.random((args.count, 784)) < 0.15).astype(np.uint8) * 255
        source = "random bitmaps (EWE_DATA unset or without sheep.npy)"
    x = (np.asarray(raw, np.float32) / 255.0).reshape(-1, 28, 28, 1)
    np.save(args.out, x)
    print(f"input: {x.shape[0]} drawings from {source}")


OUTPUT_GAIN = 8.0  # the output convolution's kernel, scaled so reconstructions spread over (0, 1)


def randomize(rng, arrays_by_role, gain=1.0):
    """Non-trivial weights: biases, gammas and betas away from 0/1, moving statistics away
    from 0/1 (variance in [0.5, 2]); kernels keep their glorot draw, times `gain`."""
    out = {}
    for role, (shape, current) in arrays_by_role.items():
        if role == "kernel":
            out[role] = current * gain
        elif role == "bias":
            out[role] = rng.normal(0, 0.05, shape)
        elif role == "gamma":
            out[role] = rng.uniform(0.5, 1.5, shape)
        elif role == "beta":
            out[role] = rng.normal(0, 0.2, shape)
        elif role == "moving_mean":
            out[role] = rng.normal(0, 0.5, shape)
        elif role == "moving_variance":
            out[role] = rng.uniform(0.5, 2.0, shape)
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def keras_reference(args):
    import keras
    sys.path.insert(0, HERE)
    import keras_model
    keras.utils.set_random_seed(11)
    sizes = lambda text: tuple(int(v) for v in text.split(","))
    model, _ = keras_model.build(filters=sizes(args.filters), units=sizes(args.units), latent=args.latent)
    rng = np.random.default_rng(11)
    for layer in model.layers + model.get_layer("decoder").layers:
        w = layer.get_weights()
        if not w or isinstance(layer, keras.Model):
            continue
        roles = ("gamma", "beta", "moving_mean", "moving_variance") if len(w) == 4 else ("kernel", "bias")
        gain = OUTPUT_GAIN if layer is model.get_layer("decoder").layers[-1] else 1.0
        new = randomize(rng, {r: (a.shape, a) for r, a in zip(roles, w)}, gain)
        layer.set_weights([new[r] for r in roles])
    x = np.load(args.input)
    z_mean, z_log_var, recon = model(x, training=False)
    os.makedirs(args.dir, exist_ok=True)
    for name, a in zip(OUTPUTS, (z_mean, z_log_var, recon)):
        np.save(os.path.join(args.dir, name + ".npy"), np.asarray(a, np.float32))
    model.save_weights(os.path.join(args.dir, "model.weights.h5"))
    model.save(os.path.join(args.dir, "model.keras"))
    print(f"keras {keras.__version__} ({keras.backend.backend()}): {model.count_params():,} parameters")


def errors(args):
    """Broken inputs: each must fail with a message naming the file and the tensor."""
    import shutil
    import h5py
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import ewe_weights
    orig = args.weights
    cases = []
    missing = os.path.join(args.dir, "missing.weights.h5")
    shutil.copy(orig, missing)
    with h5py.File(missing, "a") as f:
        del f["layers/batch_normalization_1/vars/3"]
    cases.append(("missing tensor", ["import", "--from", "keras", missing, os.path.join(args.dir, "o.safetensors")],
                  ["missing.weights.h5", "batch_normalization_1", "moving_variance"]))
    shape = os.path.join(args.dir, "shape.weights.h5")
    shutil.copy(orig, shape)
    with h5py.File(shape, "a") as f:
        del f["layers/dense_1/vars/1"]
        f["layers/dense_1/vars"].create_dataset("1", data=np.zeros(7, np.float32))
    cases.append(("wrong shape", ["import", "--from", "keras", shape, os.path.join(args.dir, "o.safetensors")],
                  ["shape.weights.h5", "dense_1/bias", "(7,)", "(50,)"]))
    extra = os.path.join(args.dir, "extra.weights.h5")
    shutil.copy(orig, extra)
    with h5py.File(extra, "a") as f:
        g = f.create_group("layers/lstm/vars")
        g.attrs["name"] = "lstm"
        g.create_dataset("0", data=np.zeros((3, 3), np.float32))
    cases.append(("unknown architecture", ["import", "--from", "keras", extra, os.path.join(args.dir, "o.safetensors")],
                  ["extra.weights.h5", "lstm", "unknown architecture"]))
    failed = False
    for what, argv, needles in cases:
        import contextlib
        import io
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = ewe_weights.main(argv)
        text = err.getvalue().strip()
        ok = rc != 0 and all(n in text for n in needles)
        failed |= not ok
        print(f"error case '{what}': {'ok' if ok else 'FAIL'}: {text}")
    if failed:
        sys.exit("FAIL: an error message does not name the file and the tensor")


def keras_load(args):
    import keras
    sys.path.insert(0, HERE)
    import keras_model
    a, _ = keras_model.build()
    a.load_weights(args.orig)
    b, _ = keras_model.build()
    b.load_weights(args.weights)
    for va, vb in zip(a.weights, b.weights):
        if not np.array_equal(np.asarray(va), np.asarray(vb)):
            sys.exit(f"FAIL: {args.weights}: Keras weight {vb.path} differs from {args.orig}'s")
    print(f"keras load_weights({args.weights}): {len(b.weights)} weights, bit-identical to {args.orig}")


def torch_model():
    import torch
    sys.path.insert(0, os.path.join(ROOT, "bench", "compare"))
    import torch_sheep_vae
    torch_sheep_vae.check_transpose()
    return torch, torch_sheep_vae.SheepVae()


def torch_reference(args):
    torch, model = torch_model()
    torch.set_num_threads(2)
    torch.manual_seed(13)
    model = model.__class__()  # weights drawn after the seed
    rng = np.random.default_rng(13)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                new = randomize(rng, {r: (tuple(m.weight.shape), None) for r in
                                      ("gamma", "beta", "moving_mean", "moving_variance")})
                m.weight.copy_(torch.from_numpy(new["gamma"]))
                m.bias.copy_(torch.from_numpy(new["beta"]))
                m.running_mean.copy_(torch.from_numpy(new["moving_mean"]))
                m.running_var.copy_(torch.from_numpy(new["moving_variance"]))
            elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                if m is model.decoder_convs[-2].conv:
                    m.weight.mul_(OUTPUT_GAIN)
                m.bias.copy_(torch.from_numpy(randomize(rng, {"bias": (tuple(m.bias.shape), None)})["bias"]))
    model.eval()
    x = torch.from_numpy(np.load(args.input)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    with torch.no_grad():
        h = model.encoder[0:8](x).permute(0, 2, 3, 1).flatten(1)  # as the model's forward: NHWC flatten
        h = model.encoder[9:](h)
        z_mean, z_log_var = model.z_mean(h), model.z_log_var(h)
        recon = model.decode(z_mean).permute(0, 2, 3, 1)  # NCHW -> NHWC
    os.makedirs(args.dir, exist_ok=True)
    for name, a in zip(OUTPUTS, (z_mean, z_log_var, recon)):
        np.save(os.path.join(args.dir, name + ".npy"), a.numpy().astype(np.float32))
    torch.save(model.state_dict(), os.path.join(args.dir, "state_dict.pt"))
    print(f"torch {torch.__version__}: {sum(p.numel() for p in model.parameters()):,} parameters")


def torch_load(args):
    torch, model = torch_model()
    orig = torch.load(args.orig)
    model.load_state_dict(torch.load(args.state), strict=True)
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        if not torch.equal(v, orig[k]):
            sys.exit(f"FAIL: {args.state}: tensor {k} differs from {args.orig}'s")
    print(f"torch load_state_dict({args.state}, strict=True): bit-identical to {args.orig}")


def compare(args):
    failed = False
    for name in OUTPUTS:
        ref = np.load(os.path.join(args.framework_dir, name + ".npy"))
        got = np.load(os.path.join(args.ewe_dir, name + ".npy"))
        err = rel_error(got, ref)
        ok = err <= TOLERANCE
        failed |= not ok
        print(f"{args.name:>5} {name:<15} shape {str(ref.shape):<16} ref range [{ref.min():7.4f}, {ref.max():7.4f}] "
              f"std {ref.std():7.4f}  "
              f"max rel error {err:.3e}  {'ok' if ok else 'FAIL'} (<= {TOLERANCE:g})")
    if failed:
        sys.exit(f"FAIL: ewe's inference differs from {args.name}'s beyond {TOLERANCE:g}")


def same(args):
    from safetensors import safe_open
    with safe_open(args.a, framework="numpy") as fa, safe_open(args.b, framework="numpy") as fb:
        ka = sorted(k for k in fa.keys() if not k.startswith("optimizer/"))
        kb = sorted(k for k in fb.keys() if not k.startswith("optimizer/"))
        if ka != kb:
            sys.exit(f"FAIL: {args.a} and {args.b} hold different tensors: {set(ka) ^ set(kb)}")
        for k in ka:
            a, b = fa.get_tensor(k), fb.get_tensor(k)
            if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                sys.exit(f"FAIL: tensor {k} differs between {args.a} and {args.b}")
        ma, mb = fa.metadata(), fb.metadata()
        model_a = {k: v for k, v in ma.items() if k.startswith("model.")}
        model_b = {k: v for k, v in mb.items() if k.startswith("model.")}
        if model_a != model_b:
            sys.exit(f"FAIL: model.* metadata differs: {model_a} vs {model_b}")
    print(f"round trip: {args.b}: {len(ka)} tensors bit-identical to {args.a}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("input")
    s.add_argument("out")
    s.add_argument("--count", type=int, default=16)
    for name in ("keras", "torch"):
        s = sub.add_parser(name)
        s.add_argument("dir")
        s.add_argument("--input", required=True)
        if name == "keras":
            s.add_argument("--filters", default="10,20,40,80")
            s.add_argument("--units", default="100,50,25")
            s.add_argument("--latent", type=int, default=2)
    s = sub.add_parser("errors")
    s.add_argument("dir")
    s.add_argument("weights")
    s = sub.add_parser("keras-load")
    s.add_argument("orig")
    s.add_argument("weights")
    s = sub.add_parser("torch-load")
    s.add_argument("orig")
    s.add_argument("state")
    s = sub.add_parser("compare")
    s.add_argument("framework_dir")
    s.add_argument("ewe_dir")
    s.add_argument("name")
    s = sub.add_parser("same")
    s.add_argument("a")
    s.add_argument("b")
    args = p.parse_args()
    {"input": make_input, "keras": keras_reference, "torch": torch_reference, "keras-load": keras_load,
     "torch-load": torch_load, "errors": errors, "compare": compare, "same": same}[args.cmd](args)


if __name__ == "__main__":
    main()
