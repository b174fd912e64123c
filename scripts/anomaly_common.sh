# Shared by scripts/anomaly_study.sh and scripts/anomaly_ensemble_study.sh (sourced, not
# run): their arguments and checks, the header of their output, and the planted drawings.
#   anomaly_setup SCRIPT DEFAULT_OUT "$@"   sets root, data, checkpoint, build, out,
#     sheep_vae from EWE_DATA and the arguments CHECKPOINT [build-dir] [out-dir], checks
#     them, exports OMP_NUM_THREADS=${THREADS:-2}, creates out and prints the header
#     (commit, date, CPU, cores, threads, then EXTRA_HEADER, the checkpoint's hash).
#   plant_rows NAME FIRST END   writes $out/NAME.npy: rows FIRST..END-1 (fewer where a file
#     is shorter) of each other class in $data (bear cat dog duck fish lion monkey rabbit,
#     those present), and $out/NAME_classes.txt: "class rows" per class, in that order.
anomaly_setup() {
  local script=$1 default_out=$2
  shift 2
  local usage="usage: EWE_DATA=DIR bash scripts/$script CHECKPOINT [build-dir] [out-dir]"
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  data=${EWE_DATA:?set EWE_DATA to a folder holding sheep.npy and the other classes}
  checkpoint=${1:?$usage}
  build=${2:-$root/build}
  out=${3:-$root/out/$default_out}
  sheep_vae=$build/examples/sheep_vae/sheep_vae
  [[ -f $checkpoint ]] || { echo "$script: checkpoint $checkpoint not found" >&2; exit 1; }
  [[ -f $data/sheep.npy ]] || { echo "$script: $data/sheep.npy not found" >&2; exit 1; }
  [[ -x $sheep_vae ]] || { echo "$script: $sheep_vae not built (cmake --build $build --target sheep_vae)" >&2; exit 1; }
  export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=${THREADS:-2}
  mkdir -p "$out"
  echo "# scripts/$script: commit $(git -C "$root" rev-parse --short HEAD), $(date -u +%F)," \
       "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc --all) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS${EXTRA_HEADER:+, $EXTRA_HEADER}"
  echo "# checkpoint $checkpoint ($(sha256sum "$checkpoint" | cut -c1-16))"
}

plant_rows() {
  python3 - "$data" "$out" "$@" <<'EOF'
import ast, os, struct, sys
data, out, name, first, end = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
classes, chunks = [], []
for c in ["bear", "cat", "dog", "duck", "fish", "lion", "monkey", "rabbit"]:
    path = os.path.join(data, c + ".npy")
    if not os.path.exists(path):
        print(f"# {c}.npy not in {data}: skipped")
        continue
    raw = open(path, "rb").read()
    offset = 10 if raw[6] == 1 else 12
    (header_len,) = struct.unpack("<H", raw[8:10]) if raw[6] == 1 else struct.unpack("<I", raw[8:12])
    header = ast.literal_eval(raw[offset:offset + header_len].decode("latin1"))
    if header["descr"] != "|u1" or header["shape"][1:] not in [(784,), (28, 28)] or header["shape"][0] <= first:
        sys.exit(f"{path}: expected uint8 (N > {first}, 784), found {header}")
    rows = min(header["shape"][0], end) - first
    body = raw[offset + header_len:]
    classes.append((c, rows))
    chunks.append(body[first * 784:(first + rows) * 784])
n = sum(rows for _, rows in classes)
header = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, 784), }" % n
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(os.path.join(out, name + ".npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + b"".join(chunks))
with open(os.path.join(out, name + "_classes.txt"), "w") as f:
    f.write("".join(f"{c} {rows}\n" for c, rows in classes))
EOF
}
