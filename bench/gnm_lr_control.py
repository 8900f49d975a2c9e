"""Is GNM's tail gain under GCL + DRW GNM's, or its smaller lr's? A 2 x 2 of method x lr on fresh seeds.

    python bench/gnm_lr_control.py [--tuned studies/synthetic_gcl_confirm/tuned.yaml]
                                   [--study-runs runs/study_gcl_confirm/eval] [--seeds 200-223] [--out OUT] [-j 2]
                                   [--probe [--images 128]]

The confirmation study (make study-gcl-confirm) compares each method at its own selected setting: SGD at lr 0.01,
GNM at lr 0.005 (rho 0.05). Its confirmed few-class gain could come from GNM or from the halved lr. This script
adds the two swapped cells, SGD at GNM's lr and GNM at SGD's lr, on the same seeds (each seed its own task sample,
as in the study), and prints every cell (mean ± std) and the paired differences that separate the two: GNM − SGD
at each lr, and each method's lr effect (95 % t-intervals, exploratory, their count stated). The two selected
cells are the study's own runs when --study-runs holds them with the same config; anything missing trains into
OUT (default runs/gnm_lr_control). Writes OUT/gnm_lr_control.md. Resumable: finished runs of the same config
are kept. --probe adds where each cell ends (λ_max and few-class λ_max under plain CE, the study's probe: the same
seeded training images, its saved result reused) and the same contrasts of those: is GNM's sharper end GNM's, or
its lr's (a smaller lr lets training settle where the curvature is higher)?
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ltlab.cli import seed_spec
from ltlab.config import method_configs
from ltlab.experiments.compare import finished_with, run_jobs
from ltlab.results import ACCURACY, HIGHER_IS_BETTER
from ltlab.results.probing import add_flatness_columns
from ltlab.stats import chance_resolved, mean_std, paired_difference

CURVATURE = ("lambda_max", "lambda_max_few")  # with --probe: where each cell ends
QUICK = ["epochs=1", "data.num_classes=6", "data.n_max=20", "data.imbalance_ratio=5", "data.val_per_class=4",
         "data.test_per_class=4", "eval.train_images=16", "batch_size=16", "save_every=0"]


def cells(tuned: str, extra: list[str]) -> tuple[dict[tuple[str, float], object], float, float]:
    """({(method, lr): config}, SGD's selected lr, GNM's): each method at its selected setting and at the other
    method's selected lr."""
    sgd, gnm = method_configs(tuned, ["sgd", "gnm"], extra).values()
    lrs = (sgd.optimizer.lr, gnm.optimizer.lr)
    if lrs[0] == lrs[1]:
        sys.exit(f"{tuned}: sgd and gnm selected the same lr ({lrs[0]:g}); there is no lr difference to separate")
    grid = {(cfg.optimizer.name, lr): dataclasses.replace(cfg, optimizer=dataclasses.replace(cfg.optimizer, lr=lr))
            for cfg in (sgd, gnm) for lr in lrs}
    return grid, *lrs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tuned", default="studies/synthetic_gcl_confirm/tuned.yaml",
                    help="the selected settings (a preset with sgd and gnm blocks)")
    ap.add_argument("--study-runs", default="runs/study_gcl_confirm/eval",
                    help="the study's evaluation runs, reused where their config is the cell's")
    ap.add_argument("--seeds", type=seed_spec, default=list(range(200, 224)), help="seeds (default 200-223)")
    ap.add_argument("--out", default="runs/gnm_lr_control")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="runs trained at once")
    ap.add_argument("--probe", action="store_true", help="also probe every run's flatness (plain CE) and compare it")
    ap.add_argument("--images", type=int, default=128, help="with --probe: probe images (the study's probe_images)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (exercises the script)")
    a = ap.parse_args()
    out, study = Path(a.out), Path(a.study_runs)
    seeds = list(range(a.seeds)) if isinstance(a.seeds, int) else a.seeds
    grid, sgd_lr, gnm_lr = cells(a.tuned, QUICK if a.quick else [])
    jobs, where = [], {}
    for (name, lr), cfg in grid.items():
        for s in seeds:
            run = dataclasses.replace(cfg, seed=s, data=dataclasses.replace(cfg.data, seed=s))
            mine = study / f"{name}-s{s}"
            where[(name, lr, s)] = path = mine if finished_with(mine, run) else out / f"{name}_lr{lr:g}-s{s}"
            jobs.append((run, str(path)))
    reused = sum(p.is_relative_to(study) for p in where.values())
    run_jobs(jobs, progress=not a.quick, workers=a.jobs, reuse=True)
    acc = {k: json.loads((p / "summary.json").read_text()) for k, p in where.items()}
    if a.probe:
        rows = [{"label": name, "run": str(p)} for (name, _, _), p in where.items()]
        add_flatness_columns(rows, a.images, progress=not a.quick, workers=a.jobs)
        for k, row in zip(where, rows):
            acc[k].update({c: row[c] for c in CURVATURE})

    def values(name, lr, metric):
        return [acc[(name, lr, s)][metric] for s in seeds]

    metrics = ACCURACY + (CURVATURE if a.probe else ())
    probed = (f" With --probe, {' and '.join(CURVATURE)}: the top Hessian eigenvalue of plain CE at the reported "
              f"checkpoint on {a.images} seeded training images, and the same on the few classes' images (the "
              "study's probe)."
              if a.probe else "")
    text = [f"# GNM's tail gain: GNM or its lr? (`{' '.join(['python', *sys.argv])}`)", "",
            f"Test accuracy (%) at the last epoch, mean ± std over {len(seeds)} paired seeds ({seeds[0]}–{seeds[-1]}, "
            f"each its own task sample); settings from `{a.tuned}` (SGD's selected lr {sgd_lr:g}, GNM's {gnm_lr:g}, "
            f"GNM's other options as selected); {reused} of {len(where)} runs are the study's own.{probed}", "",
            "| method | lr | " + " | ".join(metrics) + " |", "|---|---" + "|---" * len(metrics) + "|"]
    for name, lr in grid:
        stats = [mean_std(values(name, lr, m)) for m in metrics]
        mark = " (selected)" if lr == (sgd_lr if name == "sgd" else gnm_lr) else ""
        text.append(f"| {name} | {lr:g}{mark} | " + " | ".join(f"{m:.2f} ± {sd:.2f}" for m, sd, _ in stats) + " |")
    contrasts = {
        f"gnm − sgd, both at lr {gnm_lr:g}": (("sgd", gnm_lr), ("gnm", gnm_lr)),
        f"gnm − sgd, both at lr {sgd_lr:g}": (("sgd", sgd_lr), ("gnm", sgd_lr)),
        f"sgd: lr {gnm_lr:g} − lr {sgd_lr:g}": (("sgd", sgd_lr), ("sgd", gnm_lr)),
        f"gnm: lr {gnm_lr:g} − lr {sgd_lr:g}": (("gnm", sgd_lr), ("gnm", gnm_lr)),
        "each at its selected lr (the confirmed contrast)": (("sgd", sgd_lr), ("gnm", gnm_lr)),
    }
    text += ["", "Paired differences by seed: mean [95 % t-interval] verdict", "",
             "| contrast | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for label, (b, m) in contrasts.items():
        diffs = [paired_difference(values(*b, k), values(*m, k), higher_is_better=HIGHER_IS_BETTER[k])
                 for k in metrics]
        text.append(f"| {label} | " + " | ".join(d.format(2) for d in diffs) + " |")
    count = 4 * len(metrics)
    text += ["", f"The first four rows hold {count} exploratory intervals (each word follows its own 95 % interval, "
             f"so about {chance_resolved(count):.1f} would read 'resolved' by chance alone); the last row repeats "
             "the confirmation study's contrast on these runs."]
    out.mkdir(parents=True, exist_ok=True)
    (out / "gnm_lr_control.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
