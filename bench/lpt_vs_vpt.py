"""VPT vs LPT, each with the base optimizer and with GNM, on the embedded default, over several seeds.

    python bench/lpt_vs_vpt.py [--seeds 3] [--out runs/lpt_vs_vpt] [--figures figures]

Prints overall / many / medium / few (mean ± std over paired seeds, last-epoch rule), the paired
difference of each setup to vpt+<base> (the preset's base optimizer) with a 95 % t-interval, seconds per step, and writes
figures/lpt_vs_vpt_synthetic.{png,pdf}. Finished runs of the same config are reused.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ltlab.config import load_config
from ltlab.reports.figures import setup_figure, setup_rows
from ltlab.stats import paired_difference, with_holm
from ltlab.results.tables import multiplicity_sentence
from ltlab.train import fit
from ltlab.results import ACCURACY, PRIMARY
from ltlab.experiments.compare import finished_with

BASE = load_config("synthetic").optimizer.base
SETUPS = {
    f"vpt+{BASE}": ("synthetic", []),
    "vpt+gnm": ("synthetic", ["optimizer.name=gnm"]),
    f"lpt+{BASE}": ("lpt_synthetic", []),
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
    for name, (preset, over) in SETUPS.items():
        for seed in range(a.seeds):
            path = Path(a.out) / f"{name}-s{seed}"
            cfg = load_config(preset, over + quick + [f"seed={seed}"])
            if not finished_with(path, cfg):  # a finished run of exactly this config is kept, others retrained
                fit(cfg, out=path, progress=False, overwrite=True)
    rows, per_seed, rule = setup_rows(a.out)
    print(f"embedded default, {rule}\n")
    print("| method | overall | many | medium | few | s/step (phase 2 for LPT) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{r[k]:.2f} ± {r[k + '_std']:.2f}" for k in ("overall", "many", "medium", "few"))
        print(f"| {r['method']} | {cells} | {r['sec_per_step']:.3f} |")
    print(f"\npaired difference to vpt+{BASE}: mean [95 % CI] verdict (overall: Holm over the setups)\n")
    print("| method | overall (primary) | many (exploratory) | medium (exploratory) | few (exploratory) |\n"
          "|---|---|---|---|---|")
    base = per_seed[f"vpt+{BASE}"]
    paired = {name: {k: paired_difference([b[k] for b in base], [v[k] for v in vals]) for k in ACCURACY}
              for name, vals in list(per_seed.items())[1:]}
    for name, d in zip(paired, with_holm([p[PRIMARY] for p in paired.values()])):
        paired[name][PRIMARY] = d
    for name, diffs in paired.items():
        print(f"| {name} | " + " | ".join(diffs[k].format(2) for k in ACCURACY) + " |")
    print("\n" + multiplicity_sentence(paired, ACCURACY))
    for p in setup_figure(a.out, a.figures, tag="synthetic" if not a.quick else "quick"):
        print(f"figure: {p}")


if __name__ == "__main__":
    main()
