"""What a notebook works on: a directory of finished runs (read as it is), or the notebook's own directory
(trained there, and only what is missing)."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import ExperimentConfig
from .errors import DataError
from .experiments.compare import comparison_jobs, run_jobs
from .results.runs import finished_runs, load_rows
from .results.vocabulary import is_reference, label, method_order
from .train.runs import Run

NOTEBOOK_MARK = ".ltlab-notebook"  # a runs directory a notebook made (and may add runs and probes to)


@dataclasses.dataclass
class NotebookRuns:
    """The runs a notebook works on: rows (one per run), the runs, the base (pairing) label, the methods found
    (reference rows left out), and whether the directory is the notebook's own (only then may it write there)."""

    path: Path
    rows: list[dict[str, Any]]
    runs: list[Run]
    base: str
    methods: list[str]
    own: bool


REPOSITORY = Path(__file__).resolve().parents[1]  # the checkout (an editable install): where make puts runs/


def default_runs(runs: str | Path | None, smoke: bool = False) -> tuple[Path, bool]:
    """(the runs directory a notebook works on, whether the user named it). Unnamed: in the checkout, whatever
    the working directory, runs/notebook-smoke in smoke mode, else the study's evaluation runs (runs/study/eval,
    `make study`) when they exist, else runs/demo (`make demo`). A named path is taken as given."""
    if runs:
        return Path(runs), True
    if smoke:
        return REPOSITORY / "runs" / "notebook-smoke", False
    study = REPOSITORY / "runs" / "study" / "eval"
    return (study if any(study.glob("*/summary.json")) else REPOSITORY / "runs" / "demo"), False


def notebook_config(runs_dir: str | Path, cfg: ExperimentConfig) -> ExperimentConfig:
    """The task a notebook shows: that of the runs in runs_dir when it holds finished runs (its first prompted
    run's config), else cfg (what the notebook would train into its own directory)."""
    from .config import config_from_dict

    path = Path(runs_dir)
    if (path / NOTEBOOK_MARK).exists() or not path.is_dir() or not any(path.glob("*/summary.json")):
        return cfg
    runs = finished_runs(path)
    run = next((r for r in runs if not is_reference(label(r))), runs[0])
    return config_from_dict({**run.config, "device": "auto"})


def notebook_runs(runs_dir: str | Path, cfg: ExperimentConfig, optimizers: Sequence[str], seeds: int = 1,
                  workers: int = 1, reference: str | None = None, progress: bool = True,
                  configs: dict[str, ExperimentConfig] | None = None, create: bool = True) -> NotebookRuns:
    """What a notebook (or a script) works on, without ever changing someone else's runs.

    A directory that holds finished runs (made by `make demo`, `compare`, one cell of a `sweep`) is read as it
    is: the methods, the task and the base come from its runs; nothing in it is written, deleted or trained.
    A missing or empty directory becomes the notebook's own (marked with .ltlab-notebook): the comparison
    cfg x optimizers x seeds is trained there, and a later call trains only what is missing. A finished run
    of another config in the notebook's own directory is refused with the fix (another RUNS), never replaced.
    configs: each method's own config (a preset's per-method blocks). create=False (a RUNS the user named):
    a missing directory is an error (a typo must not start a training), an existing empty one is trained into.
    """
    path = Path(runs_dir)
    if path.exists() and not path.is_dir():
        raise DataError(f"RUNS={str(runs_dir)!r} is a file, not a directory of runs; point RUNS at a directory that "
                        "holds finished runs (e.g. runs/demo)")
    if not path.exists() and not create:
        raise DataError(f"RUNS={str(runs_dir)!r} does not exist (relative to {Path.cwd()}); point RUNS at a directory "
                        "of finished runs, or create an empty directory for the notebook to train into")
    holds = path.exists() and any(path.iterdir())
    own = (path / NOTEBOOK_MARK).exists() or not holds
    if not own and not any(path.glob("*/summary.json")):
        raise DataError(f"{path} holds no finished runs and is not a notebook's own directory; point RUNS at a "
                        "directory of finished runs, or at a new (empty) one for the notebook to train into")
    if own:
        path.mkdir(parents=True, exist_ok=True)
        (path / NOTEBOOK_MARK).touch()
        run_jobs(comparison_jobs(cfg, optimizers, seeds, path, reference, configs), progress=progress,
                 workers=workers, keep=True)
    runs = finished_runs(path)
    rows = load_rows(path)
    labels = method_order(r["label"] for r in rows)
    base = (runs[0].config.get("optimizer") or {}).get("base", labels[0])
    base = base if base in labels else next(n for n in labels if not is_reference(n))
    return NotebookRuns(path, rows, runs, base, [n for n in labels if not is_reference(n)], own)
