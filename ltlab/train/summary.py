"""summary.json: the headline (by `eval.select`), both rules beside, costs, the run's identity, provenance."""
from __future__ import annotations

import dataclasses
import resource
import statistics
from collections.abc import Callable
from typing import Any

import torch

from ..config import ExperimentConfig, run_label
from .checkpoint import TrainState
from .runs import RunDir, provenance


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


@dataclasses.dataclass
class RunFacts:
    """What summary.json records of a run besides its metrics: its config, where it stands, its data's splits,
    and the facts of its optimizer and model."""

    cfg: ExperimentConfig
    state: TrainState
    class_counts: list[int]
    splits: dict[str, list[int]]
    closures_per_step: int
    parameters: dict[str, Any]
    device: torch.device

    def common(self, wall: float) -> dict[str, Any]:
        cfg = self.cfg
        return {**timing(self.state.step_times, cfg.batch_size, self.device), "wall_seconds": wall,
                "optimizer": cfg.optimizer.name, "label": run_label(cfg), "closures_per_step": self.closures_per_step,
                "seed": cfg.seed, "class_counts": self.class_counts, "splits": self.splits, "provenance": provenance()}


def validation_only(facts: RunFacts, val: dict[str, Any] | None, wall: float) -> dict[str, Any]:
    """summary.json of a run with eval.test=false (a tuning run): the last epoch's validation metrics `val`
    (from metrics.jsonl), and no test metrics at all; the test split is never evaluated."""
    st = facts.state
    return {"test": None, "val": val, "select": facts.cfg.eval.select, "epoch": st.epoch,
            "best_val": {"epoch": st.best_epoch, "val_overall": st.best_val}, **facts.common(wall)}


def finish(facts: RunFacts, run: RunDir, report: Callable[[], dict[str, Any]], load_weights: Callable[[str], None],
           wall: float, is_main: bool = True, tracker: Any = None) -> dict[str, Any]:
    """Test metrics (`report()`: of the weights loaded now) of the last epoch and of the best-validation epoch
    (`load_weights("best")`, then back to "last"); the headline follows eval.select (with eval.test=false:
    validation only, `validation_only`). Rank 0 writes summary.json; returns the summary."""
    cfg, st = facts.cfg, facts.state
    if not cfg.eval.test:
        rows = [r for r in run.metrics_rows() if "val" in r]
        summary = validation_only(facts, rows[-1]["val"] if rows else None, wall)
        if is_main:
            run.write_json("summary.json", summary)
        return summary
    last = {"epoch": st.epoch, **report()}
    best = None
    if st.best_epoch > 0:
        if st.best_epoch == st.epoch:
            best = dict(last)
        else:
            load_weights("best")
            best = {"epoch": st.best_epoch, **report()}
            load_weights("last")
        best["val_overall"] = st.best_val
    rule = cfg.eval.select
    head = best if (rule == "best_val" and best is not None) else last
    brief = lambda m: {k: v for k, v in m.items() if k != "per_class"}  # noqa: E731
    summary = {
        **{k: v for k, v in head.items() if k != "epoch"}, "select": rule, "epoch": head["epoch"],
        "checkpoint": "last" if head["epoch"] == st.epoch else "best",
        "last": brief(last), "best_val": brief(best) if best else None,
        **timing(st.step_times, cfg.batch_size, facts.device),
        "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "wall_seconds": wall, "optimizer": cfg.optimizer.name, "label": run_label(cfg),
        "closures_per_step": facts.closures_per_step, "seed": cfg.seed, "parameters": facts.parameters,
        "class_counts": facts.class_counts, "splits": facts.splits, "provenance": provenance(),
    }
    if is_main:
        run.write_json("summary.json", summary)
        if tracker is not None:
            tracker.finish(summary)
    return summary
