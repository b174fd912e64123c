#!/usr/bin/env bash
# End-to-end test of tools/ewe_weights.py (ctest: conversion_keras_torch, label python).
# The seed sheep VAE with random weights and BatchNorm statistics in Keras 3 (JAX backend)
# and in PyTorch (bench/compare/torch_sheep_vae.py) runs its eval inference on 16 sheep;
# the weights are converted to ewe checkpoints and ewe (ewe_infer) runs the same inference:
# z_mean, z_log_var and the reconstruction must agree within a max relative error of 1e-5
# (reference.py rel_error). Then ewe -> keras -> ewe and ewe -> torch -> ewe must give
# bit-identical tensors, and Keras' load_weights / torch's load_state_dict(strict=True)
# must accept the exported files. A width-0.5 model converts too.
#
# Environment, installed on first use and cached: a venv in WORK/venv (Debian's python3,
# --system-site-packages so that Debian's python3-torch is visible) with pinned keras, jax,
# numpy, h5py and safetensors from PyPI; python3-torch (PyTorch 1.13) from apt when root.
# When something cannot be installed the test fails naming it (CI=true), or otherwise
# skips with exit 77 and the reason.
# Usage: run.sh EWE_INFER WORK_DIR
set -euo pipefail
ewe_infer=${1:?usage: run.sh EWE_INFER WORK_DIR}
work=${2:?usage: run.sh EWE_INFER WORK_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tool=$root/tools/ewe_weights.py
sys_python=/usr/bin/python3
pins="keras==3.8.0 jax==0.4.38 jaxlib==0.4.38 numpy==1.26.4 h5py==3.12.1 safetensors==0.4.5"
mkdir -p "$work"
start=$(date +%s)

missing() {  # a dependency that could not be installed: fail in CI, else a loud skip
  if [[ "${CI:-}" == "true" ]]; then
    echo "FAIL: conversion test: $*" >&2
    exit 1
  fi
  echo "SKIPPED: conversion test not run: $* (set CI=true to make this a failure)" >&2
  exit 77
}

[[ -x $sys_python ]] || missing "needs Debian's /usr/bin/python3 (apt-get install python3 python3-venv)"
as_root() { [[ $(id -u) == 0 ]]; }
apt_install() {
  as_root || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >"$work/apt.log" 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update >>"$work/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$work/apt.log" 2>&1; }
}

# PyTorch: Debian's python3-torch (1.13, CPU, ~1.5 GB with its dependencies).
if ! $sys_python -c "import torch" 2>/dev/null; then
  echo "installing python3-torch (apt) ..."
  t0=$(date +%s)
  apt_install python3-torch || missing "PyTorch: apt-get install python3-torch failed or not root (see $work/apt.log)"
  echo "python3-torch installed in $(( $(date +%s) - t0 )) s"
fi

# Keras 3 + JAX: a venv cached in $work/venv, rebuilt when the pins change.
venv=$work/venv
if [[ ! -f $venv/.pins || $(cat "$venv/.pins") != "$pins" ]]; then
  echo "creating $venv ($pins) ..."
  t0=$(date +%s)
  rm -rf "$venv"
  $sys_python -c "import ensurepip" 2>/dev/null || apt_install python3-venv ||
    missing "python3-venv: apt-get install python3-venv failed or not root"
  $sys_python -m venv --system-site-packages "$venv" || missing "python3 -m venv failed"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $pins >"$work/pip.log" 2>&1 ||
    { tail -5 "$work/pip.log" >&2; missing "pip install $pins failed (no network to PyPI?); see $work/pip.log"; }
  echo "$pins" >"$venv/.pins"
  echo "venv ready in $(( $(date +%s) - t0 )) s, $(du -sh "$venv" | cut -f1)"
fi
py=$venv/bin/python
export KERAS_BACKEND=jax JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1
"$py" -c "import torch, keras, jax, h5py, safetensors" ||
  { echo "FAIL: the venv $venv cannot import torch, keras, jax, h5py and safetensors (installed but broken)" >&2; exit 1; }

out=$work/run
rm -rf "$out"
mkdir -p "$out"
"$py" "$here/reference.py" input "$out/x.npy" --count 16

# Keras 3 (JAX) and PyTorch references, converted to ewe checkpoints, ewe's inference.
"$py" "$here/reference.py" keras "$out/keras" --input "$out/x.npy"
"$py" "$here/reference.py" torch "$out/torch" --input "$out/x.npy"
"$py" "$tool" import --from keras "$out/keras/model.weights.h5" "$out/keras.safetensors"
"$py" "$tool" import --from keras "$out/keras/model.keras" "$out/keras_zip.safetensors"
"$py" "$tool" import --from torch "$out/torch/state_dict.pt" "$out/torch.safetensors"
"$ewe_infer" --checkpoint "$out/keras.safetensors" --input "$out/x.npy" --out "$out/ewe_keras"
"$ewe_infer" --checkpoint "$out/torch.safetensors" --input "$out/x.npy" --out "$out/ewe_torch"
status=0
"$py" "$here/reference.py" compare "$out/keras" "$out/ewe_keras" keras || status=1
"$py" "$here/reference.py" compare "$out/torch" "$out/ewe_torch" torch || status=1
"$py" "$here/reference.py" same "$out/keras.safetensors" "$out/keras_zip.safetensors" || status=1

# Round trips ewe -> keras -> ewe and ewe -> torch -> ewe, and the frameworks' loaders.
"$py" "$tool" export --to keras "$out/keras.safetensors" "$out/rt.weights.h5"
"$py" "$tool" export --to keras "$out/keras.safetensors" "$out/rt_like.weights.h5" --like "$out/keras/model.keras"
"$py" "$tool" import --from keras "$out/rt.weights.h5" "$out/rt_keras.safetensors"
"$py" "$tool" export --to torch "$out/torch.safetensors" "$out/rt.pt"
"$py" "$tool" import --from torch "$out/rt.pt" "$out/rt_torch.safetensors"
"$py" "$here/reference.py" same "$out/keras.safetensors" "$out/rt_keras.safetensors" || status=1
"$py" "$here/reference.py" same "$out/torch.safetensors" "$out/rt_torch.safetensors" || status=1
"$py" "$here/reference.py" keras-load "$out/keras/model.weights.h5" "$out/rt.weights.h5" || status=1
"$py" "$here/reference.py" keras-load "$out/keras/model.weights.h5" "$out/rt_like.weights.h5" || status=1
"$py" "$here/reference.py" torch-load "$out/torch/state_dict.pt" "$out/rt.pt" || status=1
# Across frameworks: the Keras model's weights through ewe into PyTorch and back.
"$py" "$tool" export --to torch "$out/keras.safetensors" "$out/keras_as.pt"
"$py" "$tool" import --from torch "$out/keras_as.pt" "$out/keras_via_torch.safetensors"
"$py" "$here/reference.py" same "$out/keras.safetensors" "$out/keras_via_torch.safetensors" || status=1

# Another architecture (sizes read from the weights).
"$py" "$here/reference.py" keras "$out/keras_small" --input "$out/x.npy" --filters 6,12,24 --units 40,20,10,5 --latent 3
"$py" "$tool" import --from keras "$out/keras_small/model.weights.h5" "$out/keras_small.safetensors"
"$ewe_infer" --checkpoint "$out/keras_small.safetensors" --input "$out/x.npy" --out "$out/ewe_keras_small"
"$py" "$here/reference.py" compare "$out/keras_small" "$out/ewe_keras_small" small || status=1

# A model at width 0.5 (the layers of sheep_vae train --width 0.5) saved by Keras itself:
# imported with --width 0.5 (model.width recorded), ewe's inference agrees, and the
# checkpoint goes through PyTorch and back with its tensors and model.* metadata.
"$py" "$here/reference.py" keras "$out/keras_half" --input "$out/x.npy" --filters 5,10,20,40 --units 50,25,13
"$py" "$tool" import --from keras "$out/keras_half/model.weights.h5" "$out/keras_half.safetensors" --width 0.5
"$ewe_infer" --checkpoint "$out/keras_half.safetensors" --input "$out/x.npy" --out "$out/ewe_keras_half"
"$py" "$here/reference.py" compare "$out/keras_half" "$out/ewe_keras_half" half || status=1
"$py" "$tool" export --to torch "$out/keras_half.safetensors" "$out/half.pt"
"$py" "$tool" import --from torch "$out/half.pt" "$out/half_via_torch.safetensors"
"$py" "$here/reference.py" same "$out/keras_half.safetensors" "$out/half_via_torch.safetensors" || status=1
grep -q '"model.width":"0.5"' "$out/keras_half.safetensors" ||
  { echo "FAIL: keras_half.safetensors does not record model.width 0.5" >&2; status=1; }

# Errors name the file and the tensor.
"$py" "$here/reference.py" errors "$out" "$out/keras/model.weights.h5" || status=1
if "$py" "$tool" export --to keras "$out/x.npy" "$out/bad.h5" 2>"$out/err.txt"; then
  echo "FAIL: exporting a .npy as a checkpoint succeeded" >&2; status=1
fi
grep -q "x.npy" "$out/err.txt" || { echo "FAIL: the error does not name the file: $(cat "$out/err.txt")" >&2; status=1; }

echo "conversion test: $( ((status == 0)) && echo PASS || echo FAIL ) in $(( $(date +%s) - start )) s"
exit $status
