#!/usr/bin/env bash
# One run, side by side on one GPU: a training step of the seed sheep VAE (RMSprop, fp32,
# loss 2*28*28*MSE + KL) in ewe (bench_cuda_cuda_ops' train_step_eager / train_step_graph
# rows, CUDA events) and in PyTorch (torch_sheep_vae.py bench, eager and
# torch.compile(mode="reduce-overhead")), at batch 8, 64 and 256. Both sides synchronize
# after every step and report the median. Prints every side's output, then one table
# (ms/step, samples/s, ratios, device memory), and writes the table as JSON:
# a list of objects with batch, ewe_ms_per_step (graph), ewe_eager_ms_per_step,
# torch_eager_ms_per_step, torch_compile_ms_per_step, the memory of each, device, driver,
# CUDA, cuDNN and PyTorch versions and the commit.
# Usage (on the GPU machine, e.g. with the programs scripts/pack_gpu_tests.sh carries):
#   bash bench/compare/gpu_step.sh BENCH_EXE [JSON-OUT] [steps] [budget-seconds]
#   JSON-OUT defaults to bench/results/compare-<gpu>-<yyyymmdd>.json. With a budget, the
#   runs (ewe, then PyTorch eager at each batch, then torch.compile at each batch) share
#   it, each stopped when it runs out, and the table is written from what finished.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bench=${1:?usage: gpu_step.sh BENCH_EXE [JSON-OUT] [steps] [budget-seconds]}
steps=${3:-200}
deadline=$((SECONDS + ${4:-86400}))
left() { local l=$((deadline - SECONDS - 10)); ((l > 1)) && echo "$l" || echo 1; }  # 10 s kept for the table
[[ -x $bench ]] || { echo "gpu_step.sh: $bench is not an executable (build bench_cuda_cuda_ops)" >&2; exit 1; }
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
slug=$(echo "$gpu" | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-' | sed 's/^nvidia-//')
json_out=${2:-$root/bench/results/compare-$slug-$(date -u +%Y%m%d).json}
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || head -1 "$root/.carry/build/COMMIT" 2>/dev/null)
work=$(mktemp -d)
echo "# gpu_step.sh: $gpu, driver $driver, commit ${commit:-unknown}, $(date -u +%FT%TZ), $steps timed steps"

# The program prints its device report on stdout; the rows go to ewe.json.
timeout "$(left)" "$bench" --benchmark_filter='train_step' --benchmark_min_time=0.5 \
  --benchmark_out="$work/ewe.json" --benchmark_out_format=json >"$work/ewe.out" 2>&1 ||
  { cat "$work/ewe.out" >&2; exit 1; }
head -1 "$work/ewe.out"
for mode in eager compile; do
  for batch in 8 64 256; do
    flag=(); [[ $mode == compile ]] && flag=(--compile)
    timeout "$(left)" python3 "$root/bench/compare/torch_sheep_vae.py" bench --device cuda --batch "$batch" \
      --steps "$steps" --warmup 20 "${flag[@]}" >"$work/torch_${mode}_$batch.json" 2>"$work/torch_${mode}_$batch.err"
    rc=$?
    ((rc == 0)) || { echo "torch $mode batch $batch failed (exit $rc$( ((rc == 124)) && echo ", out of time")):" >&2
      tail -20 "$work/torch_${mode}_$batch.err" >&2; rm -f "$work/torch_${mode}_$batch.json"; }
  done
done

python3 - "$work" "$json_out" "$gpu" "$driver" "${commit:-unknown}" <<'PY'
import json, os, sys
work, out_path, gpu, driver, commit = sys.argv[1:]
ewe = json.load(open(f"{work}/ewe.json"))
print(json.dumps(ewe["context"]))
rows = {}
for b in ewe["benchmarks"]:
    print(json.dumps({k: b[k] for k in ("name", "real_time", "time_unit", "items_per_second", "device_MiB") if k in b}))
    kind, batch = b["name"].split("/")[0], int(b["name"].split("batch:")[1].split("/")[0])
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    rows.setdefault(batch, {})[kind] = (b["real_time"] * scale, b.get("device_MiB"))
table = []
for batch in sorted(rows):
    torch_side = {}
    for mode in ("eager", "compile"):
        path = f"{work}/torch_{mode}_{batch}.json"
        text = open(path).read().strip() if os.path.exists(path) else ""
        print(text or f"(torch {mode} batch {batch}: no result)")
        torch_side[mode] = json.loads(text.splitlines()[-1]) if text else None
    get = lambda mode, key: torch_side[mode][key] if torch_side[mode] else None
    graph, eager = rows[batch].get("train_step_graph", (None, None)), rows[batch].get("train_step_eager", (None, None))
    table.append({"batch": batch, "ewe_ms_per_step": graph[0], "ewe_eager_ms_per_step": eager[0],
                  "torch_eager_ms_per_step": get("eager", "ms_per_step"),
                  "torch_compile_ms_per_step": get("compile", "ms_per_step"),
                  "ewe_device_mib": graph[1], "torch_eager_peak_device_mib": get("eager", "peak_device_mib"),
                  "torch_compile_peak_device_mib": get("compile", "peak_device_mib"),
                  "device": gpu, "driver": driver, "torch": get("eager", "version"), "cuda": get("eager", "cuda"),
                  "cudnn": get("eager", "cudnn"), "commit": commit})
ratio = lambda a, b: f"{a / b:7.2f}x" if a and b else "      -"
num = lambda v, f: format(v, f) if v is not None else "-".rjust(len(format(0.0, f)))
print(f"{'batch':>5} {'ewe graph':>10} {'ewe eager':>10} {'torch eager':>11} {'torch compile':>13}"
      f" {'vs eager':>8} {'vs compile':>10} {'ewe MiB':>8} {'torch MiB':>9}   (ms/step; samples/s = batch * 1000 / ms)")
for r in table:
    print(f"{r['batch']:>5} {num(r['ewe_ms_per_step'], '10.4f')} {num(r['ewe_eager_ms_per_step'], '10.4f')}"
          f" {num(r['torch_eager_ms_per_step'], '11.4f')} {num(r['torch_compile_ms_per_step'], '13.4f')}"
          f" {ratio(r['torch_eager_ms_per_step'], r['ewe_ms_per_step']):>8}"
          f" {ratio(r['torch_compile_ms_per_step'], r['ewe_ms_per_step']):>10}"
          f" {num(r['ewe_device_mib'], '8.0f')} {num(r['torch_eager_peak_device_mib'], '9.0f')}")
os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
with open(out_path, "w") as f:
    json.dump(table, f, indent=1)
print(f"wrote {out_path}")
PY
rc=$?
rm -rf "$work"
exit $rc
