"""The table of bench/compare/peers.sh, from its lines "NAME JSON" (NAME: ewe, for a
`sheep_vae bench --json` line, ewe-bf16 for one with bf16 products, or a peer of peer_step.py; JSON {"failed": true, "batch": B}
for a peer run that failed): a Markdown table of ms/step at batch 8 and 64, each peer's
time over ewe's, and peak RSS.

    python3 peer_table.py LINES_FILE"""
import json
import statistics
import sys

BATCHES = (8, 64)
LABELS = {
    "ewe": "ewe `sheep_vae bench`",
    "keras-tf": "Keras {keras} on TensorFlow {tensorflow}, `fit`",
    "torch-eager": "PyTorch {torch} eager",
    "torch-compile": "PyTorch {torch} `torch.compile`",
    "keras-jax": "Keras {keras} on JAX {jax}, `fit` (jitted)",
    "torch-bf16": "PyTorch {torch} eager, bf16 autocast",
    "ewe-bf16": "ewe `sheep_vae bench --product-precision bf16`",
}


def read_runs(path):
    runs = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            name, _, payload = line.strip().partition(" ")
            if name not in LABELS:
                sys.exit(f"{path}:{number}: expected a line 'NAME JSON' with NAME one of {', '.join(LABELS)}, found {line!r}")
            run = json.loads(payload)
            runs.setdefault((name, run["batch"]), []).append(run)
    return runs


def row(name, runs, ewe_ms):
    """One row: ms/step with its spread, ratios to ewe, peak RSS, and the label."""
    cells, ratios, rss, versions, notes = [], [], [], {}, []
    for batch in BATCHES:
        done = [r for r in runs.get((name, batch), []) if not r.get("failed")]
        if not done:
            cells.append("failed" if (name, batch) in runs else "-")
            ratios.append("-")
            rss.append("-")
            continue
        versions = done[0].get("versions", versions)
        if name == "ewe":  # the median of its runs' medians, their range
            ms = [r["ms_per_step"] for r in done]
            median = statistics.median(ms)
            cells.append(f"{median:.0f} ({len(ms)} runs: {min(ms):.0f}-{max(ms):.0f})")
            rss.append(f"{max(r['peak_rss_mb'] for r in done):.0f}")
        else:
            r = done[0]
            median = r["ms_per_step"]
            cells.append(f"{median:.0f} ({r['ms_min']:.0f}-{r['ms_max']:.0f})")
            rss.append(f"{r['peak_rss_mb']:.0f}")
            for key, text in (("jit_compile", "jit_compile={}"), ("transposed_convolution", "transposed convolutions: {}")):
                if key in r and text.format(r[key]) not in notes:
                    notes.append(text.format(r[key]))
        ratios.append(f"{median / ewe_ms[batch]:.2f}" if batch in ewe_ms else "-")
    label = LABELS[name].format(**versions) if versions or name.startswith("ewe") else name
    if notes:
        label += f" ({', '.join(notes)})"
    return f"| {label} | {cells[0]} | {cells[1]} | {' / '.join(ratios)} | {' / '.join(rss)} MB |"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = read_runs(sys.argv[1])
    ewe_ms = {b: statistics.median(r["ms_per_step"] for r in runs[("ewe", b)]) for b in BATCHES if ("ewe", b) in runs}
    print("| | batch 8 ms/step | batch 64 ms/step | time / ewe's, b8 / b64 | peak RSS b8 / b64 |")
    print("|---|---|---|---|---|")
    for name in LABELS:
        if any(key[0] == name for key in runs):
            print(row(name, runs, ewe_ms))
    print("ms/step: the median of a run's timed steps, its fastest-slowest step in brackets; ewe: the median of"
          " its runs' medians, their range in brackets. Peak RSS: the process's maximum resident memory.")


if __name__ == "__main__":
    main()
