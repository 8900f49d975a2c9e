"""Regenerate figures from run directories (what `python -m ltlab figures` and notebook 04 call)."""
from __future__ import annotations

from pathlib import Path

from . import plots
from .train.compare import aggregate, summary_row
from .train.runs import load_run


def _runs(root: str | Path):
    root = Path(root)
    return [load_run(p.parent) for p in sorted(root.glob("*/summary.json"))]


def compare_figures(runs_dir: str | Path, out: str | Path = "figures", tag: str | None = None) -> list[Path]:
    """Per-class accuracy (sorted by class size) and many/medium/few bars for a compare directory."""
    runs = _runs(runs_dir)
    if not runs:
        return []
    tag = tag or runs[0].config["data"]["name"]
    first_seed = {}
    for r in runs:
        first_seed.setdefault(r.summary["optimizer"], r)
    agg = aggregate([summary_row(r.summary, r.path) for r in runs])
    paths = []
    fig = plots.per_class_accuracy({n: r.summary["per_class"] for n, r in first_seed.items()},
                                   runs[0].summary["class_counts"])
    paths += plots.save(fig, f"perclass_{tag}", out)
    paths += plots.save(plots.group_bars(agg), f"headtail_{tag}", out)
    paths += plots.save(plots.training_curves({n: r.metrics for n, r in first_seed.items()}), f"curves_{tag}", out)
    paths += plots.save(plots.cost_bars(agg), f"cost_{tag}", out)
    import matplotlib.pyplot as plt

    plt.close("all")
    return paths


def all_figures(runs_dir: str | Path = "runs/demo", out: str | Path = "figures") -> list[Path]:
    """Every figure that can be made from the runs found under `runs_dir` (and their probe results)."""
    paths = compare_figures(runs_dir, out)
    try:
        from .reports import probe_figures
    except ImportError:  # probes not installed in a minimal build
        return paths
    return paths + probe_figures(runs_dir, out)
