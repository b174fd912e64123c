#!/usr/bin/env bash
# The sheep_vae report in a real browser (ctest: report_in_browser, label python).
# A small real run on $EWE_DATA (train --limit 100 --epochs 2, explore, anomalies with 10
# cats planted, generate --grid), then `sheep_vae report` of all of it with the hand-made
# sweep.csv of tests/report/sweep_fixture, and of --run alone; each page is loaded in
# headless Chromium over the DevTools protocol (check_in_browser.py: no console errors or
# exceptions, every image decoded, every inline SVG laid out, nothing outside the file, a
# full-page screenshot of the page's size) and must be under 10 MB. A copy of the full
# page with one image's data: URI broken must fail the same check, so a check that
# cannot fail is caught.
#
# Needs Debian's chromium and python3-websocket, installed with apt-get when missing
# (as root). When they cannot be installed the test fails naming them (CI=true), or
# otherwise skips with exit 77; without EWE_DATA/sheep.npy it skips (77).
# Usage: run.sh SHEEP_VAE WORK_DIR
set -euo pipefail
sheep_vae=${1:?usage: run.sh SHEEP_VAE WORK_DIR}
work=${2:?usage: run.sh SHEEP_VAE WORK_DIR}
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3
mkdir -p "$work"

missing() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "FAIL: report browser test: $*" >&2
    exit 1
  fi
  echo "SKIPPED: report browser test not run: $* (set CI=true to make this a failure)" >&2
  exit 77
}

data=${EWE_DATA:-}
if [[ -z $data || ! -f $data/sheep.npy || ! -f $data/cat.npy ]]; then
  echo "SKIPPED: report browser test needs EWE_DATA with sheep.npy and cat.npy (EWE_DATA='$data')" >&2
  exit 77
fi

if ! command -v chromium >/dev/null || ! $python -c "import websocket" 2>/dev/null; then
  echo "installing chromium and python3-websocket (apt) ..."
  [[ $(id -u) == 0 ]] || missing "chromium and python3-websocket are not installed and this is not root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium python3-websocket >"$work/apt.log" 2>&1 ||
    { apt-get update >>"$work/apt.log" 2>&1 &&
      apt-get install -y --no-install-recommends chromium python3-websocket >>"$work/apt.log" 2>&1; } ||
    missing "apt-get install chromium python3-websocket failed (see $work/apt.log)"
fi

run=$work/run
rm -rf "$run" "$work/explore" "$work/anomalies"
"$sheep_vae" train --limit 100 --epochs 2 --kl-start 1 --kl-steep 1 --snapshots 1,2 --out "$run" --quiet
"$sheep_vae" explore --checkpoint "$run/checkpoint.safetensors" --data "$data/sheep.npy" --limit 100 --k-max 8 \
  --mosaic-k 20 --trials 20 --min-pts-max 30 --out "$work/explore" >/dev/null
"$sheep_vae" anomalies --checkpoint "$run/checkpoint.safetensors" --data "$data/sheep.npy" --limit 100 \
  --plant "$data/cat.npy:10" --out "$work/anomalies" >/dev/null
"$sheep_vae" generate --checkpoint "$run/checkpoint.safetensors" --grid --grid-size 6 --out "$work/grid.png"
"$sheep_vae" report --run "$run" --explore "$work/explore" --anomalies "$work/anomalies" --generate "$work/grid.png" \
  --sweep "$here/sweep_fixture" --out "$work/full.html"
"$sheep_vae" report --run "$run" --out "$work/only_run.html"

fail=0
for page in full only_run; do
  size=$(stat -c %s "$work/$page.html")
  echo "$page.html: $size bytes"
  if (( size >= 10 * 1024 * 1024 )); then
    echo "FAIL: $page.html is $size bytes, over 10 MB" >&2
    fail=1
  fi
  timeout 120 $python "$here/check_in_browser.py" "$work/$page.html" "$work/$page.png" || fail=1
done
# full.html: no input missing; images of every kind; the sweep's inline bar chart.
if grep -q 'class="missing"' "$work/full.html"; then
  echo "FAIL: full.html says an input is missing:" >&2
  grep -o '<p class="missing">[^<]*' "$work/full.html" >&2
  fail=1
fi
for what in 'latent_epoch002.svg' 'kmeans_20_centres.png' 'dbscan_cluster_strips.png' 'histogram_sse.svg' \
  'above_cutoff.png' 'grid.png' 'Anomaly ROC AUC by run' 'precision@10'; do
  grep -qF "$what" "$work/full.html" || { echo "FAIL: full.html lacks '$what'" >&2; fail=1; }
done

# The check must fail on a page with a broken image.
$python - "$work/full.html" "$work/broken.html" <<'EOF'
import sys
page = open(sys.argv[1]).read()
at = page.index("data:image/png;base64,") + len("data:image/png;base64,")
open(sys.argv[2], "w").write(page[:at] + "AAAA" + page[at + 4:])
EOF
if timeout 120 $python "$here/check_in_browser.py" "$work/broken.html" "$work/broken.png" 2>"$work/broken.err"; then
  echo "FAIL: check_in_browser.py passed a page with a broken PNG data: URI" >&2
  fail=1
elif ! grep -q "did not decode" "$work/broken.err"; then
  echo "FAIL: check_in_browser.py failed the broken page for another reason:" >&2
  cat "$work/broken.err" >&2
  fail=1
else
  echo "the broken page fails as it should: $(grep -m1 'did not decode' "$work/broken.err")"
fi
exit $fail
