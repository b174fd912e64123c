#!/usr/bin/env bash
# Installs the Debian packages ewe builds with when they are missing (as root), or
# stops with the exact apt-get line to run; the optional MPI packages are installed as
# root only. Sourced by scripts/test.sh and scripts/example.sh; safe to run on its own.
set -euo pipefail

packages=(cmake g++ make libeigen3-dev doctest-dev libbenchmark-dev libcli11-dev)
# Optional: Open MPI, for data-parallel training (ewe::mpi, sheep_vae train --distributed)
# and its 2-rank test, and numpy and h5py for tools/ewe_weights.py and its test
# (conversion_tool); installed when running as root, else those tests are skipped.
optional=(libopenmpi-dev openmpi-bin python3-numpy python3-h5py)
missing=()
[[ $(id -u) -eq 0 ]] && packages+=("${optional[@]}")
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "ewe: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "ewe: missing Debian packages; run:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
