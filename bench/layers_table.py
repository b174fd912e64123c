#!/usr/bin/env python3
"""The per-layer table of docs/performance.md from the JSON of bench_cpu_layers (and,
optionally, bench_cpu_layers_onednn), both run with --benchmark_repetitions and
--benchmark_format=json (or --benchmark_out). Each time is the minimum over the
repetitions; --clock cpu takes the main thread's CPU time (robust on a shared machine,
for OMP_NUM_THREADS=1 runs, where the main thread does all the work) and compares with
BM_PeakFma's GFLOP/s_cpu, --clock real the wall clock against its GFLOP/s.
ewe's backward-data is its `backward` (input and filter gradients in one call, as the
layers run it) minus its `backward_weights` (the same call without the input gradient).

Passes under --fold percent of their batch's total ewe time are summed into one row.
--before BEFORE_JSON (an earlier binary's run of the same passes) adds a "before ms"
column and takes the passes from EWE_JSON, whatever it holds.

usage: layers_table.py EWE_JSON [ONEDNN_JSON] [--before BEFORE_JSON] [--clock cpu|real] [--threads N] [--fold PERCENT]
"""
import argparse
import json
import re
import sys

NAME = re.compile(r"^(ewe|onednn)/(.+)/(forward|backward_weights|backward_data|backward)/batch:(\d+)/real_time$")


def min_times(path, clock):
    """{(library, layer, pass, batch): (min ms, GFLOP per call, label)} and the peaks."""
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    times, peaks = {}, {}
    for run in runs:
        if run.get("run_type") != "iteration":
            continue
        name = run["name"]
        if name.startswith("BM_PeakFma/"):
            threads = int(name.split("/")[1])
            rate = run["GFLOP/s_cpu" if clock == "cpu" else "GFLOP/s"]
            peaks[threads] = max(peaks.get(threads, 0.0), rate)
            continue
        m = NAME.match(name)
        if not m:
            continue
        key = (m.group(1), m.group(2), m.group(3), int(m.group(4)))
        ms = run["cpu_time" if clock == "cpu" else "real_time"]
        assert run["time_unit"] == "ms", name
        label = run.get("label", "").split(" ")
        old = times.get(key)
        if old is None or ms < old[0]:
            times[key] = (ms, run["GFLOP"], " ".join(label[:2]))
    return times, peaks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ewe_json")
    parser.add_argument("onednn_json", nargs="?")
    parser.add_argument("--clock", choices=["cpu", "real"], default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="the OMP_NUM_THREADS of the runs (picks the peak)")
    parser.add_argument("--before", help="an earlier run of the same passes: a before column")
    parser.add_argument("--fold", type=float, default=0.0,
                        help="sum the passes under this percent of their batch's ewe total into one row")
    args = parser.parse_args()
    ewe, peaks = min_times(args.ewe_json, args.clock)
    onednn = min_times(args.onednn_json, args.clock)[0] if args.onednn_json else {}
    before = min_times(args.before, args.clock)[0] if args.before else None
    if args.threads not in peaks:
        sys.exit(f"layers_table.py: {args.ewe_json} has no BM_PeakFma/{args.threads} run (run it with "
                 f"--benchmark_filter including PeakFma)")
    peak = peaks[args.threads]
    print(f"peak: {peak:.1f} GFLOP/s ({args.threads} thread(s), {args.clock} clock); times: min over repetitions")
    print()
    before_head = "before ms | " if before is not None else ""
    print(f"| layer | shape | pass | batch | {before_head}ewe ms | GFLOP/s | % peak | oneDNN ms | oneDNN % peak |")
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if before is not None else ""))
    layers = []
    for (_, layer, _, _) in ewe:
        if layer not in layers:
            layers.append(layer)
    def pass_time(times, layer, pass_, batch):
        """(ms, GFLOP, label) of one pass, None where the run lacks it."""
        if pass_ != "backward_data":
            return times.get(("ewe", layer, pass_, batch))
        both = times.get(("ewe", layer, "backward", batch))
        weights = times.get(("ewe", layer, "backward_weights", batch))
        if both is None or weights is None:
            return None  # the model's input gets no gradient
        return both[0] - weights[0], both[1] - weights[1], both[2]

    rows = []  # (layer, label, pass, batch, ewe ms, GFLOP, oneDNN ms or None, before ms or None)
    for layer in layers:
        for batch in sorted({k[3] for k in ewe if k[1] == layer}):
            for pass_ in ("forward", "backward_data", "backward_weights"):
                ours = pass_time(ewe, layer, pass_, batch)
                if ours is None:
                    continue
                ms, gflop, label = ours
                theirs = onednn.get(("onednn", layer, pass_, batch))
                earlier = pass_time(before, layer, pass_, batch) if before is not None else None
                rows.append((layer, label, pass_, batch, ms, gflop, theirs[0] if theirs else None,
                             earlier[0] if earlier else None))

    def line(layer, label, pass_, batch, ms, gflop, their_ms, before_ms):
        rate = gflop / (ms / 1e3)
        theirs = (f"{their_ms:.3f} | {100 * gflop / (their_ms / 1e3) / peak:.0f}" if their_ms else "- | -")
        earlier = (f"{before_ms:.3f} | " if before_ms else "- | ") if before is not None else ""
        print(f"| {layer} | {label} | {pass_} | {batch} | {earlier}{ms:.3f} | {rate:.1f} | {100 * rate / peak:.0f} | "
              f"{theirs} |")

    for batch in sorted({r[3] for r in rows}):
        batch_rows = [r for r in rows if r[3] == batch]
        total = sum(r[4] for r in batch_rows)
        small = [r for r in batch_rows if 100 * r[4] / total < args.fold]
        for r in batch_rows:
            if r not in small:
                line(*r)
        def summed(group, column):
            values = [r[column] for r in group]
            return sum(values) if all(values) else None

        if small:
            line(f"{len(small)} smaller passes", "", "", batch, sum(r[4] for r in small), sum(r[5] for r in small),
                 summed(small, 6), summed(small, 7))
        line("all these passes", "", "all", batch, total, sum(r[5] for r in batch_rows), summed(batch_rows, 6),
             summed(batch_rows, 7))


if __name__ == "__main__":
    main()
