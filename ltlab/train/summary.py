"""summary.json: the headline (by `eval.select`), both rules beside, costs, the run's identity, provenance."""
from __future__ import annotations

import resource
import statistics
from typing import Any

import torch

from ..config import run_label
from .evaluation import test_report
from .runs import provenance


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory of this run; NaN on the CPU, where only a process-wide peak exists
    (bench/optimizer_cost.py measures CPU memory per optimizer in separate processes)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return float("nan")


def timing(step_times: list[float], batch_size: int, device: torch.device) -> dict[str, float]:
    times = step_times[2:] or step_times  # skip warm-up steps
    sec = statistics.median(times) if times else float("nan")
    return {"sec_per_step": sec, "images_per_sec": batch_size / sec if times else float("nan"),
            "peak_memory_mb": peak_memory_mb(device)}


def validation_only(t, wall: float) -> dict[str, Any]:
    """summary.json of a run with eval.test=false (a tuning run): the last epoch's validation metrics from
    metrics.jsonl, and no test metrics at all; the test split is never evaluated."""
    rows = [r for r in t.run.metrics_rows() if "val" in r]
    return {"test": None, "val": rows[-1]["val"] if rows else None, "select": t.cfg.eval.select, "epoch": t.epoch,
            "best_val": {"epoch": t.best_epoch, "val_overall": t.best_val},
            **timing(t.step_times, t.cfg.batch_size, t.device), "wall_seconds": wall,
            "optimizer": t.cfg.optimizer.name, "label": run_label(t.cfg), "closures_per_step":
            t.optimizer.closures_per_step, "seed": t.cfg.seed, "class_counts": t.data.class_counts,
            "splits": t.data.splits, "provenance": provenance()}


def finish(t, wall: float) -> dict[str, Any]:
    """Test metrics of trainer t's last epoch and of its best-validation epoch; the headline follows
    eval.select (with eval.test=false: validation only, `validation_only`). Rank 0 writes summary.json;
    returns the summary."""
    if not t.cfg.eval.test:
        summary = validation_only(t, wall)
        if t.is_main:
            t.run.write_json("summary.json", summary)
        return summary
    last = {"epoch": t.epoch, **test_report(t)}
    best = None
    if t.best_epoch > 0:
        if t.best_epoch == t.epoch:
            best = dict(last)
        else:
            t.model.load_state_dict(t.run.load_checkpoint("best")["model"], strict=False)
            best = {"epoch": t.best_epoch, **test_report(t)}
            t.model.load_state_dict(t.run.load_checkpoint("last")["model"], strict=False)
        best["val_overall"] = t.best_val
    rule = t.cfg.eval.select
    head = best if (rule == "best_val" and best is not None) else last
    brief = lambda m: {k: v for k, v in m.items() if k != "per_class"}  # noqa: E731
    summary = {
        **{k: v for k, v in head.items() if k != "epoch"}, "select": rule, "epoch": head["epoch"],
        "checkpoint": "last" if head["epoch"] == t.epoch else "best",
        "last": brief(last), "best_val": brief(best) if best else None,
        **timing(t.step_times, t.cfg.batch_size, t.device),
        "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "wall_seconds": wall, "optimizer": t.cfg.optimizer.name, "label": run_label(t.cfg),
        "closures_per_step": t.optimizer.closures_per_step, "seed": t.cfg.seed,
        "parameters": t.model.parameter_report(), "class_counts": t.data.class_counts,
        "splits": t.data.splits, "provenance": provenance(),
    }
    if t.is_main:
        t.run.write_json("summary.json", summary)
        if getattr(t, "tracker", None) is not None:
            t.tracker.finish(summary)
    return summary
