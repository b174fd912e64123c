#!/usr/bin/env python3
"""tools/ewe_weights.py's promises, checked with Debian's python3, numpy and h5py (and torch
where it is importable), each conversion run as a subprocess:
  * a user error is one line on stderr, `ewe_weights: <file>: ...`, exit status 2, no
    traceback, and no output file;
  * a failed write (a full disk: RLIMIT_FSIZE in the child) leaves the previous file byte
    for byte and no temporary;
  * checkpoints of any model.width convert both ways, tensors bit for bit and model.*
    metadata included; with --sheep-vae, a real width-0.5 checkpoint of `sheep_vae train`
    whose round trips `sheep_vae generate` draws from exactly as from the original.

    python3 tests/conversion/test_ewe_weights.py [--sheep-vae build/examples/sheep_vae/sheep_vae] [-v]

ctest: conversion_tool (tests/CMakeLists.txt). Without numpy or h5py it exits 77 (skip),
saying what to install, or 1 when CI=true."""
import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "ewe_weights.py")
SHEEP_VAE = None  # the sheep_vae program (--sheep-vae), for the real width-0.5 checkpoint

try:
    import h5py
    import numpy as np
    sys.path.insert(0, os.path.dirname(TOOL))
    import ewe_weights
except ImportError as missing:
    h5py = np = ewe_weights = None
    MISSING = str(missing)

try:
    import torch
except ImportError:
    torch = None
NO_TORCH = "torch is not importable (apt-get install python3-torch); tests/conversion/run.sh covers torch too"


def run_tool(*args, blocked=(), file_size_limit=None):
    """The tool's (exit status, stdout, stderr); `blocked` modules fail to import in it."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if blocked:
        stubs = tempfile.mkdtemp(prefix="ewe_weights_blocked_")
        for module in blocked:
            with open(os.path.join(stubs, module + ".py"), "w") as f:
                f.write(f'raise ImportError("No module named {module} (blocked by the test)")\n')
        env["PYTHONPATH"] = stubs + os.pathsep + env.get("PYTHONPATH", "")
    limit = None
    if file_size_limit is not None:
        limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    r = subprocess.run([sys.executable, TOOL, *args], env=env, preexec_fn=limit, capture_output=True, text=True,
                       timeout=300)
    if blocked:
        shutil.rmtree(stubs)
    return r.returncode, r.stdout, r.stderr


def make_checkpoint(path, width=1.0, filters=(4, 6), units=(10, 6, 5), latent=2, image_size=8, kernel=3, seed=0,
                    drop_keys=()):
    """A checkpoint of random weights at `width`, in the format sheep_vae train writes."""
    c = ewe_weights.SheepVaeOptions(filters, units, latent, kernel, image_size, 1, width=width)
    rng = np.random.default_rng(seed)
    tensors = {f"{name}/{role}": rng.standard_normal(shape).astype(np.float32)
               for name, _, roles in ewe_weights.ewe_layers(c) for role, shape in roles.items()}
    meta = {k: v for k, v in ewe_weights.checkpoint_metadata(c, {}).items() if k not in drop_keys}
    with open(path, "wb") as f:
        f.write(ewe_weights.safetensors_bytes(tensors, meta))
    return c


def read_checkpoint(path):
    """(model.* metadata, {name: array}) of a checkpoint."""
    meta, tensors = ewe_weights.read_safetensors(path)
    return {k: v for k, v in meta.items() if k.startswith("model.")}, tensors


class Case(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ewe_weights_test_")
        self.addCleanup(shutil.rmtree, self.dir)  # also when a subclass's setUp fails

    def path(self, name):
        return os.path.join(self.dir, name)

    def assert_user_error(self, result, *needles, output=None):
        rc, _, err = result
        self.assertEqual(rc, 2, f"exit status {rc}, stderr: {err}")
        self.assertNotIn("Traceback", err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, f"expected one line, found: {err!r}")
        self.assertTrue(lines[0].startswith("ewe_weights: "), lines[0])
        for needle in needles:
            self.assertIn(needle, lines[0])
        if output:
            self.assertFalse(os.path.exists(output), f"{output} was written")
        self.assertEqual([f for f in os.listdir(self.dir) if ".tmp." in f], [], "a temporary was left")
        return lines[0]

    def assert_same_checkpoint(self, a, b):
        meta_a, tensors_a = read_checkpoint(a)
        meta_b, tensors_b = read_checkpoint(b)
        self.assertEqual(meta_a, meta_b)
        self.assertEqual(sorted(k for k in tensors_a if not k.startswith("optimizer/")), sorted(tensors_b))
        for k, t in tensors_b.items():
            self.assertEqual(t.shape, tensors_a[k].shape, k)
            self.assertEqual(t.tobytes(), tensors_a[k].tobytes(), f"tensor {k} differs")


class UserErrors(Case):
    def setUp(self):
        super().setUp()
        self.ck = self.path("ck.safetensors")
        make_checkpoint(self.ck, width=0.5)
        self.keras = self.path("model.weights.h5")
        self.assertEqual(run_tool("export", "--to", "keras", self.ck, self.keras)[0], 0)

    def test_missing_h5py_names_the_file_and_the_install_lines(self):
        out = self.path("out.safetensors")
        self.assert_user_error(run_tool("import", "--from", "keras", self.keras, out, blocked=["h5py"]),
                               self.keras, "h5py", "pip install h5py", "apt-get install python3-h5py", output=out)

    def test_missing_numpy_names_the_file(self):
        out = self.path("out.weights.h5")
        self.assert_user_error(run_tool("export", "--to", "keras", self.ck, out, blocked=["numpy"]),
                               self.ck, "numpy", "pip install numpy", output=out)

    def test_missing_torch_names_the_file(self):
        out = self.path("out.pt")
        self.assert_user_error(run_tool("export", "--to", "torch", self.ck, out, blocked=["torch"]),
                               out, "torch", "pip install torch", output=out)
        self.assert_user_error(run_tool("import", "--from", "torch", self.keras, self.path("o.safetensors"),
                                        blocked=["torch"]), self.keras, "torch")

    def test_missing_output_folder(self):
        out = self.path("no/such/folder/out.weights.h5")
        self.assert_user_error(run_tool("export", "--to", "keras", self.ck, out), out, "does not exist")

    def test_output_that_is_a_folder(self):
        folder = self.path("a_folder")
        os.mkdir(folder)
        self.assert_user_error(run_tool("import", "--from", "keras", self.keras, folder), folder, "is a folder")
        self.assertEqual(os.listdir(folder), [])

    def test_missing_and_foreign_inputs(self):
        out = self.path("out.weights.h5")
        missing = self.path("missing.safetensors")
        self.assert_user_error(run_tool("export", "--to", "keras", missing, out), missing, output=out)
        text = self.path("notes.txt")
        with open(text, "w") as f:
            f.write("not weights\n")
        self.assert_user_error(run_tool("export", "--to", "keras", text, out), text, "not a safetensors file",
                               output=out)
        self.assert_user_error(run_tool("import", "--from", "keras", text, self.path("o.safetensors")), text,
                               "not an HDF5")
        self.assert_user_error(run_tool("import", "--from", "keras", self.dir, self.path("o.safetensors")),
                               self.dir, "is a folder")

    def test_malformed_safetensors_headers(self):
        """In the test's process (ewe_weights.main): an exception other than the one-line
        error would fail the test with its traceback."""
        def write(name, header, tail=b""):
            blob = header if isinstance(header, bytes) else json.dumps(header).encode()
            with open(self.path(name), "wb") as f:
                f.write(struct.pack("<Q", len(blob)) + blob + tail)
            return self.path(name)
        cases = [(write("dtype.safetensors", {"a": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}}, b"1234"),
                  "not an ewe sheep_vae checkpoint"),
                 (write("shape.safetensors", {"a": {"dtype": "F32", "shape": "xy", "data_offsets": [0, 4]}}),
                  "malformed header entry"),
                 (write("size.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"1234"),
                  "data_offsets [0, 4]"),
                 (write("list.safetensors", [1]), "expected an object"),
                 (write("meta.safetensors", {"__metadata__": {"format": 3}}), "__metadata__"),
                 (write("deep.safetensors", b"[" * 100000), "not JSON")]
        for path, words in cases:
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = ewe_weights.main(["export", "--to", "keras", path, self.path("out.weights.h5")])
            self.assertEqual(rc, 2, path)
            self.assertEqual(len(err.getvalue().strip().splitlines()), 1, err.getvalue())
            self.assertIn(f"ewe_weights: {path}: ", err.getvalue())
            self.assertIn(words, err.getvalue())

    def test_string_dataset_in_a_keras_file_is_named(self):
        with h5py.File(self.keras, "a") as f:
            vars_of_dense = [n for n, g in f["layers"].items() if g["vars"].attrs.get("name") == "dense_1"][0]
            del f[f"layers/{vars_of_dense}/vars/1"]
            f[f"layers/{vars_of_dense}/vars"].create_dataset("1", data=["not", "numbers"])
        out = self.path("out.safetensors")
        self.assert_user_error(run_tool("import", "--from", "keras", self.keras, out), self.keras,
                               f"layers/{vars_of_dense}/vars/1", "dense_1", "expected a numeric tensor", output=out)

    def test_shape_mismatch_names_tensor_shapes_and_width(self):
        stripped = self.path("stripped.safetensors")
        make_checkpoint(stripped, width=0.5, drop_keys=("model.width",))  # width-0.5 tensors read as width 1
        out = self.path("out.weights.h5")
        line = self.assert_user_error(run_tool("export", "--to", "keras", stripped, out), stripped,
                                      "tensor 'conv2d/kernel'", "shape (2, 3, 3, 1)", "expected (4, 3, 3, 1)",
                                      "model.width=1", output=out)
        self.assertIn("filters=4,6", line)

    def test_width_that_cannot_give_the_layers_found(self):
        out = self.path("out.safetensors")
        self.assert_user_error(run_tool("import", "--from", "keras", self.keras, out, "--width", "2"), self.keras,
                               "width 2", "3 filters", output=out)

    def test_bad_carried_metadata_is_named(self):
        with h5py.File(self.keras, "a") as f:
            carried = json.loads(f.attrs[ewe_weights.CARRIED_METADATA])
            f.attrs[ewe_weights.CARRIED_METADATA] = json.dumps(dict(carried, **{"model.width": "0"}))
        out = self.path("out.safetensors")
        self.assert_user_error(run_tool("import", "--from", "keras", self.keras, out), self.keras, "model.width",
                               "(0, 16]", output=out)
        self.assertEqual(run_tool("import", "--from", "keras", self.keras, out, "--width", "0.5")[0], 0)

    def test_bad_flags_are_one_line_too(self):
        self.assert_user_error(run_tool("import", "--from", "keras", self.keras, self.path("o"), "--width", "0"),
                               "--width", "(0, 16]")
        self.assert_user_error(run_tool("export", "--to", "keras", self.ck), "output")

    @unittest.skipIf(torch is None, NO_TORCH)
    def test_training_checkpoint_dict_is_converted_from_its_model_entry(self):
        pt, wrapped = self.path("model.pt"), self.path("train.pt")
        self.assertEqual(run_tool("export", "--to", "torch", self.ck, pt)[0], 0)
        torch.save({"model": torch.load(pt), "optimizer": {"lr": 0.1}, "epoch": 3}, wrapped)
        rc, _, err = run_tool("import", "--from", "torch", wrapped, self.path("from_train.safetensors"))
        self.assertEqual(rc, 0, err)
        self.assertIn("'model' entry", err)
        self.assert_same_checkpoint(self.ck, self.path("from_train.safetensors"))

    @unittest.skipIf(torch is None, NO_TORCH)
    def test_dict_without_a_state_dict_is_refused_naming_its_keys(self):
        pt, wrapped = self.path("model.pt"), self.path("train.pt")
        self.assertEqual(run_tool("export", "--to", "torch", self.ck, pt)[0], 0)
        torch.save({"net": torch.load(pt), "epoch": 3}, wrapped)
        out = self.path("out.safetensors")
        self.assert_user_error(run_tool("import", "--from", "torch", wrapped, out), wrapped, "'net'", "'epoch'",
                               "'model_state_dict'", output=out)
        torch.save([1, 2, 3], wrapped)
        self.assert_user_error(run_tool("import", "--from", "torch", wrapped, out), wrapped, "found a list",
                               output=out)


class AtomicWrites(Case):
    """Writes that fail part way (RLIMIT_FSIZE: the file may grow to 64 KiB, then writes
    fail with EFBIG as on a full disk) leave the previous file as it was."""
    LIMIT = 64 << 10

    def setUp(self):
        super().setUp()
        self.ck = self.path("ck.safetensors")
        make_checkpoint(self.ck, width=1, filters=(8, 16), units=(64, 32, 16), image_size=8)
        self.assertGreater(os.path.getsize(self.ck), 4 * self.LIMIT)

    def check_failed_write(self, argv, out):
        previous = b"the user's previous file"
        with open(out, "wb") as f:
            f.write(previous)
        self.assert_user_error(run_tool(*argv, file_size_limit=self.LIMIT), out, "could not write",
                               "File too large")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), previous)
        os.remove(out)
        self.assert_user_error(run_tool(*argv, file_size_limit=self.LIMIT), out, output=out)
        self.assertEqual(run_tool(*argv)[0], 0)  # and without the limit it works

    def test_safetensors(self):
        keras = self.path("model.weights.h5")
        self.assertEqual(run_tool("export", "--to", "keras", self.ck, keras)[0], 0)
        out = self.path("imported.safetensors")
        self.check_failed_write(["import", "--from", "keras", keras, out], out)

    def test_keras(self):
        out = self.path("out.weights.h5")
        self.check_failed_write(["export", "--to", "keras", self.ck, out], out)

    @unittest.skipIf(torch is None, NO_TORCH)
    def test_torch(self):
        out = self.path("out.pt")
        self.check_failed_write(["export", "--to", "torch", self.ck, out], out)

    def test_temporaries_of_dead_writers_are_removed_live_ones_kept(self):
        out = self.path("out.weights.h5")
        dead = subprocess.Popen(["true"])
        dead.wait()  # its pid names no live process now
        stale, live = f"{out}.tmp.{dead.pid}.0", f"{out}.tmp.{os.getpid()}.7"
        for name in (stale, live):
            with open(name, "wb") as f:
                f.write(b"partial")
        self.assertEqual(run_tool("export", "--to", "keras", self.ck, out)[0], 0)
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(live))

    def test_temporary_name_follows_the_cpp_writer(self):
        seen = []
        real_replace = os.replace
        ewe_weights.os.replace = lambda src, dst: (seen.append(src), real_replace(src, dst))[1]
        try:
            ewe_weights.write_file_atomically(self.path("x.bin"), b"123")
        finally:
            ewe_weights.os.replace = real_replace
        self.assertRegex(os.path.basename(seen[0]), rf"^x\.bin\.tmp\.{os.getpid()}\.\d+$")
        with open(self.path("x.bin"), "rb") as f:
            self.assertEqual(f.read(), b"123")


class Width(Case):
    """Checkpoints of model.width other than 1 convert both ways."""

    def test_keras_round_trip(self):
        ck, keras, back = self.path("ck.safetensors"), self.path("model.weights.h5"), self.path("back.safetensors")
        make_checkpoint(ck, width=0.5)
        self.assertEqual(run_tool("export", "--to", "keras", ck, keras)[0], 0)
        with h5py.File(keras, "r") as f:  # the Keras file holds width-0.5 layers: 2 and 3 filters
            shapes = sorted(tuple(d.shape) for n, d in _datasets(f) if len(d.shape) == 4)
        self.assertIn((3, 3, 1, 2), shapes)
        self.assertEqual(run_tool("import", "--from", "keras", keras, back)[0], 0)
        self.assert_same_checkpoint(ck, back)
        self.assertEqual(read_checkpoint(back)[0]["model.width"], "0.5")

    @unittest.skipIf(torch is None, NO_TORCH)
    def test_torch_round_trip(self):
        ck, pt, back = self.path("ck.safetensors"), self.path("model.pt"), self.path("back.safetensors")
        make_checkpoint(ck, width=0.5)
        self.assertEqual(run_tool("export", "--to", "torch", ck, pt)[0], 0)
        self.assertEqual(tuple(torch.load(pt)["encoder.0.conv.weight"].shape), (2, 1, 3, 3))
        self.assertEqual(run_tool("import", "--from", "torch", pt, back)[0], 0)
        self.assert_same_checkpoint(ck, back)

    def test_torch_layout_round_trip_without_torch(self):
        c = make_checkpoint(self.path("ck.safetensors"), width=0.25, filters=(8, 12), units=(20, 12, 8))
        _, tensors, _ = ewe_weights.read_checkpoint(self.path("ck.safetensors"))
        state = ewe_weights.torch_state(c, tensors)
        self.assertEqual(state["encoder.0.conv.weight"].shape, (2, 1, 3, 3))
        found = ewe_weights.infer_options(ewe_weights.torch_groups(state, "state"), "state")
        back = ewe_weights.check_against(ewe_weights.with_width(found, 0.25, {}, "state"),
                                         ewe_weights.torch_groups(state, "state"), "state")
        self.assertEqual(list(back), list(tensors))
        for k in tensors:
            self.assertEqual(back[k].tobytes(), tensors[k].tobytes(), k)

    def test_file_saved_by_keras_itself_needs_the_width_flag(self):
        ck, keras = self.path("ck.safetensors"), self.path("model.weights.h5")
        c = make_checkpoint(ck, width=0.5, filters=(10, 20, 40, 80), units=(100, 50, 25), image_size=28, kernel=4)
        self.assertEqual(run_tool("export", "--to", "keras", ck, keras)[0], 0)
        with h5py.File(keras, "a") as f:  # as model.save_weights writes it: no ewe metadata
            del f.attrs[ewe_weights.CARRIED_METADATA]
        plain, halved = self.path("plain.safetensors"), self.path("halved.safetensors")
        self.assertEqual(run_tool("import", "--from", "keras", keras, plain)[0], 0)
        meta, _ = read_checkpoint(plain)  # the same layers, listed at width 1
        self.assertEqual((meta["model.width"], meta["model.filters"], meta["model.units"]),
                         ("1", ",".join(map(str, c.scaled_filters())), ",".join(map(str, c.scaled_units()))))
        self.assertEqual(run_tool("import", "--from", "keras", keras, halved, "--width", "0.5")[0], 0)
        self.assert_same_checkpoint(ck, halved)

    def test_sheep_vae_width_half_both_ways(self):
        if SHEEP_VAE is None:
            self.skipTest("needs --sheep-vae (ctest passes the built program)")
        run = self.path("run")
        train = subprocess.run([SHEEP_VAE, "train", "--width", "0.5", "--epochs", "1", "--limit", "32", "--batch", "8",
                                "--snapshots", "", "--quiet", "--threads", "1", "--out", run],
                               capture_output=True, text=True, timeout=600)
        self.assertEqual(train.returncode, 0, train.stderr)
        ck = os.path.join(run, "checkpoint.safetensors")
        self.assertEqual(read_checkpoint(ck)[0]["model.width"], "0.5")
        files = [("keras", self.path("model.weights.h5"))] + ([("torch", self.path("model.pt"))] if torch else [])
        drawings = self.generate(ck, "original")
        for framework, exported in files:
            back = self.path(f"from_{framework}.safetensors")
            rc, _, err = run_tool("export", "--to", framework, ck, exported)
            self.assertEqual(rc, 0, err)
            rc, _, err = run_tool("import", "--from", framework, exported, back)
            self.assertEqual(rc, 0, err)
            self.assert_same_checkpoint(ck, back)
            self.assertEqual(self.generate(back, framework), drawings, f"ewe draws differently after {framework}")

    def generate(self, checkpoint, name):
        """The PNG bytes sheep_vae generate draws from `checkpoint` (4 drawings, seed 3)."""
        out = self.path(f"generated_{name}.png")
        r = subprocess.run([SHEEP_VAE, "generate", "--checkpoint", checkpoint, "--count", "4", "--seed", "3",
                            "--out", out], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            return f.read()


def _datasets(h5):
    found = []
    h5.visititems(lambda n, o: found.append((n, o)) if isinstance(o, h5py.Dataset) else None)
    return found


def main():
    global SHEEP_VAE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sheep-vae", help="the sheep_vae program, for a real width-0.5 checkpoint")
    args, rest = p.parse_known_args()
    if ewe_weights is None:
        print(f"{'FAIL' if os.environ.get('CI') == 'true' else 'SKIPPED'}: test_ewe_weights.py needs numpy and "
              f"h5py ({MISSING}); apt-get install python3-numpy python3-h5py", file=sys.stderr)
        return 1 if os.environ.get("CI") == "true" else 77
    SHEEP_VAE = args.sheep_vae
    if torch is None:
        print(f"note: torch cases skipped: {NO_TORCH}", file=sys.stderr)
    result = unittest.main(argv=[sys.argv[0], *rest], exit=False).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
