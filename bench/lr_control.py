"""A method or its lr? A 2 x 2 of method x lr on a study's fresh seeds, when the method and the base were selected
at different learning rates.

    python bench/lr_control.py [--method gnm] [--base sgd] [--tuned studies/synthetic_gcl_confirm/tuned.yaml]
                               [--study-runs runs/study_gcl_confirm/eval] [--seeds 200-223] [--out OUT] [-j 2]
                               [--probe [--images 128]]

A study compares each method at its own selected setting. Under GCL + DRW (the confirmation study, the defaults)
SGD was selected at lr 0.01 and GNM at 0.005 (rho 0.05), so GNM's confirmed few-class gain could come from GNM or
from the halved lr; in the CE study (`--method rsam --tuned studies/synthetic/tuned.yaml --study-runs
runs/study/eval --seeds 100-111`) RSAM ran at half SGD's lr. This script adds the two swapped cells, the base at
the method's lr and the method at the base's lr, on the same seeds (each seed its own task sample, as in the
study), and prints every cell (mean ± std) and the paired differences that separate the two: method − base at
each lr, and each one's lr effect (95 % t-intervals, exploratory, their count stated). The two selected cells are
the study's own runs when --study-runs holds them with the same config; anything missing trains into OUT (default
runs/METHOD_lr_control). Writes OUT/METHOD_lr_control.md. Resumable: finished runs of the same config are kept.
--probe adds where each cell ends (λ_max and few-class λ_max under plain CE, the study's probe: the same seeded
training images, its saved result reused) and the same contrasts of those: is the method's end point its own, or
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
from ltlab.probes.budget import BUDGET
from ltlab.results.probing import add_flatness_columns
from ltlab.stats import chance_resolved, mean_std, paired_difference

CURVATURE = ("lambda_max", "lambda_max_few")  # with --probe: where each cell ends
QUICK = ["epochs=2", "loss.drw_epoch=1", "data.num_classes=6", "data.n_max=20", "data.imbalance_ratio=5",
         "data.val_per_class=4", "data.test_per_class=4", "eval.train_images=16", "batch_size=16", "save_every=0"]


def cells(tuned: str, base: str, method: str, extra: list[str]
          ) -> tuple[dict[tuple[str, float], object], float, float]:
    """({(name, lr): config}, the base's selected lr, the method's): each at its selected setting and at the
    other's selected lr."""
    configs = method_configs(tuned, [base, method], extra)
    lrs = tuple(configs[m].optimizer.lr for m in (base, method))
    if lrs[0] == lrs[1]:
        sys.exit(f"{tuned}: {base} and {method} selected the same lr ({lrs[0]:g}); there is no lr difference to "
                 "separate")
    grid = {(m, lr): dataclasses.replace(configs[m], optimizer=dataclasses.replace(configs[m].optimizer, lr=lr))
            for m in (base, method) for lr in lrs}
    return grid, *lrs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="gnm", help="the method whose lr differs from the base's (default gnm)")
    ap.add_argument("--base", default="sgd", help="the study's base (default sgd)")
    ap.add_argument("--tuned", default="studies/synthetic_gcl_confirm/tuned.yaml",
                    help="the selected settings (a preset with a block for the base and the method)")
    ap.add_argument("--study-runs", default="runs/study_gcl_confirm/eval",
                    help="the study's evaluation runs, reused where their config is the cell's")
    ap.add_argument("--seeds", type=seed_spec, default=list(range(200, 224)), help="seeds (default 200-223)")
    ap.add_argument("--out", default=None, help="where missing runs train (default runs/METHOD_lr_control)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="runs trained at once")
    ap.add_argument("--probe", action="store_true", help="also probe every run's flatness (plain CE) and compare it")
    ap.add_argument("--images", type=int, default=128, help="with --probe: probe images (the study's probe_images)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (exercises the script)")
    a = ap.parse_args()
    out, study, base, method = Path(a.out or f"runs/{a.method}_lr_control"), Path(a.study_runs), a.base, a.method
    seeds = list(range(a.seeds)) if isinstance(a.seeds, int) else a.seeds
    grid, base_lr, method_lr = cells(a.tuned, base, method, QUICK if a.quick else [])
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
        add_flatness_columns(rows, a.images, progress=not a.quick, workers=a.jobs,  # quick: a coarse (unused) trace
                             trace_hvps=6 if a.quick else BUDGET.scalar_trace_hvps)
        for k, row in zip(where, rows):
            acc[k].update({c: row[c] for c in CURVATURE})

    def values(name, lr, metric):
        return [acc[(name, lr, s)][metric] for s in seeds]

    metrics = ACCURACY + (CURVATURE if a.probe else ())
    probed = (f" With --probe, {' and '.join(CURVATURE)}: the top Hessian eigenvalue of plain CE at the reported "
              f"checkpoint on {a.images} seeded training images, and the same on the few classes' images (the "
              "study's probe)."
              if a.probe else "")
    text = [f"# {method} − {base}: the method or its lr? (`{' '.join(['python', *sys.argv])}`)", "",
            f"Test accuracy (%) at the last epoch, mean ± std over {len(seeds)} paired seeds ({seeds[0]}–{seeds[-1]}, "
            f"each its own task sample); settings from `{a.tuned}` ({base}'s selected lr {base_lr:g}, {method}'s "
            f"{method_lr:g}, {method}'s other options as selected); {reused} of {len(where)} runs are the study's "
            f"own.{probed}", "",
            "| method | lr | " + " | ".join(metrics) + " |", "|---|---" + "|---" * len(metrics) + "|"]
    for name, lr in grid:
        stats = [mean_std(values(name, lr, m)) for m in metrics]
        mark = " (selected)" if lr == (base_lr if name == base else method_lr) else ""
        text.append(f"| {name} | {lr:g}{mark} | " + " | ".join(f"{m:.2f} ± {sd:.2f}" for m, sd, _ in stats) + " |")
    contrasts = {
        f"{method} − {base}, both at lr {method_lr:g}": ((base, method_lr), (method, method_lr)),
        f"{method} − {base}, both at lr {base_lr:g}": ((base, base_lr), (method, base_lr)),
        f"{base}: lr {method_lr:g} − lr {base_lr:g}": ((base, base_lr), (base, method_lr)),
        f"{method}: lr {method_lr:g} − lr {base_lr:g}": ((method, base_lr), (method, method_lr)),
        "each at its selected lr (the study's contrast)": ((base, base_lr), (method, method_lr)),
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
             "the study's contrast on these runs."]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{method}_lr_control.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
