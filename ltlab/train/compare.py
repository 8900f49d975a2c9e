"""Train several optimizers with the same seeds, data and epochs; tabulate mean ± std."""
from __future__ import annotations

import csv
import dataclasses
import statistics
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig
from .trainer import fit

COLUMNS = ("overall", "many", "medium", "few", "ece", "sec_per_step", "peak_memory_mb")


def compare(cfg: ExperimentConfig, optimizers: list[str], seeds: int = 1, out: str | Path = "runs/compare",
            progress: bool = True) -> list[dict[str, Any]]:
    """One run per (optimizer, seed) under out/<optimizer>-s<seed>; returns one row per run."""
    rows = []
    for name in optimizers:
        for k in range(seeds):
            run_cfg = dataclasses.replace(cfg, seed=cfg.seed + k,
                                          optimizer=dataclasses.replace(cfg.optimizer, name=name))
            path = Path(out) / f"{name}-s{run_cfg.seed}"
            rows.append(summary_row(fit(run_cfg, out=path, progress=progress), path))
    return rows


def summary_row(summary: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """One table row (optimizer, seed, run, the COLUMNS, wall time) from a run's summary.json dict."""
    return {"optimizer": summary["optimizer"], "seed": summary["seed"], "run": str(path),
            **{c: summary.get(c) for c in COLUMNS}, "wall_seconds": summary["wall_seconds"]}


def aggregate(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Mean and std (over seeds) per optimizer, keeping the first-seen order."""
    out = []
    for name in dict.fromkeys(r["optimizer"] for r in rows):
        rs = [r for r in rows if r["optimizer"] == name]
        agg: dict[str, Any] = {"optimizer": name, "n": len(rs)}
        for c in COLUMNS + extra:
            vals = [float(r[c]) for r in rs if r.get(c) is not None]
            agg[c] = statistics.fmean(vals) if vals else float("nan")
            agg[c + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(agg)
    return out


def format_table(agg: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> str:
    """Markdown table; accuracy columns show mean ± std when there are several seeds."""
    cols = ("overall", "many", "medium", "few", "ece") + extra
    base = agg[0]["optimizer"] if agg else "sgd"
    head = "| optimizer | " + " | ".join(cols) + f" | s/step | x {base} | peak MB (CUDA) |"
    lines = [head, "|" + "---|" * (len(cols) + 4)]
    ref = agg[0]["sec_per_step"] if agg else None  # ratios to the first optimizer listed (the base)
    for a in agg:
        cells = []
        for c in cols:
            v, s = a[c], a[c + "_std"]
            fmt = "{:.4g}" if c in extra else "{:.2f}"
            cells.append(fmt.format(v) + (f" ± {fmt.format(s)}" if a["n"] > 1 else ""))
        ratio = f"{a['sec_per_step'] / ref:.2f}" if ref else "-"
        lines.append(f"| {a['optimizer']} | " + " | ".join(cells) +
                     f" | {a['sec_per_step']:.3f} | {ratio} | {_mb(a['peak_memory_mb'])} |")
    return "\n".join(lines)


def _mb(v: float) -> str:
    return "-" if v is None or v != v else f"{v:.0f}"


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def ensure_runs(cfg: ExperimentConfig, optimizers: list[str], out: str | Path, seeds: int = 1,
                progress: bool = True) -> list[dict[str, Any]]:
    """Like `compare`, but reuses runs whose summary.json already exists (notebooks call this)."""
    import json

    rows = []
    for name in optimizers:
        for k in range(seeds):
            path = Path(out) / f"{name}-s{cfg.seed + k}"
            if (path / "summary.json").exists():
                rows.append(summary_row(json.loads((path / "summary.json").read_text()), path))
            else:
                one = dataclasses.replace(cfg, seed=cfg.seed + k)
                rows += compare(one, [name], 1, out, progress)
    return rows
