#!/usr/bin/env python3
"""Writes the hand-made bad input files of tests/io/test_bad_files.cpp and the seed
corpus of the fuzz targets (tests/fuzz/run.sh). The outputs are committed, so the
tests need no Python; rerun after changing this script:

    python3 tests/data/make_bad_files.py

tests/data/bad_npy/*.npy and tests/data/bad_safetensors/*.safetensors: each file is
wrong in one way (its name says which); test_bad_files.cpp lists the error each must
give. tests/fuzz/corpus/{npy,safetensors}/: small valid files as fuzzing seeds.
Needs numpy (only for the seeds and the files numpy itself would write)."""
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BAD_NPY = os.path.join(HERE, "bad_npy")
BAD_ST = os.path.join(HERE, "bad_safetensors")
SEED_NPY = os.path.join(ROOT, "tests", "fuzz", "corpus", "npy")
SEED_ST = os.path.join(ROOT, "tests", "fuzz", "corpus", "safetensors")


def put(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def npy(header, data=b"", major=1):
    """A .npy file with a literal header dict (padded as numpy pads it) and raw data."""
    prefix = 10 if major == 1 else 12
    h = header.encode("latin1")
    total = (prefix + len(h) + 1 + 63) // 64 * 64
    h = h + b" " * (total - prefix - len(h) - 1) + b"\n"
    size = struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([major, 0]) + size + h + data


def npy_of(array):
    import io
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def dict_(descr, shape, fortran=False):
    return "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)


def safetensors(header, data=b"", pad=True):
    """A safetensors file from a header (dict or literal JSON text) and raw data."""
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    h = text.encode("utf-8")
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def bad_npy():
    rng = np.random.default_rng(7)
    images = (rng.random((4, 784)) * 255).astype(np.uint8)
    good = npy_of(images)
    files = {
        "empty.npy": b"",
        "not_npy.npy": b"sheep,784 pixels\n0,0,0,255\n",
        "zip_not_npy.npy": b"PK\x03\x04" + b"\x00" * 40,  # an .npz renamed to .npy
        "magic_only.npy": b"\x93NUMPY",
        "header_only.npy": good[: len(good) - images.nbytes],
        "truncated.npy": good[: len(good) - images.nbytes // 2],
        "trailing_bytes.npy": good + b"\x00" * 16,
        "header_cut.npy": good[:40],
        "version_9.npy": npy(dict_("'|u1'", "(4, 784)"), images.tobytes()).replace(b"NUMPY\x01", b"NUMPY\x09", 1),
        "bad_fortran_order.npy": npy("{'descr': '|u1', 'fortran_order': Maybe, 'shape': (4, 784), }", images.tobytes()),
        "missing_shape.npy": npy("{'descr': '|u1', 'fortran_order': False, }", images.tobytes()),
        "unknown_key.npy": npy("{'descr': '|u1', 'fortran_order': False, 'shape': (4, 784), 'sheep': 1, }",
                               images.tobytes()),
        "unterminated_header.npy": npy("{'descr': '|u1", b""),
        # Declared sizes far beyond the file, memory, or int64.
        "shape_beyond_file.npy": npy(dict_("'|u1'", "(1000000, 784)"), images.tobytes()),
        "shape_beyond_memory.npy": npy(dict_("'|u1'", "(1099511627776, 784)"), images.tobytes()),
        "shape_2pow62_elements.npy": npy(dict_("'|u1'", "(4611686018427387904,)"), images.tobytes()),
        "shape_bytes_overflow.npy": npy(dict_("'<f4'", "(4611686018427387904,)"), images.tobytes()),
        "shape_product_overflow.npy": npy(dict_("'<f8'", "(4294967296, 4294967296, 16)"), images.tobytes()),
        # The product is 0, but its partial products overflow int64 (ewe::Shape::numel).
        "shape_zero_with_overflow.npy": npy(dict_("'<f4'", "(4611686018427387904, 3, 0)"), b""),
        "dim_overflows_int64.npy": npy(dict_("'|u1'", "(99999999999999999999, 784)"), images.tobytes()),
        "negative_dim.npy": npy(dict_("'|u1'", "(-4, 784)"), images.tobytes()),
        "too_many_dims.npy": npy(dict_("'|u1'", "(1, 1, 1, 1, 1, 1, 4, 784)"), images.tobytes()),
        # dtypes the reader does not support.
        "complex64.npy": npy(dict_("'<c8'", "(4,)"), b"\x00" * 32),
        "unicode.npy": npy(dict_("'<U4'", "(2,)"), b"\x00" * 32),
        "object.npy": npy(dict_("'|O'", "(2,)"), b"\x00" * 16),
        "structured.npy": npy(dict_("[('x', '<f4'), ('y', '<f4')]", "(2,)"), b"\x00" * 16),
        "float16.npy": npy_of(np.zeros((4, 784), np.float16)),
        # Well-formed arrays that are not Quick, Draw! bitmaps (ewe::io::read_quickdraw_npy).
        "uint8_width_100.npy": npy_of(images[:, :100].copy()),
        "uint8_28x27.npy": npy_of(np.zeros((4, 28, 27), np.uint8)),
        "no_drawings.npy": npy_of(np.zeros((0, 784), np.uint8)),
        "int32_bitmaps.npy": npy_of(images.astype(np.int32)),
        # A bool array is not uint8 ink (it would read as 0/1 pixels): read_quickdraw_npy refuses it.
        "bool_bitmaps.npy": npy(dict_("'|b1'", "(2, 784)"), bytes([0, 1]) * 784),
        # No rows of 2^40 columns: more columns than an int holds (ewe_cluster refuses it).
        "columns_2pow40.npy": npy(dict_("'<f4'", "(0, 1099511627776)")),
    }
    nan = (images / 255.0).astype(np.float32)
    nan[1, 3] = np.nan
    files["float32_nan.npy"] = npy_of(nan)
    inf = (images / 255.0).astype(np.float32)
    inf[2, 5] = np.inf
    files["float32_inf.npy"] = npy_of(inf)
    above = (images / 255.0).astype(np.float32)
    above[0, 7] = 255.0
    files["float32_above_one.npy"] = npy_of(above)
    for name, data in files.items():
        put(BAD_NPY, name, data)


def bad_safetensors():
    w = np.arange(6, dtype=np.float32).tobytes()
    ok = {"__metadata__": {"format": "ewe.sheep_vae"}, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    good = safetensors(ok, w)
    files = {
        "empty.safetensors": b"",
        "short.safetensors": b"\x10\x00\x00",
        "not_safetensors.safetensors": b"this is a text file, not a checkpoint\n",
        "npy_renamed.safetensors": npy_of(np.zeros(4, np.float32)),
        "header_only.safetensors": good[: len(good) - len(w)],
        "truncated.safetensors": good[:-7],
        "header_len_huge.safetensors": struct.pack("<Q", 1 << 63) + b"{}",
        "header_len_past_end.safetensors": struct.pack("<Q", 4096) + b'{"w":{}}',
        "bad_json.safetensors": safetensors('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]', w),
        "unknown_dtype.safetensors": safetensors({"w": {"dtype": "C64", "shape": [3], "data_offsets": [0, 24]}}, w),
        "string_dtype.safetensors": safetensors({"w": {"dtype": "STR", "shape": [3], "data_offsets": [0, 24]}}, w),
        "offsets_disagree.safetensors": safetensors({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, w),
        "offsets_reversed.safetensors": safetensors({"w": {"dtype": "F32", "shape": [0], "data_offsets": [24, 0]}}, w),
        "offsets_past_end.safetensors": safetensors({"w": {"dtype": "F32", "shape": [6], "data_offsets": [8, 32]}}, w),
        "negative_dim.safetensors": safetensors('{"w":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}}', w),
        "dim_overflows_int64.safetensors":
            safetensors('{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,24]}}', w),
        # 2^32 * 2^32 wraps to 0 in 64-bit arithmetic: must not pass as an empty tensor.
        "shape_overflow.safetensors":
            safetensors({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}, w),
        "shape_2pow62_elements.safetensors":
            safetensors({"w": {"dtype": "U8", "shape": [4611686018427387904], "data_offsets": [0, 24]}}, w),
        "missing_offsets.safetensors": safetensors({"w": {"dtype": "F32", "shape": [6]}}, w),
        "duplicate_tensor.safetensors":
            safetensors('{"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},'
                        '"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}', w),
        "bad_unicode_escape.safetensors":
            safetensors('{"__metadata__":{"format":"\\uZZZZ"},"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}', w),
        "metadata_not_string.safetensors":
            safetensors('{"__metadata__":{"epoch":3},"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}', w),
    }
    for name, data in files.items():
        put(BAD_ST, name, data)


def seeds():
    put(SEED_NPY, "u8_4x784.npy", npy_of(np.arange(4 * 784, dtype=np.uint8).reshape(4, 784)))
    put(SEED_NPY, "f4_2x3.npy", npy_of(np.arange(6, dtype=np.float32).reshape(2, 3)))
    put(SEED_NPY, "f8_big_endian.npy", npy_of(np.arange(5, dtype=">f8")))
    put(SEED_NPY, "i4_fortran.npy", npy_of(np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4))))
    put(SEED_NPY, "i8_scalar.npy", npy_of(np.array(42, dtype=np.int64)))
    put(SEED_NPY, "bool_v2.npy", npy(dict_("'|b1'", "(3,)"), b"\x00\x01\x02", major=2))
    put(SEED_NPY, "f4_v3_empty.npy", npy(dict_("'<f4'", "(0, 784)"), b"", major=3))
    w = np.arange(6, dtype=np.float32).tobytes()
    ids = np.array([7, -8, 9], dtype=np.int32).tobytes()
    put(SEED_ST, "two_tensors.safetensors", safetensors({
        "__metadata__": {"format": "ewe.sheep_vae", "format_version": "1", "quote\"d": "line\nbreak \u00e9"},
        "layer/kernel": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "ids": {"dtype": "I32", "shape": [3], "data_offsets": [24, 36]},
        "empty": {"dtype": "F64", "shape": [0, 5], "data_offsets": [36, 36]}}, w + ids))
    put(SEED_ST, "scalar_u8.safetensors", safetensors({"s": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]}}, b"\x05"))
    put(SEED_ST, "empty_header.safetensors", safetensors("{}"))


if __name__ == "__main__":
    bad_npy()
    bad_safetensors()
    seeds()
