"""VPT vs LPT, each with the base optimizer and with GNM, on the embedded default, over several seeds.

    python bench/lpt_vs_vpt.py [--seeds 3] [--out runs/lpt_vs_vpt] [--figures figures]

Prints overall / many / medium / few (mean ± std) and seconds per step, and writes
figures/lpt_vs_vpt_synthetic.{png,pdf}. Existing runs are reused.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ltlab import plots
from ltlab.config import load_config
from ltlab.train import fit

SETUPS = {
    "vpt+adamw": ("synthetic", []),
    "vpt+gnm": ("synthetic", ["optimizer.name=gnm"]),
    "lpt+adamw": ("lpt_synthetic", []),
    "lpt+gnm": ("lpt_synthetic", ["optimizer.name=gnm"]),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="runs/lpt_vs_vpt")
    ap.add_argument("--figures", default="figures")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (exercises the script)")
    a = ap.parse_args()
    quick = ["epochs=1", "lpt_phase1_epochs=1", "data.num_classes=6", "data.n_max=20", "data.imbalance_ratio=5",
             "model.pool_size=3"] if a.quick else []
    rows = []
    for name, (preset, over) in SETUPS.items():
        vals = []
        for seed in range(a.seeds):
            path = Path(a.out) / f"{name}-s{seed}"
            if (path / "summary.json").exists():
                s = json.loads((path / "summary.json").read_text())
            else:
                s = fit(load_config(preset, over + quick + [f"seed={seed}"]), out=path, progress=False)
            vals.append(s)
        row = {"method": name, "n": len(vals)}
        for k in ("overall", "many", "medium", "few", "sec_per_step"):
            xs = [v[k] for v in vals]
            row[k], row[k + "_std"] = statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0
        rows.append(row)
    print(f"embedded default, {a.seeds} seeds, test accuracy (%) of the best-on-val epoch (LPT: phase 2)\n")
    print("| method | overall | many | medium | few | s/step (phase 2 for LPT) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{r[k]:.2f} ± {r[k + '_std']:.2f}" for k in ("overall", "many", "medium", "few"))
        print(f"| {r['method']} | {cells} | {r['sec_per_step']:.3f} |")
    fig = plots.group_bars(rows, label="method")
    for p in plots.save(fig, "lpt_vs_vpt_synthetic" if not a.quick else "lpt_vs_vpt_quick", a.figures):
        print(f"figure: {p}")


if __name__ == "__main__":
    main()
