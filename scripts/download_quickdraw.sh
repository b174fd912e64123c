#!/usr/bin/env bash
# Downloads Quick, Draw! numpy_bitmap files (uint8, N x 784, 0 = background, 255 = ink)
# from Google's public bucket for the sheep VAE example. The Quick, Draw! Dataset by
# Google is licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
#
# Usage: scripts/download_quickdraw.sh [DIR] [CLASS...]
#   DIR defaults to data/quickdraw; CLASS defaults to: sheep cat dog duck fish lion monkey rabbit bear
#   Then: EWE_DATA=DIR build/examples/sheep_vae/sheep_vae train
set -euo pipefail

dir="${1:-data/quickdraw}"
shift || true
if [ "$#" -eq 0 ]; then
  set -- sheep cat dog duck fish lion monkey rabbit bear
fi
base="https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap"
mkdir -p "$dir"

fetch() {  # fetch URL FILE
  if command -v curl > /dev/null; then
    curl --fail --location --retry 3 --output "$2" "$1"
  elif command -v wget > /dev/null; then
    wget --tries=3 --output-document="$2" "$1"
  else
    echo "download_quickdraw.sh: needs curl or wget" >&2
    exit 1
  fi
}

for class in "$@"; do
  out="$dir/$class.npy"
  if [ -s "$out" ]; then
    echo "$out exists, skipping"
    continue
  fi
  url="$base/${class// /%20}.npy"  # class names keep their spaces as %20
  echo "downloading $url -> $out"
  fetch "$url" "$out.part"
  # A .npy file starts with \x93NUMPY; anything else is an error page.
  if [ "$(head -c 6 "$out.part" | tail -c 5)" != "NUMPY" ]; then
    echo "download_quickdraw.sh: $url did not return a .npy file" >&2
    rm -f "$out.part"
    exit 1
  fi
  mv "$out.part" "$out"
done
echo "done: $(ls "$dir" | wc -l) files in $dir (The Quick, Draw! Dataset, Google, CC BY 4.0)"
