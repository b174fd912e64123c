#!/usr/bin/env python3
"""Weights of the sheep VAE (include/ewe/models/sheep_vae.hpp) between ewe checkpoints
(safetensors, format ewe.sheep_vae version 1, as examples/sheep_vae/src/checkpoints.cpp writes
them) and Keras 3 (.weights.h5, .keras) or PyTorch (a torch.save'd state_dict of
bench/compare/torch_sheep_vae.py's SheepVae). Layouts, names and what is converted:
docs/weights.md.

    python3 tools/ewe_weights.py import --from keras model.weights.h5 out.safetensors
    python3 tools/ewe_weights.py import --from torch state_dict.pt out.safetensors
    python3 tools/ewe_weights.py export --to keras ck.safetensors out.weights.h5 [--like model.weights.h5]
    python3 tools/ewe_weights.py export --to torch ck.safetensors out.pt

Needs numpy, h5py and safetensors; torch only for --from/--to torch. Only weights are
converted (optimizer state is not); the architecture (filters, units, latent, kernel,
image size, channels) is read from the weights."""
import argparse
import io
import json
import math
import re
import struct
import sys
import zipfile
from collections import OrderedDict

import numpy as np

FORMAT, FORMAT_VERSION = "ewe.sheep_vae", "1"
KINDS = ("conv2d", "conv2d_transpose", "dense", "batch_normalization", "z_mean", "z_log_var")
BN_ROLES = ("gamma", "beta", "moving_mean", "moving_variance")


class ConversionError(Exception):
    pass


def fail(*parts):
    raise ConversionError("".join(str(p) for p in parts))


# ---------------------------------------------------------------------------------
# The architecture: ewe's layers in order, with ewe's names and tensor shapes.

class Config:
    def __init__(self, filters, units, latent, kernel, image_size, channels, dropout=0.1, reparam="standard"):
        self.filters, self.units = list(filters), list(units)
        self.latent, self.kernel, self.image_size, self.channels = latent, kernel, image_size, channels
        self.dropout, self.reparam = dropout, reparam


def ewe_layers(c):
    """[(name, kind, {role: shape})] in ewe's order. Names follow ewe's (and Keras')
    per-kind counters over the whole model: conv2d, conv2d_1, ..., dense_3, ..."""
    counts, out = {}, []

    def add(kind, roles, name=None):
        i = counts.get(kind, 0)
        counts[kind] = i + 1
        out.append((name or (kind if i == 0 else f"{kind}_{i}"), kind, roles))

    k, cin = c.kernel, c.channels
    for f in c.filters:                                   # Conv2D kernel (filters, kh, kw, in)
        add("conv2d", {"kernel": (f, k, k, cin), "bias": (f,)})
        cin = f
    width = c.image_size * c.image_size * c.filters[-1]   # Flatten of NHWC
    for i, u in enumerate(c.units):                       # Dense kernel (in, units)
        add("dense", {"kernel": (width, u), "bias": (u,)})
        if i + 1 < len(c.units):
            add("batch_normalization", {r: (u,) for r in BN_ROLES})
        width = u
    for head in ("z_mean", "z_log_var"):
        out.append((head, head, {"kernel": (width, c.latent), "bias": (c.latent,)}))
    width = c.latent
    for i, u in enumerate(reversed(c.units)):
        add("dense", {"kernel": (width, u), "bias": (u,)})
        if i == 0:
            add("batch_normalization", {r: (u,) for r in BN_ROLES})
        width = u
    top = c.filters[-1]
    add("dense", {"kernel": (width, c.image_size * c.image_size * top), "bias": (c.image_size * c.image_size * top,)})
    cin = top
    for f in reversed(c.filters):                         # Conv2DTranspose kernel (in, kh, kw, filters)
        add("conv2d_transpose", {"kernel": (cin, k, k, f), "bias": (f,)})
        cin = f
    add("conv2d", {"kernel": (c.channels, k, k, cin), "bias": (c.channels,)})
    return out


def by_kind(layers):
    groups = {kind: [] for kind in KINDS}
    for layer in layers:
        groups[layer[1]].append(layer)
    return groups


def infer_config(groups, source):
    """The architecture from per-kind lists of {role: array} already in ewe layouts."""
    n_t, n_c, n_d = len(groups["conv2d_transpose"]), len(groups["conv2d"]), len(groups["dense"])
    if n_t == 0 or n_c != n_t + 1 or n_d < 5 or (n_d - 1) % 2 or len(groups["batch_normalization"]) != (n_d - 1) // 2 \
            or len(groups["z_mean"]) != 1 or len(groups["z_log_var"]) != 1:
        fail(source, ": not a sheep VAE (unknown architecture): found ", n_c, " Conv2D, ", n_t, " Conv2DTranspose, ",
             n_d, " Dense, ", len(groups["batch_normalization"]), " BatchNormalization, ", len(groups["z_mean"]),
             " z_mean and ", len(groups["z_log_var"]), " z_log_var layers; the sheep VAE has F + 1 Conv2D, F "
             "Conv2DTranspose, 2U + 1 Dense and U BatchNormalization layers (F filters, U units), one z_mean and one "
             "z_log_var")
    m = (n_d - 1) // 2
    convs = [t["kernel"] for _, t in groups["conv2d"]]
    filters = [int(w.shape[0]) for w in convs[:n_t]]
    kernel, channels = int(convs[0].shape[1]), int(convs[0].shape[3])
    units = [int(t["kernel"].shape[1]) for _, t in groups["dense"][:m]]
    latent = int(groups["z_mean"][0][1]["kernel"].shape[1])
    flat = int(groups["dense"][0][1]["kernel"].shape[0])
    size = int(round(math.sqrt(flat / filters[-1])))
    if size * size * filters[-1] != flat:
        fail(source, ": not a sheep VAE: the first Dense takes ", flat, " inputs, not (size * size * ", filters[-1],
             ") of the last convolution's flattened output")
    return Config(filters, units, latent, kernel, size, channels)


def check_against(c, groups, source):
    """Every tensor present with the shape the architecture needs; returns {ewe name: array}."""
    want = by_kind(ewe_layers(c))
    out = OrderedDict()
    for kind in KINDS:
        if len(want[kind]) != len(groups[kind]):
            fail(source, ": not a sheep VAE: ", len(groups[kind]), " ", kind, " layers, the architecture read from "
                 "the weights needs ", len(want[kind]))
        for (name, _, roles), (src_name, tensors) in zip(want[kind], groups[kind]):
            for role, shape in roles.items():
                if role not in tensors:
                    fail(source, ": layer '", src_name, "' (ewe ", name, ") has no ", role)
                a = tensors[role]
                if tuple(a.shape) != tuple(shape):
                    fail(source, ": tensor ", src_name, "/", role, " has shape (ewe layout) ", tuple(a.shape),
                         ", the sheep VAE with filters=", c.filters, " units=", c.units, " latent=", c.latent,
                         " needs ", tuple(shape), " for ", name, "/", role)
                out[f"{name}/{role}"] = np.ascontiguousarray(a, dtype=np.float32)
    return out


# ---------------------------------------------------------------------------------
# ewe checkpoints (safetensors).

def fmt(v):
    return "%.17g" % v  # as ewe::metadata_number


def checkpoint_metadata(c):
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "model.image_size": str(c.image_size), "model.channels": str(c.channels), "model.kernel": str(c.kernel),
            "model.filters": ",".join(map(str, c.filters)), "model.units": ",".join(map(str, c.units)),
            "model.latent": str(c.latent), "model.dropout": fmt(c.dropout), "model.reparam": c.reparam,
            "loss": "2*28*28*MSE + kl_weight*KL (KL averaged over latent dimensions)",
            "optimizer": "RMSprop", "optimizer.iterations": "0", "optimizer.lr": fmt(1e-3), "epoch": "0",
            "rng.seed": "0", "train.batch": "8", "train.kl_start": fmt(10), "train.kl_steep": fmt(10),
            "train.samples": "0", "train.data": ""}


def write_safetensors(path, tensors, metadata):
    """float32 tensors in the given order (ewe's parameter order), 8-byte aligned header."""
    header, offset = {"__metadata__": metadata}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for a in tensors.values():
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def read_checkpoint(path):
    """(Config, {name: array}) of an ewe sheep_vae checkpoint, every tensor checked."""
    from safetensors import safe_open
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        fail(path, ": no such file")
    except Exception as e:  # safetensors raises its own error types
        fail(path, ": not a safetensors file (", e, ")")
    if meta.get("format") != FORMAT:
        fail(path, ": not an ewe sheep_vae checkpoint (metadata 'format' is ", repr(meta.get("format")),
             ", expected ", FORMAT, ")")
    if meta.get("format_version") != FORMAT_VERSION:
        fail(path, ": checkpoint format_version ", meta.get("format_version"), ", this tool reads ", FORMAT_VERSION)
    try:
        ints = lambda key: [int(v) for v in meta[key].split(",")]
        c = Config(ints("model.filters"), ints("model.units"), int(meta["model.latent"]), int(meta["model.kernel"]),
                   int(meta["model.image_size"]), int(meta["model.channels"]), float(meta["model.dropout"]),
                   meta["model.reparam"])
    except KeyError as e:
        fail(path, ": metadata has no ", e)
    except ValueError as e:
        fail(path, ": bad model.* metadata (", e, ")")
    out = OrderedDict()
    for name, _, roles in ewe_layers(c):
        for role, shape in roles.items():
            key = f"{name}/{role}"
            if key not in tensors:
                fail(path, ": has no tensor '", key, "' (the architecture in its metadata needs it)")
            if tuple(tensors[key].shape) != shape:
                fail(path, ": tensor '", key, "' has shape ", tuple(tensors[key].shape), ", expected ", shape)
            if tensors[key].dtype != np.float32:
                fail(path, ": tensor '", key, "' is ", tensors[key].dtype, ", expected float32")
            out[key] = tensors[key]
    extra = [k for k in tensors if k not in out and not k.startswith("optimizer/")]
    if extra:
        fail(path, ": tensors this architecture does not have: ", ", ".join(extra[:5]))
    if any(k.startswith("optimizer/") for k in tensors):
        print(f"note: {path}: optimizer state (optimizer/*) is not converted", file=sys.stderr)
    return c, out


# ---------------------------------------------------------------------------------
# Keras 3: .weights.h5 (or the model.weights.h5 inside a .keras zip). Each layer with
# weights is a group .../vars holding datasets 0, 1, ... in the layer's weight order
# (kernel, bias; gamma, beta, moving_mean, moving_variance) and, from Keras 3.x on, the
# layer's name as attribute 'name' (the group paths themselves use class-based names).

def open_keras_h5(path):
    import h5py
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                if "model.weights.h5" not in z.namelist():
                    fail(path, ": a zip without model.weights.h5 (not a Keras 3 .keras file)")
                return h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
        return h5py.File(path, "r")
    except FileNotFoundError:
        fail(path, ": no such file")
    except OSError as e:
        fail(path, ": not an HDF5 or .keras file (", e, ")")


def keras_var_groups(h5):
    """[(layer name, h5 path of its vars group, {index: array})] for layers holding weights."""
    import h5py
    found = []

    def visit(path, obj):
        if isinstance(obj, h5py.Group) and path.split("/")[-1] == "vars" and "0" in obj:
            name = obj.attrs.get("name", path.split("/")[-2] if "/" in path else "")
            name = name.decode() if isinstance(name, bytes) else str(name)
            found.append((name, path, {int(k): obj[k][()] for k in obj.keys() if k.isdigit()}))
    h5.visititems(visit)
    return found


KERAS_NAME = re.compile(r"^(conv2d_transpose|conv2d|dense|batch_normalization)(?:_(\d+))?$")


def keras_kind_lists(found, source):
    """Per kind, the Keras layers in creation order. Exact ewe names are used when the model
    has them all; otherwise Keras' automatic names ordered by their counter (a model built
    after other layers in the same session: conv2d_4, conv2d_5, ...)."""
    groups = {kind: [] for kind in KINDS}
    for name, path, arrays in found:
        if name in ("z_mean", "z_log_var"):
            groups[name].append((name, arrays))
            continue
        m = KERAS_NAME.match(name)
        if not m:
            fail(source, ": layer '", name, "' (", path, ") is not part of the sheep VAE (unknown architecture; "
                 "expected conv2d*, conv2d_transpose*, dense*, batch_normalization*, z_mean, z_log_var)")
        groups[m.group(1)].append((int(m.group(2) or 0), name, arrays))
    for kind in KINDS[:4]:
        groups[kind] = [(name, arrays) for _, name, arrays in sorted(groups[kind], key=lambda t: t[0])]
    return groups


def keras_to_ewe_arrays(kind, name, arrays, source):
    roles = BN_ROLES if kind == "batch_normalization" else ("kernel", "bias")
    for i, role in enumerate(roles):
        if i not in arrays:
            fail(source, ": layer '", name, "' has no ", role, " (Keras weight vars/", i, " missing; a ", kind,
                 " of the sheep VAE has ", ", ".join(roles), ")")
    if len(arrays) != len(roles):
        fail(source, ": layer '", name, "' has ", len(arrays), " weights, a ", kind, " of the sheep VAE has ",
             len(roles), " (", ", ".join(roles), ")")
    if kind == "batch_normalization":
        return {role: arrays[i] for i, role in enumerate(roles)}
    kernel, bias = arrays[0], arrays[1]
    if kind in ("conv2d", "conv2d_transpose"):
        if kernel.ndim != 4:
            fail(source, ": tensor ", name, "/kernel has shape ", kernel.shape, ", a ", kind, " kernel is 4-D")
        # Conv2D (kh, kw, in, out) -> (out, kh, kw, in); Conv2DTranspose (kh, kw, filters, in)
        # -> (in, kh, kw, filters): the same axis permutation.
        kernel = kernel.transpose(3, 0, 1, 2)
    elif kernel.ndim != 2:
        fail(source, ": tensor ", name, "/kernel has shape ", kernel.shape, ", a Dense kernel is 2-D")
    return {"kernel": kernel, "bias": bias}


def import_keras(path):
    with open_keras_h5(path) as h5:
        found = keras_var_groups(h5)
    if not found:
        fail(path, ": no Keras 3 layer weights (no .../vars groups); a Keras 2 .h5 is not supported")
    groups = keras_kind_lists(found, path)
    for kind in KINDS:
        groups[kind] = [(name, keras_to_ewe_arrays(kind, name, arrays, path)) for name, arrays in groups[kind]]
    return groups


def ewe_to_keras_arrays(kind, tensors, name):
    if kind == "batch_normalization":
        return [tensors[f"{name}/{r}"] for r in BN_ROLES]
    kernel = tensors[f"{name}/kernel"]
    if kind in ("conv2d", "conv2d_transpose"):
        kernel = kernel.transpose(1, 2, 3, 0)
    return [np.ascontiguousarray(kernel), tensors[f"{name}/bias"]]


def keras_default_layout(c):
    """The groups Keras 3.8 writes for tests/conversion/keras_model.py's model:
    a functional 'vae' whose layers are the encoder's and a nested functional 'decoder'.
    Group paths use class-based names deduplicated per container (dense, dense_1, ...);
    returns [(path, layer name, ewe layer name or None)] in model order."""
    rows = []

    def container(prefix, layers):
        seen = {}
        for cls, name, ewe in layers:
            i = seen.get(cls, 0)
            seen[cls] = i + 1
            rows.append((f"{prefix}layers/{cls if i == 0 else f'{cls}_{i}'}", name, ewe))

    enc, dec = [("input_layer", "image", None)], [("input_layer", "z", None)]
    e = iter(ewe_layers(c))
    nxt = lambda: next(e)[0]
    for _ in c.filters:
        n = nxt()
        enc.append(("conv2d", n, n))
    enc.append(("flatten", "flatten", None))
    for i, _ in enumerate(c.units):
        n = nxt()
        enc.append(("dense", n, n))
        if i + 1 < len(c.units):
            n = nxt()
            enc += [("dropout", "dropout" if i == 0 else f"dropout_{i}", None), ("batch_normalization", n, n)]
    enc += [("dense", nxt(), "z_mean"), ("dense", nxt(), "z_log_var")]
    for i, _ in enumerate(c.units):
        n = nxt()
        dec.append(("dense", n, n))
        if i == 0:
            n = nxt()
            dec += [("dropout", f"dropout_{len(c.units) - 1}", None), ("batch_normalization", n, n)]
    n = nxt()
    dec += [("dense", n, n), ("reshape", "reshape", None)]
    for _ in c.filters:
        n = nxt()
        dec.append(("conv2d_transpose", n, n))
    n = nxt()
    dec.append(("conv2d", n, n))
    container("", enc)
    rows.append(("layers/functional", "decoder", None))
    container("layers/functional/", dec)
    return rows


def export_keras(c, tensors, out, like=None):
    import h5py
    kinds = {name: kind for name, kind, _ in ewe_layers(c)}
    if like:
        with open_keras_h5(like) as h5:
            found = keras_var_groups(h5)
            template = keras_kind_lists(found, like)
            # the template's layers in creation order, matched to ewe's per kind
            assign = {}
            want = by_kind(ewe_layers(c))
            for kind in KINDS:
                if len(template[kind]) != len(want[kind]):
                    fail(like, ": the template has ", len(template[kind]), " ", kind, " layers, the checkpoint's "
                         "architecture ", len(want[kind]))
                for (tname, _), (ename, _, _) in zip(template[kind], want[kind]):
                    assign[tname] = ename
            paths = {name: path for name, path, _ in found}
            with h5py.File(out, "w") as dst:
                def copy(path, obj):
                    if isinstance(obj, h5py.Group):
                        g = dst.require_group(path)
                        for k, v in obj.attrs.items():
                            g.attrs[k] = v
                h5.visititems(copy)
                for k, v in h5.attrs.items():
                    dst.attrs[k] = v
                for tname, ename in assign.items():
                    g = dst[paths[tname]]
                    for i, a in enumerate(ewe_to_keras_arrays(kinds[ename], tensors, ename)):
                        if tuple(h5[paths[tname]][str(i)].shape) != a.shape:
                            fail(like, ": template tensor ", paths[tname], "/", i, " has shape ",
                                 h5[paths[tname]][str(i)].shape, ", the checkpoint's ", ename, " gives ", a.shape)
                        g.create_dataset(str(i), data=a)
        return
    with h5py.File(out, "w") as dst:
        dst.create_group("layers")
        dst.create_group("vars").attrs["name"] = "vae"
        for path, name, ename in keras_default_layout(c):
            g = dst.require_group(path).create_group("vars")
            g.attrs["name"] = name
            if ename:
                for i, a in enumerate(ewe_to_keras_arrays(kinds[ename], tensors, ename)):
                    g.create_dataset(str(i), data=a)


# ---------------------------------------------------------------------------------
# PyTorch: bench/compare/torch_sheep_vae.py's SheepVae. Its modules: encoder (Sequential:
# per filter a same-padded Conv2d wrapper (.conv) and ReLU; Flatten; per unit Linear,
# ReLU and, but for the last, Dropout and BatchNorm1d), z_mean, z_log_var (Linear),
# decoder_dense (Linear, ReLU, Dropout, BatchNorm1d, ..., Linear, ReLU, Unflatten),
# decoder_convs (per filter a ConvTranspose2d wrapper (.conv) and ReLU, then a Conv2d
# wrapper and Sigmoid). The flatten before the first Linear and the Unflatten after the
# last are in NHWC order (the model permutes), so Dense kernels need no row reordering.

TORCH_ROLES = {"weight": "kernel", "bias": "bias"}
TORCH_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def torch_module_order(c):
    """[(module prefix, ewe layer name)] of the reference model, in state_dict order."""
    rows, e = [], iter(ewe_layers(c))
    nxt = lambda: next(e)[0]
    i = 0
    for _ in c.filters:
        rows.append((f"encoder.{i}.conv", nxt()))
        i += 2
    i += 1  # Flatten
    for j, _ in enumerate(c.units):
        rows.append((f"encoder.{i}", nxt()))
        i += 2
        if j + 1 < len(c.units):
            rows.append((f"encoder.{i + 1}", nxt()))
            i += 2
    rows += [("z_mean", nxt()), ("z_log_var", nxt())]
    i = 0
    for j, _ in enumerate(c.units):
        rows.append((f"decoder_dense.{i}", nxt()))
        i += 2
        if j == 0:
            rows.append((f"decoder_dense.{i + 1}", nxt()))
            i += 2
    rows.append((f"decoder_dense.{i}", nxt()))
    i = 0
    for _ in c.filters:
        rows.append((f"decoder_convs.{i}.conv", nxt()))
        i += 2
    rows.append((f"decoder_convs.{i}.conv", nxt()))
    return rows


def load_torch_state(path):
    try:
        import torch
    except ImportError:
        fail("--from/--to torch needs PyTorch (import torch failed); on Debian: apt-get install python3-torch")
    try:
        obj = torch.load(path, map_location="cpu")
    except FileNotFoundError:
        fail(path, ": no such file")
    except Exception as e:
        fail(path, ": not a torch.save file (", e, ")")
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        fail(path, ": expected a state_dict (a dict of tensors), found ", type(obj).__name__)
    return OrderedDict((k, v.detach().cpu().numpy()) for k, v in obj.items())


def import_torch(path):
    state = load_torch_state(path)
    modules = OrderedDict()
    for key, a in state.items():
        prefix, _, param = key.rpartition(".")
        modules.setdefault(prefix, {})[param] = a
    groups = {kind: [] for kind in KINDS}
    convs_in_decoder = [p for p in modules if p.startswith("decoder_convs.")]
    for prefix, params in modules.items():
        if "running_mean" in params:
            missing = [p for p in TORCH_BN if p not in params]
            if missing:
                fail(path, ": BatchNorm1d '", prefix, "' has no ", ", ".join(missing))
            groups["batch_normalization"].append((prefix, {TORCH_BN[p]: params[p] for p in TORCH_BN}))
            continue
        for p in ("weight", "bias"):
            if p not in params:
                fail(path, ": module '", prefix, "' has no ", p, " (tensor ", prefix, ".", p, " missing)")
        w, b = params["weight"], params["bias"]
        if prefix in ("z_mean", "z_log_var"):
            kind = prefix
        elif w.ndim == 2 and (prefix.startswith("encoder.") or prefix.startswith("decoder_dense.")):
            kind = "dense"
        elif w.ndim == 4 and prefix.startswith("encoder."):
            kind = "conv2d"
        elif w.ndim == 4 and prefix.startswith("decoder_convs."):
            kind = "conv2d" if prefix == convs_in_decoder[-1] else "conv2d_transpose"
        else:
            fail(path, ": tensor ", prefix, ".weight with shape ", w.shape, " is not part of "
                 "bench/compare/torch_sheep_vae.py's SheepVae (unknown architecture)")
        if kind in ("conv2d", "conv2d_transpose"):
            # Conv2d (out, in, kh, kw) -> (out, kh, kw, in); ConvTranspose2d (in, out, kh, kw)
            # -> (in, kh, kw, out): the same axis permutation.
            w = w.transpose(0, 2, 3, 1)
        else:
            if w.ndim != 2:
                fail(path, ": tensor ", prefix, ".weight has shape ", w.shape, ", a Linear weight is 2-D")
            w = w.T  # Linear (out, in) -> (in, out)
        groups[kind].append((prefix, {"kernel": w, "bias": b}))
    return groups


def export_torch(c, tensors, out):
    import torch
    kinds = {name: kind for name, kind, _ in ewe_layers(c)}
    state = OrderedDict()
    for prefix, name in torch_module_order(c):
        kind = kinds[name]
        if kind == "batch_normalization":
            for p, r in TORCH_BN.items():
                state[f"{prefix}.{p}"] = torch.from_numpy(np.array(tensors[f"{name}/{r}"]))
            state[f"{prefix}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
            continue
        w = tensors[f"{name}/kernel"]
        w = w.transpose(0, 3, 1, 2) if w.ndim == 4 else w.T
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        state[f"{prefix}.bias"] = torch.from_numpy(np.array(tensors[f"{name}/bias"]))
    torch.save(state, out)


# ---------------------------------------------------------------------------------

def cmd_import(args):
    groups = import_keras(args.input) if args.frm == "keras" else import_torch(args.input)
    c = infer_config(groups, args.input)
    c.dropout, c.reparam = args.dropout, args.reparam
    tensors = check_against(c, groups, args.input)
    write_safetensors(args.output, tensors, checkpoint_metadata(c))
    n = sum(a.size for a in tensors.values())
    print(f"{args.input} ({args.frm}) -> {args.output}: filters={c.filters} units={c.units} latent={c.latent} "
          f"kernel={c.kernel} image={c.image_size}x{c.image_size}x{c.channels}, {len(tensors)} tensors, "
          f"{n:,} parameters")


def cmd_export(args):
    c, tensors = read_checkpoint(args.input)
    if args.to == "keras":
        export_keras(c, tensors, args.output, args.like)
    else:
        if args.like:
            fail("--like is for --to keras only")
        export_torch(c, tensors, args.output)
    print(f"{args.input} -> {args.output} ({args.to}): {len(tensors)} tensors")


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="ewe_weights.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Layouts and name mapping: docs/weights.md. Optimizer state is not converted.")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("import", help="Keras or PyTorch weights -> ewe checkpoint",
                       description="Keras 3 .weights.h5/.keras or a PyTorch state_dict -> an ewe checkpoint "
                       "(no optimizer state; epoch 0, optimizer.iterations 0).")
    i.add_argument("--from", dest="frm", choices=("keras", "torch"), required=True)
    i.add_argument("input", help="model.weights.h5, model.keras, or a torch.save'd state_dict")
    i.add_argument("output", help="the ewe checkpoint to write (.safetensors)")
    i.add_argument("--dropout", type=float, default=0.1, help="model.dropout to record (not in the weights; 0.1)")
    i.add_argument("--reparam", choices=("standard", "post"), default="standard",
                   help="model.reparam to record (not in the weights; standard)")
    e = sub.add_parser("export", help="ewe checkpoint -> Keras .weights.h5 or PyTorch state_dict",
                       description="An ewe checkpoint -> Keras 3 .weights.h5 (for model.load_weights) or a "
                       "PyTorch state_dict (torch.save; for SheepVae.load_state_dict). Optimizer state is dropped.")
    e.add_argument("--to", choices=("keras", "torch"), required=True)
    e.add_argument("input", help="ewe checkpoint (.safetensors)")
    e.add_argument("output", help="OUT.weights.h5 (keras) or OUT.pt (torch)")
    e.add_argument("--like", help="keras only: a .weights.h5 or .keras saved by the target model; its group layout "
                   "is copied (default: the layout Keras 3.8 writes for tests/conversion/keras_model.py's model)")
    args = p.parse_args(argv)
    try:
        cmd_import(args) if args.cmd == "import" else cmd_export(args)
    except ConversionError as err:
        print(f"ewe_weights: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
