#!/usr/bin/env python3
"""Weights of the sheep VAE (include/ewe/models/sheep_vae.hpp) between ewe checkpoints
(safetensors, format ewe.sheep_vae version 1, as examples/sheep_vae/src/checkpoints.cpp writes
them) and Keras 3 (.weights.h5, .keras) or PyTorch (a torch.save'd state_dict of
bench/compare/torch_sheep_vae.py's SheepVae). Layouts, names and what is converted:
docs/weights.md.

    python3 tools/ewe_weights.py import --from keras model.weights.h5 out.safetensors [--width 0.5]
    python3 tools/ewe_weights.py import --from torch state_dict.pt out.safetensors
    python3 tools/ewe_weights.py export --to keras ck.safetensors out.weights.h5 [--like model.weights.h5]
    python3 tools/ewe_weights.py export --to torch ck.safetensors out.pt

Needs numpy; h5py for Keras files, torch for PyTorch files. Only weights are converted
(optimizer state is not); the layer sizes (filters, units, latent, kernel, image size,
channels) are read from the weights, the width multiplier (model.width) from the file
when an export wrote it there, else from --width. A user error is one line on stderr,
`ewe_weights: <file>: <what was expected, what was found>`, with exit status 2; a
traceback means a bug in this tool. Every file is written to a temporary sibling and
renamed over the target (as ewe::io::write_file_atomically), so a failed write leaves
the previous file as it was."""
import argparse
import importlib
import io
import itertools
import json
import math
import os
import re
import struct
import sys
import zipfile
from collections import OrderedDict

try:
    import numpy as np
except ImportError:  # reported as a user error by main(), naming the file to convert
    np = None

FORMAT, FORMAT_VERSION = "ewe.sheep_vae", "1"
KINDS = ("conv2d", "conv2d_transpose", "dense", "batch_normalization", "z_mean", "z_log_var")
BN_ROLES = ("gamma", "beta", "moving_mean", "moving_variance")
MAX_WIDTH = 16.0  # SheepVaeOptions::kMaxWidth
DEFAULT_FILTERS, DEFAULT_UNITS = [10, 20, 40, 80], [100, 50, 25]  # SheepVaeOptions's
# Where an export keeps the checkpoint's model.* metadata so that importing the file
# restores it: a JSON attribute of the Keras file's root group, and an entry of the
# PyTorch state_dict's _metadata (torch's per-module side table, which load_state_dict
# ignores for names that are not modules).
CARRIED_METADATA = "ewe.sheep_vae.model"
STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict")  # training checkpoints hold the weights here
USER_ERROR_STATUS = 2


class ConversionError(Exception):
    """A user error: bad input, a missing package, an output that cannot be written."""


def fail(*parts):
    raise ConversionError("".join(str(p) for p in parts))


def need(module, path, purpose):
    """The module, or a ConversionError naming the file and the install lines."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        fail(path, ": ", purpose, " needs the Python package ", module, " (", e, "); install it with "
             "`pip install ", module, "` or, on Debian, `apt-get install python3-", module, "`")


# ---------------------------------------------------------------------------------
# The architecture: ewe's layers in order, with ewe's names and tensor shapes.

class SheepVaeOptions:
    """SheepVaeOptions: the listed filters and units, and the width that scales each of them."""

    def __init__(self, filters, units, latent, kernel, image_size, channels, dropout=0.1, reparam="standard",
                 width=1.0):
        self.filters, self.units = list(filters), list(units)
        self.latent, self.kernel, self.image_size, self.channels = latent, kernel, image_size, channels
        self.dropout, self.reparam, self.width = dropout, reparam, width

    def scaled_filters(self):
        return scaled(self.filters, self.width)

    def scaled_units(self):
        return scaled(self.units, self.width)

    def describe(self):
        text = f"filters={list_text(self.filters)} units={list_text(self.units)} latent={self.latent} " \
               f"at model.width={fmt(self.width)}"
        if self.width != 1:
            text += f" (layers of {list_text(self.scaled_filters())} filters, {list_text(self.scaled_units())} units)"
        return text


def scaled(sizes, width):
    """max(1, llround(width * n)) of each n, as SheepVaeOptions::scaled (halves round away from zero)."""
    out = []
    for n in sizes:
        x = width * n
        whole = math.floor(x)
        out.append(max(1, int(whole) + (1 if x - whole >= 0.5 else 0)))
    return out


def list_text(sizes):
    return ",".join(map(str, sizes))


def ewe_layers(c):
    """[(name, kind, {role: shape})] in ewe's order. Names follow ewe's (and Keras')
    per-kind counters over the whole model: conv2d, conv2d_1, ..., dense_3, ..."""
    counts, out = {}, []

    def add(kind, roles, name=None):
        i = counts.get(kind, 0)
        counts[kind] = i + 1
        out.append((name or (kind if i == 0 else f"{kind}_{i}"), kind, roles))

    k, cin = c.kernel, c.channels
    filters, units = c.scaled_filters(), c.scaled_units()
    for f in filters:                                     # Conv2D kernel (filters, kh, kw, in)
        add("conv2d", {"kernel": (f, k, k, cin), "bias": (f,)})
        cin = f
    fan_in = c.image_size * c.image_size * filters[-1]    # Flatten of NHWC
    for i, u in enumerate(units):                         # Dense kernel (in, units)
        add("dense", {"kernel": (fan_in, u), "bias": (u,)})
        if i + 1 < len(units):
            add("batch_normalization", {r: (u,) for r in BN_ROLES})
        fan_in = u
    for head in ("z_mean", "z_log_var"):
        out.append((head, head, {"kernel": (fan_in, c.latent), "bias": (c.latent,)}))
    fan_in = c.latent
    for i, u in enumerate(reversed(units)):
        add("dense", {"kernel": (fan_in, u), "bias": (u,)})
        if i == 0:
            add("batch_normalization", {r: (u,) for r in BN_ROLES})
        fan_in = u
    top = filters[-1]
    add("dense", {"kernel": (fan_in, c.image_size * c.image_size * top), "bias": (c.image_size * c.image_size * top,)})
    cin = top
    for f in reversed(filters):                           # Conv2DTranspose kernel (in, kh, kw, filters)
        add("conv2d_transpose", {"kernel": (cin, k, k, f), "bias": (f,)})
        cin = f
    add("conv2d", {"kernel": (c.channels, k, k, cin), "bias": (c.channels,)})
    return out


def by_kind(layers):
    groups = {kind: [] for kind in KINDS}
    for layer in layers:
        groups[layer[1]].append(layer)
    return groups


def infer_options(groups, source):
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
    return SheepVaeOptions(filters, units, latent, kernel, size, channels)


def with_width(found, width, carried, source):
    """The configuration at `width` whose layers have the sizes found (`found`: width 1).
    The listed filters and units are the first that give the sizes found at that width of:
    the carried model.* metadata (when it is of that width), SheepVaeOptions's defaults,
    and per layer the n nearest size / width with max(1, round(width * n)) == size."""
    c = SheepVaeOptions(found.filters, found.units, found.latent, found.kernel, found.image_size, found.channels,
                        width=width)
    same_width = number(carried.get("model.width", "1"), source, "model.width") == width
    for attr, default in (("filters", DEFAULT_FILTERS), ("units", DEFAULT_UNITS)):
        sizes, key = getattr(found, attr), "model." + attr
        listed = [parse_list(carried[key], source, key)] if key in carried and same_width else []
        fitting = [lst for lst in listed + [default] if scaled(lst, width) == sizes]
        if fitting:
            setattr(c, attr, fitting[0])
            continue
        base = []
        for i, size in enumerate(sizes):
            guess = max(1, round(size / width))
            fits = [n for n in (guess, guess - 1, guess + 1) if n >= 1 and scaled([n], width) == [size]]
            if not fits:
                fail(source, ": layer ", i + 1, " of the ", len(sizes), " in model.", attr, " has ", size, " ", attr,
                     " (found ", list_text(sizes), "), which no listed size gives at width ", fmt(width),
                     " (a layer has max(1, round(width * n)) of n ", attr, ")")
            base.append(fits[0])
        setattr(c, attr, base)
    return c


def check_against(c, groups, source):
    """Every tensor present with the shape the architecture needs; returns {ewe name: array}
    in ewe's parameter order."""
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
                         ", the sheep VAE with ", c.describe(), " needs ", tuple(shape), " for ", name, "/", role)
                out[f"{name}/{role}"] = np.ascontiguousarray(a, dtype=np.float32)
    return OrderedDict((f"{name}/{role}", out[f"{name}/{role}"]) for name, _, roles in ewe_layers(c) for role in roles)


# ---------------------------------------------------------------------------------
# ewe checkpoints (safetensors), read and written with numpy alone.

def fmt(v):
    return "%.17g" % v  # as ewe::metadata_number


def number(text, source, key):
    try:
        return float(text)
    except ValueError:
        fail(source, ": metadata ", key, " = '", text, "' is not a number")


def parse_list(text, source, key):
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        fail(source, ": metadata ", key, " = '", text, "' is not a comma-separated list of integers")


def model_metadata(c):
    """The model.* keys of SheepVaeOptions (ewe::sheep_vae_metadata)."""
    return {"model.image_size": str(c.image_size), "model.channels": str(c.channels), "model.kernel": str(c.kernel),
            "model.filters": list_text(c.filters), "model.units": list_text(c.units), "model.latent": str(c.latent),
            "model.dropout": fmt(c.dropout), "model.reparam": c.reparam, "model.width": fmt(c.width)}


def checkpoint_metadata(c, carried):
    """A fresh start's metadata; model.* keys this tool does not know pass through from `carried`."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **model_metadata(c)}
    meta.update({k: v for k, v in sorted(carried.items()) if k.startswith("model.") and k not in meta})
    meta.update({"loss": "2*28*28*MSE + kl_weight*KL (KL averaged over latent dimensions)",
                 "optimizer": "RMSprop", "optimizer.iterations": "0", "optimizer.lr": fmt(1e-3), "epoch": "0",
                 "rng.seed": "0", "train.batch": "8", "train.kl_start": fmt(10), "train.kl_steep": fmt(10),
                 "train.samples": "0", "train.data": ""})
    return meta


def safetensors_bytes(tensors, metadata):
    """float32 tensors in the given order (ewe's parameter order), 8-byte aligned header."""
    header, offset = {"__metadata__": metadata}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    return b"".join([struct.pack("<Q", len(blob)), blob] +
                    [np.ascontiguousarray(a, dtype="<f4").tobytes() for a in tensors.values()])


def read_safetensors(path):
    """(metadata, {name: float32 array or the dtype name of a tensor of another type})."""
    with open(path, "rb") as f:
        data = bytearray(f.read())  # writable, so that arrays viewing it are too (torch.from_numpy)
    if len(data) < 8:
        fail(path, ": not a safetensors file (", len(data), " bytes; a safetensors file starts with an 8-byte "
             "header length)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        fail(path, ": not a safetensors file (its header length ", size, " exceeds the ", len(data) - 8,
             " bytes that follow)")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        fail(path, ": not a safetensors file (its header is not JSON: ", e, ")")
    if not isinstance(header, dict):
        fail(path, ": not a safetensors file (its header is a JSON ", type(header).__name__, ", expected an object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        fail(path, ": __metadata__ is not a map of strings")
    body, tensors = memoryview(data)[8 + size:], {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = str(info["dtype"]), [int(n) for n in info["shape"]], info["data_offsets"]
            begin, end = int(begin), int(end)
        except (TypeError, KeyError, ValueError):
            fail(path, ": tensor '", name, "' has a malformed header entry ", json.dumps(info))
        count = math.prod(shape)
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= len(body) or \
                (dtype == "F32" and end - begin != 4 * count):
            fail(path, ": tensor '", name, "' (", dtype, " ", tuple(shape), ") has data_offsets [", begin, ", ",
                 end, "], outside the ", len(body), " bytes of data or not its size")
        tensors[name] = np.frombuffer(body, "<f4", count, begin).reshape(shape) if dtype == "F32" else dtype
    return meta, tensors


def checkpoint_options(meta, path):
    """SheepVaeOptions from the model.* metadata (ewe::sheep_vae_options)."""
    try:
        c = SheepVaeOptions(parse_list(meta["model.filters"], path, "model.filters"),
                            parse_list(meta["model.units"], path, "model.units"),
                            int(meta["model.latent"]), int(meta["model.kernel"]), int(meta["model.image_size"]),
                            int(meta["model.channels"]), number(meta["model.dropout"], path, "model.dropout"),
                            meta["model.reparam"], number(meta.get("model.width", "1"), path, "model.width"))
    except KeyError as e:
        fail(path, ": metadata has no ", e)
    except ValueError as e:
        fail(path, ": bad model.* metadata (", e, ")")
    if not (0 < c.width <= MAX_WIDTH):
        fail(path, ": metadata model.width = ", meta["model.width"], ", expected a number in (0, ", fmt(MAX_WIDTH), "]")
    return c


def read_checkpoint(path):
    """(SheepVaeOptions, {name: array}, model.* metadata) of an ewe sheep_vae checkpoint, every tensor checked."""
    meta, tensors = read_safetensors(path)
    if meta.get("format") != FORMAT:
        fail(path, ": not an ewe sheep_vae checkpoint (metadata 'format' is ", repr(meta.get("format")),
             ", expected ", FORMAT, ")")
    if meta.get("format_version") != FORMAT_VERSION:
        fail(path, ": checkpoint format_version ", meta.get("format_version"), ", this tool reads ", FORMAT_VERSION)
    c = checkpoint_options(meta, path)
    out = OrderedDict()
    for name, _, roles in ewe_layers(c):
        for role, shape in roles.items():
            key = f"{name}/{role}"
            if key not in tensors:
                fail(path, ": has no tensor '", key, "' (the architecture in its metadata needs it)")
            if isinstance(tensors[key], str):
                fail(path, ": tensor '", key, "' is ", tensors[key], ", expected F32")
            if tuple(tensors[key].shape) != shape:
                fail(path, ": tensor '", key, "' has shape ", tuple(tensors[key].shape), ", expected ", shape,
                     " for ", c.describe())
            out[key] = tensors[key]
    extra = [k for k in tensors if k not in out and not k.startswith("optimizer/")]
    if extra:
        fail(path, ": tensors this architecture does not have: ", ", ".join(extra[:5]))
    if any(k.startswith("optimizer/") for k in tensors):
        print(f"note: {path}: optimizer state (optimizer/*) is not converted", file=sys.stderr)
    return c, out, {k: v for k, v in meta.items() if k.startswith("model.")}


# ---------------------------------------------------------------------------------
# Output files: checked before any work, written atomically.

def check_output(path, example):
    if os.path.isdir(path):
        fail(path, ": is a folder; expected the name of the file to write, e.g. ", os.path.join(path, example))
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        fail(path, ": the folder ", folder, " does not exist" if not os.path.exists(folder) else " is not a folder",
             "; expected an existing folder to write the file into")


_temp_counter = itertools.count()


def remove_stale_temps(folder, filename):
    """Removes `<filename>.tmp.<pid>.<n>` files whose writer process no longer exists."""
    pattern = re.compile(re.escape(filename) + r"\.tmp\.(\d+)\.\d+")
    for entry in os.listdir(folder):
        m = pattern.fullmatch(entry)
        if not m or int(m.group(1)) == 0:
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            try:
                os.remove(os.path.join(folder, entry))
            except OSError:
                pass
        except (PermissionError, OverflowError):
            pass


def write_file_atomically(path, content):
    """Writes the bytes `content` to `<path>.tmp.<pid>.<n>`, fsyncs it and renames it over
    `path` (ewe::io::write_file_atomically): `path` is replaced complete or not at all,
    and the temporary is removed on every failure. h5py and torch.save write into memory
    first: both crash the process (SIGSEGV, abort) when a write to disk fails."""
    folder = os.path.dirname(path) or "."
    remove_stale_temps(folder, os.path.basename(path))
    tmp = f"{path}.tmp.{os.getpid()}.{next(_temp_counter)}"
    try:
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            fail(path, ": could not write it (", e.strerror or e, "); the previous file, if any, is unchanged")
        raise
    try:  # best effort, as in C++: some file systems cannot sync a folder
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


# ---------------------------------------------------------------------------------
# Keras 3: .weights.h5 (or the model.weights.h5 inside a .keras zip). Each layer with
# weights is a group .../vars holding datasets 0, 1, ... in the layer's weight order
# (kernel, bias; gamma, beta, moving_mean, moving_variance) and, from Keras 3.x on, the
# layer's name as attribute 'name' (the group paths themselves use class-based names).

def open_keras_h5(path):
    h5py = need("h5py", path, "reading a Keras file")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                if "model.weights.h5" not in z.namelist():
                    fail(path, ": a zip without model.weights.h5 (not a Keras 3 .keras file)")
                content = io.BytesIO(z.read("model.weights.h5"))
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as e:
            fail(path, ": a damaged .keras zip (", e, ")")
    elif not os.path.isfile(path):
        fail(path, ": no such file" if not os.path.exists(path) else ": is a folder, expected a Keras file")
    else:
        content = path
    try:
        return h5py.File(content, "r")
    except OSError as e:
        fail(path, ": not an HDF5 or .keras file (", e, ")")


def keras_var_groups(h5, source):
    """[(layer name, h5 path of its vars group, {index: array})] for layers holding weights."""
    import h5py
    found = []

    def visit(path, obj):
        if isinstance(obj, h5py.Group) and path.split("/")[-1] == "vars" and "0" in obj:
            name = obj.attrs.get("name", path.split("/")[-2] if "/" in path else "")
            name = name.decode() if isinstance(name, bytes) else str(name)
            arrays = {}
            for k in obj.keys():
                if not k.isdigit():
                    continue
                if not isinstance(obj[k], h5py.Dataset) or obj[k].dtype.kind not in "fiu":
                    what = f"a {obj[k].dtype} dataset" if isinstance(obj[k], h5py.Dataset) else "a group"
                    fail(source, ": ", path, "/", k, " (a weight of layer '", name, "') is ", what,
                         ", expected a numeric tensor")
                arrays[int(k)] = obj[k][()]
            found.append((name, path, arrays))
    h5.visititems(visit)
    return found


def keras_carried_metadata(h5, source):
    """The model.* metadata an export wrote into the file's root attributes, or {}."""
    text = h5.attrs.get(CARRIED_METADATA)
    if text is None:
        return {}
    try:
        carried = json.loads(text.decode() if isinstance(text, bytes) else str(text))
    except ValueError as e:
        fail(source, ": root attribute ", CARRIED_METADATA, " is not JSON (", e, ")")
    if not isinstance(carried, dict) or not all(isinstance(v, str) for v in carried.values()):
        fail(source, ": root attribute ", CARRIED_METADATA, " is not a JSON map of strings")
    return carried


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
    """(per-kind layer lists in ewe layouts, carried model.* metadata) of a Keras file."""
    with open_keras_h5(path) as h5:
        found = keras_var_groups(h5, path)
        carried = keras_carried_metadata(h5, path)
    if not found:
        fail(path, ": no Keras 3 layer weights (no .../vars groups); a Keras 2 .h5 is not supported")
    groups = keras_kind_lists(found, path)
    for kind in KINDS:
        groups[kind] = [(name, keras_to_ewe_arrays(kind, name, arrays, path)) for name, arrays in groups[kind]]
    return groups, carried


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


def export_keras(c, tensors, carried, out, like=None):
    """Writes `out`: the layout of `like` (a Keras file of the target model) or Keras 3.8's
    for tests/conversion/keras_model.py's model, every shape checked before writing."""
    h5py = need("h5py", out, "writing a Keras file")
    kinds = {name: kind for name, kind, _ in ewe_layers(c)}
    groups, root_attrs, datasets = [], {}, []  # [(path, attrs)], attrs, [(group path, index, array)]
    if like:
        with open_keras_h5(like) as h5:
            found = keras_var_groups(h5, like)
            template = keras_kind_lists(found, like)
            paths = {name: path for name, path, _ in found}
            want = by_kind(ewe_layers(c))
            # the template's layers in creation order, matched to ewe's per kind
            for kind in KINDS:
                if len(template[kind]) != len(want[kind]):
                    fail(like, ": the template has ", len(template[kind]), " ", kind, " layers, the checkpoint's "
                         "architecture ", len(want[kind]))
                for (tname, _), (ename, _, _) in zip(template[kind], want[kind]):
                    for i, a in enumerate(ewe_to_keras_arrays(kinds[ename], tensors, ename)):
                        shape = tuple(h5[paths[tname]][str(i)].shape)
                        if shape != a.shape:
                            fail(like, ": template tensor ", paths[tname], "/", i, " has shape ", shape,
                                 ", the checkpoint's ", ename, " gives ", a.shape, " (", c.describe(), ")")
                        datasets.append((paths[tname], i, a))
            h5.visititems(lambda path, obj: groups.append((path, dict(obj.attrs)))
                          if isinstance(obj, h5py.Group) else None)
            root_attrs = dict(h5.attrs)
    else:
        groups = [("layers", {}), ("vars", {"name": "vae"})]
        for path, name, ename in keras_default_layout(c):
            groups.append((f"{path}/vars", {"name": name}))
            if ename:
                datasets += [(f"{path}/vars", i, a)
                             for i, a in enumerate(ewe_to_keras_arrays(kinds[ename], tensors, ename))]
    root_attrs[CARRIED_METADATA] = json.dumps({**carried, **model_metadata(c)}, sort_keys=True)

    content = io.BytesIO()
    with h5py.File(content, "w") as dst:
        for path, attrs in groups:
            g = dst.require_group(path)
            for k, v in attrs.items():
                g.attrs[k] = v
        for k, v in root_attrs.items():
            dst.attrs[k] = v
        for path, i, a in datasets:
            dst[path].create_dataset(str(i), data=a)
    write_file_atomically(out, content.getvalue())


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


def is_tensor(v):
    return hasattr(v, "detach") and hasattr(v, "numpy")


def state_dict_of(obj, path, where=""):
    """The state_dict in what torch.load returned: the object itself, a module's
    state_dict(), or a training checkpoint's entry under one of STATE_DICT_KEYS."""
    if callable(getattr(obj, "state_dict", None)):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        fail(path, ": ", where, "expected a state_dict (a dict of tensors), found a ", type(obj).__name__)
    if all(is_tensor(v) for v in obj.values()):
        return obj
    for key in STATE_DICT_KEYS:
        if key in obj and not where:
            print(f"note: {path}: a training checkpoint (entries {', '.join(map(repr, obj))}); converting the "
                  f"state_dict in its {key!r} entry", file=sys.stderr)
            return state_dict_of(obj[key], path, f"entry {key!r}: ")
    found = ", ".join(f"{k!r} ({type(v).__name__})" for k, v in itertools.islice(obj.items(), 8))
    fail(path, ": ", where, "expected a state_dict (a dict of tensors)",
         "" if where else " or a training checkpoint holding one under " + ", ".join(map(repr, STATE_DICT_KEYS)),
         "; found a dict with entries ", found, ", ..." if len(obj) > 8 else "")


def load_torch_state(path):
    """(OrderedDict of numpy arrays, carried model.* metadata) of a torch.save'd file."""
    torch = need("torch", path, "reading a PyTorch file")
    if not os.path.isfile(path):
        fail(path, ": no such file" if not os.path.exists(path) else ": is a folder, expected a torch.save file")
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch.load raises pickle's, zipfile's and its own error types
        fail(path, ": not a torch.save file (", type(e).__name__, ": ", e, ")")
    state = state_dict_of(obj, path)
    carried = (getattr(state, "_metadata", None) or {}).get(CARRIED_METADATA, {})
    if not isinstance(carried, dict) or not all(isinstance(v, str) for v in carried.values()):
        fail(path, ": _metadata[", repr(CARRIED_METADATA), "] is not a map of strings")
    arrays = OrderedDict()
    for k, v in state.items():
        v = v.detach().cpu()
        arrays[k] = (v.float() if v.is_floating_point() else v).numpy()
    return arrays, dict(carried)


def torch_groups(state, path):
    """Per-kind layer lists in ewe layouts of SheepVae's state_dict (numpy arrays)."""
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


def import_torch(path):
    """(per-kind layer lists in ewe layouts, carried model.* metadata) of a PyTorch file."""
    state, carried = load_torch_state(path)
    return torch_groups(state, path), carried


def torch_state(c, tensors):
    """SheepVae's state_dict as numpy arrays (num_batches_tracked left out)."""
    kinds = {name: kind for name, kind, _ in ewe_layers(c)}
    state = OrderedDict()
    for prefix, name in torch_module_order(c):
        if kinds[name] == "batch_normalization":
            for p, r in TORCH_BN.items():
                state[f"{prefix}.{p}"] = np.array(tensors[f"{name}/{r}"])
            continue
        w = tensors[f"{name}/kernel"]
        state[f"{prefix}.weight"] = np.ascontiguousarray(w.transpose(0, 3, 1, 2) if w.ndim == 4 else w.T)
        state[f"{prefix}.bias"] = np.array(tensors[f"{name}/bias"])
    return state


def export_torch(c, tensors, carried, out):
    torch = need("torch", out, "writing a PyTorch file")
    state = OrderedDict()
    for key, a in torch_state(c, tensors).items():
        state[key] = torch.from_numpy(a)
        if key.endswith(".running_var"):
            state[key.replace(".running_var", ".num_batches_tracked")] = torch.tensor(0, dtype=torch.long)
    state._metadata = OrderedDict([(CARRIED_METADATA, {**carried, **model_metadata(c)})])
    content = io.BytesIO()
    torch.save(state, content)
    write_file_atomically(out, content.getvalue())


# ---------------------------------------------------------------------------------

def carried_setting(carried, key, source):
    """model.width, model.dropout or model.reparam as the file carries it, else the default,
    checked as the command line flag that would set it."""
    default, parse = {"model.width": ("1", width_argument), "model.dropout": ("0.1", dropout_argument),
                      "model.reparam": ("standard", reparam_argument)}[key]
    try:
        return parse(carried.get(key, default))
    except argparse.ArgumentTypeError as e:
        fail(source, ": carried metadata ", key, ": ", e)


def cmd_import(args):
    groups, carried = import_keras(args.input) if args.frm == "keras" else import_torch(args.input)
    found = infer_options(groups, args.input)
    c = with_width(found, args.width if args.width is not None else carried_setting(carried, "model.width", args.input),
                   carried, args.input)
    c.dropout = args.dropout if args.dropout is not None else carried_setting(carried, "model.dropout", args.input)
    c.reparam = args.reparam or carried_setting(carried, "model.reparam", args.input)
    tensors = check_against(c, groups, args.input)
    metadata = checkpoint_metadata(c, carried)
    write_file_atomically(args.output, safetensors_bytes(tensors, metadata))
    n = sum(a.size for a in tensors.values())
    print(f"{args.input} ({args.frm}) -> {args.output}: {c.describe()} kernel={c.kernel} "
          f"image={c.image_size}x{c.image_size}x{c.channels}, {len(tensors)} tensors, {n:,} parameters")


def cmd_export(args):
    if args.like and args.to != "keras":
        fail(args.like, ": --like is for --to keras only")
    c, tensors, carried = read_checkpoint(args.input)
    if args.to == "keras":
        export_keras(c, tensors, carried, args.output, args.like)
    else:
        export_torch(c, tensors, carried, args.output)
    print(f"{args.input} -> {args.output} ({args.to}): {len(tensors)} tensors, {c.describe()}")


def width_argument(text):
    try:
        width = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, {fmt(MAX_WIDTH)}], found '{text}'")
    if not 0 < width <= MAX_WIDTH:
        raise argparse.ArgumentTypeError(f"expected a number in (0, {fmt(MAX_WIDTH)}], found {text}")
    return width


def dropout_argument(text):
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 0.999], found '{text}'")
    if not 0 <= rate <= 0.999:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 0.999], found {text}")
    return rate


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its usage errors as one line, like every other user error."""

    def error(self, message):
        print(f"ewe_weights: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)


def reparam_argument(text):
    if text not in ("standard", "post"):
        raise argparse.ArgumentTypeError(f"expected standard or post, found '{text}'")
    return text


def main(argv=None):
    p = ArgumentParser(
        prog="ewe_weights.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Layouts and name mapping: docs/weights.md. Optimizer state is not converted.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    i = sub.add_parser("import", help="Keras or PyTorch weights -> ewe checkpoint",
                       description="Keras 3 .weights.h5/.keras or a PyTorch state_dict (or a training checkpoint "
                       "holding one under 'model', 'state_dict' or 'model_state_dict') -> an ewe checkpoint "
                       "(no optimizer state; epoch 0, optimizer.iterations 0). model.* settings that the weights "
                       "do not hold (width, dropout, reparam) come from the flags, else from the file when "
                       "`export` wrote it, else the defaults.")
    i.add_argument("--from", dest="frm", choices=("keras", "torch"), required=True)
    i.add_argument("input", help="model.weights.h5, model.keras, or a torch.save'd state_dict")
    i.add_argument("output", help="the ewe checkpoint to write (.safetensors)")
    i.add_argument("--width", type=width_argument,
                   help="model.width to record: the layers found are max(1, round(width * n)) of the n filters "
                   "or units that model.filters and model.units list (default: the file's, else 1)")
    i.add_argument("--dropout", type=dropout_argument, help="model.dropout to record (default: the file's, else 0.1)")
    i.add_argument("--reparam", type=reparam_argument, choices=("standard", "post"),
                   help="model.reparam to record (default: the file's, else standard)")
    e = sub.add_parser("export", help="ewe checkpoint -> Keras .weights.h5 or PyTorch state_dict",
                       description="An ewe checkpoint -> Keras 3 .weights.h5 (for model.load_weights) or a "
                       "PyTorch state_dict (torch.save; for SheepVae.load_state_dict). Optimizer state is dropped; "
                       "the checkpoint's model.* metadata is kept in the file for a later import.")
    e.add_argument("--to", choices=("keras", "torch"), required=True)
    e.add_argument("input", help="ewe checkpoint (.safetensors)")
    e.add_argument("output", help="OUT.weights.h5 (keras) or OUT.pt (torch)")
    e.add_argument("--like", help="keras only: a .weights.h5 or .keras saved by the target model; its group layout "
                   "is copied (default: the layout Keras 3.8 writes for tests/conversion/keras_model.py's model)")
    args = p.parse_args(argv)
    try:
        if np is None:
            fail(args.input, ": converting needs the Python package numpy; install it with `pip install numpy` "
                 "or, on Debian, `apt-get install python3-numpy`")
        check_output(args.output, "model.safetensors" if args.command == "import" else
                     "model.weights.h5" if args.to == "keras" else "model.pt")
        cmd_import(args) if args.command == "import" else cmd_export(args)
    except ConversionError as err:
        message = " ".join(str(err).split())  # one line, whatever the libraries' messages hold
    except OSError as err:  # reading the input: a missing file, a folder, no permission, an I/O error
        message = f"{err.filename or args.input}: {err.strerror or err}"
    else:
        return 0
    print(f"ewe_weights: {message}", file=sys.stderr)
    return USER_ERROR_STATUS


if __name__ == "__main__":
    sys.exit(main())
