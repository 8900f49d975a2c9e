"""A small sweep for teachers: on the embedded task, where do SAM / GNM differ *resolvably* from AdamW?

    python bench/teaching_sweep.py [--seeds 3] [--out runs/sweep] [--base-runs runs/demo]

Each setting changes only the sharpness-aware optimizer (its radius); the task, the schedule and
the base runs (the preset's base optimizer, SGD) stay those of `make demo` (the base runs are copied from --base-runs when
they exist, so they are not trained again). Every run is probed at its last epoch on the same 256
training images (lambda_max, lambda_min, trace, Gaussian sharpness). For each setting the script
prints the paired difference to the base with a 95 % t-interval and its verdict (overall accuracy:
Holm-corrected over the settings; every other column exploratory), and writes OUT/sweep.md. The task is not tuned: the sweep only varies the radius the methods' papers leave
to the user.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ltlab.config import load_config
from ltlab.probing import add_flatness_columns
from ltlab.stats import NO_VERDICT, with_holm
from ltlab.tables import multiplicity_sentence, rule_sentence
from ltlab.train.compare import PRIMARY, aggregate, compare, paired_table

SETTINGS = [  # (name, optimizer, overrides)
    ("sam rho 0.05 (paper default)", "sam", []),
    ("sam rho 0.5", "sam", ["optimizer.method.rho=0.5"]),
    ("gnm rho 0.005 (official default)", "gnm", []),
    ("gnm rho 0.05", "gnm", ["optimizer.method.rho=0.05"]),
]
METRICS = ("overall", "many", "few", "lambda_max", "lambda_min", "trace", "gaussian_sharpness")


def slug(name: str) -> str:
    return name.split(" (")[0].replace(" ", "-")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="runs/sweep")
    ap.add_argument("--base-runs", default="runs/demo")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (exercises the script)")
    a = ap.parse_args()
    quick = ["epochs=1", "data.num_classes=6", "data.n_max=20", "data.imbalance_ratio=5", "data.val_per_class=3",
             "data.test_per_class=4", "data.many=15", "data.few=5"] if a.quick else []
    base = load_config("synthetic").optimizer.base
    lines = ["# Teaching sweep on the embedded task", "",
             f"Made by `python bench/teaching_sweep.py`. Each setting is paired with the same {base} runs "
             f"({a.seeds} seeds); probes at the last epoch on the same 256 training images.", ""]
    table = ["| setting | " + " | ".join(m + (" (primary)" if m == PRIMARY else "") for m in METRICS) + " |",
             "|" + "---|" * (len(METRICS) + 1)]
    by_setting = {}
    for name, opt, over in SETTINGS[2:] if a.quick else SETTINGS:  # quick: the one-pass (GNM) settings only
        out = Path(a.out) / slug(name)
        cfg = load_config("synthetic", quick + [f"optimizer.name={opt}"] + over)
        for s in range(a.seeds):  # reuse the base runs of `make demo` (same task, same seeds)
            src, dst = Path(a.base_runs) / f"{base}-s{cfg.seed + s}", out / f"{base}-s{cfg.seed + s}"
            if not a.quick and (src / "summary.json").exists() and not dst.exists():
                shutil.copytree(src, dst)
        rows = compare(cfg, [base, opt], seeds=a.seeds, out=out, progress=False, reuse=True, workers=a.workers)
        add_flatness_columns(rows, num_images=16 if a.quick else 256, progress=False)
        by_setting[name] = paired_table(rows, base, metrics=METRICS)[opt]
    # overall accuracy is the sweep's primary endpoint: Holm over its settings (each paired_table held one)
    for name, d in zip(by_setting, with_holm([p[PRIMARY] for p in by_setting.values()])):
        by_setting[name][PRIMARY] = d
    found = []
    for name, paired in by_setting.items():
        table.append(f"| {name} | " + " | ".join(paired[m].format(None if m not in METRICS[:3] else 2)
                                                  for m in METRICS) + " |")
        resolved = [m for m in METRICS if paired[m].verdict and paired[m].verdict != NO_VERDICT]
        if resolved:
            found.append(f"{name}: {', '.join(f'{m} {paired[m].verdict}' for m in resolved)}")
    rule = rule_sentence(aggregate(rows))
    lines += [rule, "", f"Paired difference (setting − {base}): mean [95 % CI] verdict.", "", *table, "",
              multiplicity_sentence(by_setting, METRICS), ""]
    lines += ["## Settings where a measured quantity differs resolvably", ""]
    lines += [f"- {f}" for f in found] or [f"- none: no setting differs resolvably from {base} in any measure."]
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
