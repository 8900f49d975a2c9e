"""LPT vs VPT on the embedded default, each at its validation-selected recipe, on fresh seeds.

    python bench/lpt_vs_vpt.py [--seeds 100-111] [--out runs/lpt_vs_vpt] [-j 2] [--figures figures]

VPT is the base optimizer at the setting the fair study selected (the preset `synthetic_tuned`). LPT gets the
same budget the study gives every method (4 configurations x 3 tuning seeds, test split withheld, scored by
mean validation overall accuracy at the last epoch): the study's shared lr values crossed with LPT's recipe,
    authors = cosine head (s = 20) + asymmetric GCL (the preset `lpt_synthetic`, as DongSky/LPT),
    vpt     = VPT's linear head + CE (what the base was tuned with),
both with LPT's prompts (shared + group pool) and dual sampling. The selected recipe and VPT then train on the
evaluation seeds, each seed drawing its own task sample (data.seed = seed, as in the study). Prints the tuning
table, the test table (mean ± std), the paired difference LPT − VPT with its 95 % t-interval, and writes
figures/lpt_vs_vpt_synthetic.{png,pdf} and OUT/lpt_vs_vpt.md. Resumable: finished runs of the same config are
kept.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

from ltlab.cli import seed_spec
from ltlab.config import load_config, method_configs
from ltlab.experiments.compare import run_jobs
from ltlab.experiments.study import config_id, validation_score
from ltlab.reports.figures import setup_figure, setup_rows
from ltlab.results import ACCURACY, PRIMARY, run_name
from ltlab.stats import paired_difference

LR = (0.1, 0.2)  # the study's shared lr values (studies/synthetic.yaml)
RECIPES = {"authors": [], "vpt": ["model.head=linear", "loss.name=ce"]}
TUNING_SEEDS = (0, 1, 2)
BASE = load_config("synthetic").optimizer.base


def tuning(out: Path, jobs: int, progress: bool, seeds: tuple[int, ...] = TUNING_SEEDS,
           extra: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """LPT's grid on the tuning seeds (test split withheld); (the selected {recipe, lr}, the table's lines)."""
    grid = [(recipe, lr) for lr in LR for recipe in RECIPES]
    runs = []
    for recipe, lr in grid:
        cfg = load_config("lpt_synthetic", [*RECIPES[recipe], *extra, f"optimizer.lr={lr}", "eval.test=false",
                                            "save_every=0"])
        for s in seeds:
            runs.append(((recipe, lr), dataclasses.replace(cfg, seed=s),
                         str(out / "tune" / run_name(config_id({"recipe": recipe, "lr": lr}), s))))
    run_jobs([(c, p) for _, c, p in runs], progress=progress, workers=jobs, keep=True)
    table = {}
    for key in grid:
        scores = [validation_score(p, "overall") for k, _, p in runs if k == key]
        table[key] = (statistics.fmean(scores), statistics.stdev(scores), scores)
    best = max(grid, key=lambda k: table[k][0])  # ties: the first in grid order
    lines = ["| recipe | lr | validation overall, mean ± sd | per seed |", "|---|---|---|---|"]
    for (recipe, lr), (m, sd, scores) in table.items():
        mark = "▶ " if (recipe, lr) == best else ""
        lines.append(f"| {mark}{recipe} | {lr} | {m:.2f} ± {sd:.2f} | {', '.join(f'{x:.2f}' for x in scores)} |")
    return {"recipe": best[0], "lr": best[1]}, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=seed_spec, default=list(range(100, 112)), help="evaluation seeds (default 100-111)")
    ap.add_argument("--out", default="runs/lpt_vs_vpt")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="runs trained at once")
    ap.add_argument("--figures", default="figures")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (exercises the script)")
    a = ap.parse_args()
    out = Path(a.out)
    quick = ["epochs=1", "data.num_classes=6", "data.n_max=20", "data.imbalance_ratio=5"] if a.quick else []
    quick_lpt = [*quick, "lpt_phase1_epochs=1", "model.pool_size=3"] if a.quick else []  # VPT has no pool
    tuning_seeds = (0, 1) if a.quick else TUNING_SEEDS
    chosen, tune_lines = tuning(out, a.jobs, progress=not a.quick, seeds=tuning_seeds, extra=tuple(quick_lpt))
    seeds = list(range(a.seeds)) if isinstance(a.seeds, int) else a.seeds
    vpt = method_configs("synthetic_tuned", [BASE], quick)[BASE]
    lpt = load_config("lpt_synthetic", [*RECIPES[chosen["recipe"]], *quick_lpt, f"optimizer.lr={chosen['lr']}"])
    jobs = []
    for s in seeds:
        for name, cfg in ((f"vpt+{BASE}", vpt), (f"lpt+{BASE}", lpt)):
            run = dataclasses.replace(cfg, seed=s, data=dataclasses.replace(cfg.data, seed=s))
            jobs.append((run, str(out / f"{name}-s{s}")))
    run_jobs(jobs, progress=not a.quick, workers=a.jobs, reuse=True)
    rows, per_seed, rule = setup_rows(out)
    text = [f"# LPT vs VPT on the embedded default (`{' '.join(['python', *sys.argv])}`)", "",
            f"## Tuning LPT's recipe (validation; test split withheld; tuning seeds {', '.join(map(str, tuning_seeds))})",
            "", f"VPT: the base ({BASE}) at the fair study's selection (preset synthetic_tuned, 4 configurations). "
            "LPT: the same budget, the study's lr values x its recipe (authors = cosine head + asymmetric GCL; "
            "vpt = linear head + CE). ▶ = selected.", "", *tune_lines, "",
            f"## Test, fresh seeds ({rule}; each seed its own task sample)", "",
            "| setup | overall | many | medium | few | s/step (phase 2 for LPT) |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{r[k]:.2f} ± {r[k + '_std']:.2f}" for k in ("overall", "many", "medium", "few"))
        text.append(f"| {r['method']} | {cells} | {r['sec_per_step']:.3f} |")
    base = per_seed[f"vpt+{BASE}"]
    text += ["", f"Paired difference to vpt+{BASE}: mean [95 % t-interval] verdict (overall is the primary endpoint; "
             "one comparison, so no multiplicity correction)", "",
             "| setup | overall (primary) | many | medium | few |", "|---|---|---|---|---|"]
    for name, vals in list(per_seed.items())[1:]:
        diffs = {k: paired_difference([b[k] for b in base], [v[k] for v in vals]) for k in ACCURACY}
        text.append(f"| {name} − vpt+{BASE} | " + " | ".join(diffs[k].format(2) for k in (PRIMARY, *ACCURACY[1:])) + " |")
    (out / "lpt_vs_vpt.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    for p in setup_figure(out, a.figures, tag="synthetic" if not a.quick else "quick"):
        print(f"figure: {p}")


if __name__ == "__main__":
    main()
