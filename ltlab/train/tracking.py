"""Where a run's numbers go: metrics.jsonl (always), TensorBoard event files (RUN_DIR/tb), MLflow (optional).

The config key is ``log: [jsonl, tensorboard]`` (add ``mlflow`` with ``pip install ltlab[mlflow]``).
Every epoch row of metrics.jsonl is written to each backend as scalars with the epoch as the step,
under the row's own names ("val/overall", "train_ce_at_w", "rho", "sec_per_step", ...), so that the
two hold the same numbers (a test reads the event files back). metrics.jsonl is the record: when a run
opens (fresh or resumed) the other backends are rewritten from it, so a resumed run's event files hold
each epoch once, exactly as the uninterrupted run's. Rank 0 alone logs under DDP. At the end the run's
flattened config and its test accuracy go to TensorBoard's HParams view (RUN_DIR/tb/hparams), so the
runs of a comparison are listed side by side; probes add their scalars and the spectrum as a histogram.
MLflow logs to a local store, RUNS_DIR/mlruns/mlflow.db (SQLite; one experiment per comparison directory),
no server.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

LOGGERS = ("jsonl", "tensorboard", "mlflow")
TB_DIR = "tb"


def flat_scalars(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"val/overall": 51.2, "lr": 0.05, ...}: the numbers of a (nested) row; per-class lists are left out."""
    out: dict[str, float] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flat_scalars(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
            out[f"{prefix}{k}"] = float(v)
    return out


def flat_config(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config dict as {"optimizer.method.rho": 0.05, ...} with values TensorBoard / MLflow accept."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, str, bool)):
            out[f"{prefix}{k}"] = v
        else:
            out[f"{prefix}{k}"] = json.dumps(v)
    return out


class Tracker:
    """The run's loggers. `open` replays metrics.jsonl into every other backend; `epoch` logs one row."""

    def __init__(self, run_path: str | Path, log: list[str] | tuple[str, ...], config: dict[str, Any]):
        self.path, self.log, self.config = Path(run_path), list(log), config
        self._tb = None
        self._mlflow_run = None

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self, rows: list[dict[str, Any]]) -> "Tracker":
        """Start the backends afresh from the rows already in metrics.jsonl (none for a new run). Every backend is
        checked before anything is written, so a refused one leaves nothing behind."""
        if "mlflow" in self.log:
            try:
                import mlflow  # noqa: F401
            except ImportError:
                from ..errors import ConfigError

                raise ConfigError("log: mlflow needs the optional extra: pip install 'ltlab[mlflow]' (or drop mlflow "
                                  "from log)") from None
        if "tensorboard" in self.log:
            tb = self.path / TB_DIR
            if tb.exists() and not tb.is_dir():
                from ..errors import DataError

                raise DataError(f"{tb} is a file, but TensorBoard's event files go in a directory of that name; "
                                "move or delete the file, or use log=jsonl")
            shutil.rmtree(tb, ignore_errors=True)
            self._writer()
        if "mlflow" in self.log:
            self._open_mlflow()
        for row in rows:
            self._scalars(row)
        return self

    def _writer(self):
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.path / TB_DIR))
        return self._tb

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._mlflow_run is not None:
            import mlflow

            mlflow.end_run()
            self._mlflow_run = None

    # -- logging ---------------------------------------------------------------------------------
    def epoch(self, row: dict[str, Any], run_dir) -> None:
        """One epoch: metrics.jsonl first (the record), then the other backends."""
        run_dir.log_metrics(row)
        self._scalars(row)

    def _scalars(self, row: dict[str, Any]) -> None:
        step = int(row.get("epoch", 0))
        values = flat_scalars(row)
        if self._tb is not None:
            for tag, v in values.items():
                self._tb.add_scalar(tag, v, step)
            self._tb.flush()
        if self._mlflow_run is not None:
            import mlflow

            mlflow.log_metrics({_mlflow_key(k): v for k, v in values.items() if np.isfinite(v)}, step=step)

    def finish(self, summary: dict[str, Any]) -> None:
        """The run's config and headline (test) accuracy as hyper-parameters + metrics; then close."""
        metrics = {f"test/{k}": float(summary[k]) for k in ("overall", "many", "medium", "few", "ece")
                   if isinstance(summary.get(k), (int, float))}
        if "tensorboard" in self.log:
            self._writer().add_hparams(flat_config(self.config), metrics, run_name="hparams")
        if "mlflow" in self.log:
            import mlflow

            if self._mlflow_run is None:  # closed when the loop ended: continue the same MLflow run
                self._mlflow_run = mlflow.start_run(run_id=(self.path / "mlflow_run_id").read_text().strip())
            mlflow.log_metrics({_mlflow_key(k): v for k, v in metrics.items()})
        self.close()

    # -- MLflow ----------------------------------------------------------------------------------
    def _open_mlflow(self) -> None:
        try:
            import mlflow
        except ImportError:
            from ..errors import ConfigError

            raise ConfigError("log: mlflow needs the optional extra: pip install 'ltlab[mlflow]' (or drop mlflow "
                              "from log)") from None
        mlflow.set_tracking_uri(mlflow_uri(self.path.parent))
        mlflow.set_experiment(self.path.parent.name or "runs")
        id_file = self.path / "mlflow_run_id"
        if id_file.exists():  # a resumed run: the old MLflow run is replaced by the replay of metrics.jsonl
            try:
                mlflow.delete_run(id_file.read_text().strip())
            except Exception:  # noqa: BLE001 (already gone: nothing to replace)
                pass
        self._mlflow_run = mlflow.start_run(run_name=self.path.name)
        id_file.write_text(self._mlflow_run.info.run_id)
        params = flat_config(self.config)
        mlflow.log_params({_mlflow_key(k): str(v)[:500] for k, v in params.items()})


def mlflow_uri(runs_dir: str | Path) -> str:
    """The local MLflow store of a runs directory: RUNS_DIR/mlruns/mlflow.db (SQLite, no server; MLflow 3 keeps
    its plain-file store in maintenance mode). Browse it with ``mlflow ui --backend-store-uri <this>``."""
    store = Path(runs_dir).resolve() / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def _mlflow_key(key: str) -> str:
    return key.replace("@", "_")


def open_tracker(run_dir, cfg) -> Tracker:
    """A Tracker for the run directory (a RunDir) of config `cfg`, started from its existing metrics rows."""
    from ..config import to_dict

    return Tracker(run_dir.path, cfg.log, to_dict(cfg)).open(run_dir.metrics_rows())


def log_probe(run_dir: str | Path, name: str, result: Any, step: int | None = None) -> None:
    """A saved probe result into the run's TensorBoard files (when the run logs to TensorBoard): scalars
    under probe/<name>/..., eigenvalues and the SLQ density as histograms, at the run's last epoch."""
    import yaml

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        return
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    if "tensorboard" not in cfg.get("log", LOGGERS[:2]):
        return
    from torch.utils.tensorboard import SummaryWriter

    step = int(cfg.get("epochs", 0)) if step is None else step
    w = SummaryWriter(str(run_dir / TB_DIR))
    try:
        for field in ("estimate", "stderr", "base_loss"):
            v = getattr(result, field, None)
            if isinstance(v, (int, float)) and np.isfinite(v):
                w.add_scalar(f"probe/{name}/{field}", float(v), step)
        vals = getattr(result, "eigenvalues", None)
        if vals is not None and len(vals):
            w.add_scalar(f"probe/{name}/lambda_max", float(np.max(vals)), step)
            w.add_histogram(f"probe/{name}/eigenvalues", np.asarray(vals, dtype=np.float64), step)
        if hasattr(result, "grid") and hasattr(result, "density"):
            grid, dens = np.asarray(result.grid), np.asarray(result.density)
            mass = dens * np.gradient(grid)
            w.add_histogram_raw(f"probe/{name}/spectral_density", min=float(grid[0]), max=float(grid[-1]),
                                num=float(mass.sum()), sum=float((mass * grid).sum()),
                                sum_squares=float((mass * grid**2).sum()), bucket_limits=grid[1:].tolist(),
                                bucket_counts=mass[1:].tolist(), global_step=step)
        if isinstance(result, dict):  # flatness scalars
            for k, v in flat_scalars(result).items():
                w.add_scalar(f"probe/{k}", v, step)
    finally:
        w.close()
