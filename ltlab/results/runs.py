"""The one reader of run directories: the finished runs of a directory (checked to be of one task, paired draws,
in the registry's order) and their table rows (`summary_row`, `load_rows`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..train.checkpoint import config_changes
from ..train.runs import Run, load_run
from .vocabulary import ACCURACY, COLUMNS, FLATNESS, is_reference, label, method_order, summary_label

def summary_row(summary: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """One flat table row from a run's summary.json dict: the headline (its rule and epoch), the other rule, costs."""
    best = summary.get("best_val") or {}
    row = {"label": summary_label(summary), "optimizer": summary["optimizer"],
           "seed": summary["seed"], "run": str(path),
           "select": summary.get("select", "last"), "epoch": summary.get("epoch"),
           **{c: summary.get(c) for c in COLUMNS},
           **{f"se_{k}": v for k, v in (summary.get("stderr") or {}).items()},
           "best_val_epoch": best.get("epoch"), **{f"best_val_{c}": best.get(c) for c in ACCURACY},
           "closures_per_step": summary.get("closures_per_step"), "wall_seconds": summary["wall_seconds"]}
    scalars = Path(path) / "probes" / "scalars.json"
    probes = json.loads(scalars.read_text()) if scalars.exists() else {}
    row.update({c: probes.get(c) for c in FLATNESS if c in probes})
    if "group_images" in probes:
        row["group_images"] = probes["group_images"]
    return row


def task_of(run: Run, reference: bool = False) -> dict[str, Any]:
    """What makes two runs comparable: the data set and the schedule (not the optimizer, not the seed, not
    the task sample a seed draws: runs are paired by seed, and `finished_runs` checks that a seed's runs share
    it). reference=True leaves out what a reference row changes (the probe's prompt length, the
    equal-compute row's epochs) and compares the epoch DRW starts at as a fraction of the epochs (the
    equal-compute row stretches the whole schedule)."""
    c = run.config
    model = {k: v for k, v in (c.get("model") or {}).items() if not reference or k != "prompt_length"}
    data = {k: v for k, v in (c.get("data") or {}).items() if k != "seed"}
    loss = dict(c.get("loss") or {})
    if reference and loss.get("drw_epoch") is not None:
        loss["drw_epoch"] = loss["drw_epoch"] / c["epochs"]
    return {"data": data, "epochs": None if reference else c.get("epochs"), "model": model, "loss": loss,
            "select": (c.get("eval") or {}).get("select", "last")}


def finished_runs(root: str | Path) -> list[Run]:
    """Every finished run directly under root, checked to be of one task; sorted by method, then seed."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory of runs; train some first, e.g. python -m ltlab compare "
                        f"--out {root}")
    runs = [load_run(p.parent) for p in sorted(root.glob("*/summary.json"))]
    if not runs and (root / "summary.json").exists():
        raise DataError(f"{root} is one run, not a directory of runs; give the directory that holds it ({root.parent})")
    if not runs:
        raise DataError(f"{root} holds no finished runs (no */summary.json); run python -m ltlab compare --out {root}")
    first = next((r for r in runs if not is_reference(label(r))), runs[0])
    draws: dict[int, tuple[Any, str]] = {}
    for r in runs:
        ref = is_reference(label(r))
        if task_of(r, reference=ref) != task_of(first, reference=ref):
            what = config_changes(task_of(first, reference=ref), task_of(r, reference=ref))
            raise DataError(f"{root} mixes runs of different tasks ({first.name} and {r.name} differ in "
                            + ("; ".join(what[:3]) if what else "data, model, loss, epochs or selection rule")
                            + "); put each task's runs in its own directory")
        drawn = (r.config.get("data") or {}).get("seed")
        other = draws.setdefault(r.summary["seed"], (drawn, r.name))
        if other[0] != drawn:
            raise DataError(f"{root}: {other[1]} and {r.name} share seed {r.summary['seed']} but were trained on "
                            f"different task samples (data.seed {other[0]} and {drawn}), so they cannot be paired; "
                            "put each draw's runs in its own directory")
    order = method_order(label(r) for r in runs)
    return sorted(runs, key=lambda r: (order.index(label(r)), r.summary["seed"]))


def learning_rates(runs: list[Run]) -> dict[str, float | None]:
    """{label: the lr its runs trained at} (None for a config without optimizer.lr), in the runs' order."""
    return {label(r): (r.config.get("optimizer") or {}).get("lr") for r in runs}


def runs_by_method(runs: list[Run]) -> dict[str, list[Run]]:
    """{label: its runs (one per seed)} in the fixed method order (reference rows last)."""
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(label(r), []).append(r)
    return out


def load_rows(runs_dir: str | Path) -> list[dict[str, Any]]:
    """One table row per finished run under runs_dir (`finished_runs`: checked to be of one task, ordered)."""
    rows = []
    for r in finished_runs(runs_dir):
        try:
            rows.append(summary_row(r.summary, r.path))
        except KeyError as e:
            raise DataError(f"{r.path}/summary.json is damaged (no {e}); rerun that run with --overwrite") from None
    return rows
