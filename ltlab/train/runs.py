"""Run directories: config.yaml, metrics.jsonl, summary.json, checkpoints/ (atomic writes).

>>> run = load_run("runs/demo/sgd-s0")          # doctest: +SKIP
>>> run.summary["overall"], len(run.metrics)    # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import DataError


def _file_mode() -> int:
    """The mode open() gives a new file under the process's umask (0644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write_bytes(path: Path, write) -> None:
    """Write to a hidden temp file beside `path`, fsync, then rename over it: readers see the old file or the
    new one, never a part. The file gets the mode a plain open() would (mkstemp alone makes it 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def provenance(where: str | Path | None = None) -> dict[str, Any]:
    """Git commit (and whether tracked files differ from it), package versions and machine, recorded with every
    run; `where`: the checkout to ask (default: the one ltlab is imported from)."""
    import timm

    import ltlab

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                                  cwd=where or Path(ltlab.__file__).parent).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    # tracked files changed since that commit (code or presets): the commit alone does not say what ran
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {
        "git_commit": commit or None, "git_dirty": dirty, "ltlab": ltlab.__version__, "torch": torch.__version__,
        "timm": timm.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        # the vector kernels torch dispatches to (e.g. AVX2, AVX512): float results differ between them in the last
        # bits, and over a run in the second decimal of an accuracy; equal runs need the same value here
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "probes", "phase1", "tb", "mlflow_run_id")
# fields of metrics.jsonl rows and summary.json that measure time or the machine, not the run's numbers
TIMING_FIELDS = frozenset({"sec_per_step", "images_per_sec", "peak_memory_mb", "process_peak_rss_mb", "wall_seconds",
                           "provenance"})


def writable_dir(path: str | Path, what: str = "the output directory") -> Path:
    """Create `path` (and its parents) and write a file there, before any long work: a DataError names the path,
    the reason and the fix (a file in the way, a read-only disk, no permission)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is a file, not a directory; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".ltlab-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataError(f"cannot write {what} {path}: {e.strerror or e}; choose another --out") from None
    return path


class RunDir:
    """Writer for one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"

    def holds_run(self) -> bool:
        return any((self.path / f).exists() for f in RUN_FILES)

    def prepare(self, resume: bool = False, overwrite: bool = False) -> None:
        """Make sure a new run never mixes with an old one.

        A fresh run into a directory that already holds a run is refused (DataError, exit 2) unless
        `overwrite` (the old run's files are removed, nothing else) or `resume` (continue it).
        """
        if resume and overwrite:
            raise DataError("--resume and --overwrite contradict each other: pass one of them")
        if self.path.exists() and not self.path.is_dir():
            raise DataError(f"output path {self.path} is a file, not a directory; choose another --out")
        if resume:
            if not (self.ckpt_dir / "last.pt").exists():
                raise DataError(f"{self.ckpt_dir / 'last.pt'} not found: there is nothing to resume in {self.path}; "
                                "start a new run without --resume")
            self.remove_stale_temps()
            if (self.path / "probes").exists() and not (self.path / "summary.json").exists():
                import shutil

                shutil.rmtree(self.path / "probes")  # probes of an interrupted run describe its old checkpoint
            return
        if self.holds_run():
            if not overwrite:
                raise DataError(f"{self.path} already holds a run; pass --resume to continue it or --overwrite to "
                                "delete it and start over (or choose another --out)")
            import shutil

            for f in RUN_FILES:
                target = self.path / f
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            self.remove_stale_temps()
        writable_dir(self.path, "the run directory")

    def remove_stale_temps(self) -> list[Path]:
        """Delete the hidden temp files (.NAME.XXXX.tmp) that an atomic write killed mid-way (kill -9, power loss)
        left beside the run's files; called when a run is resumed or started over, when its writer is not running."""
        stale = sorted(p for d in (self.path, self.ckpt_dir) if d.is_dir() for p in d.glob(".*.tmp"))
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def write_config(self, cfg: dict[str, Any]) -> None:
        text = yaml.safe_dump(cfg, sort_keys=False).encode()
        _atomic_write_bytes(self.path / "config.yaml", lambda f: f.write(text))

    def log_metrics(self, row: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def metrics_rows(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        return read_jsonl(path) if path.exists() else []

    def truncate_metrics(self, max_epoch: int) -> None:
        """On resume: drop lines logged after the checkpoint being resumed from."""
        path = self.path / "metrics.jsonl"
        if path.exists():
            rows = [r for r in read_jsonl(path) if r.get("epoch", 0) <= max_epoch]
            text = "".join(json.dumps(r) + "\n" for r in rows).encode()
            _atomic_write_bytes(path, lambda f: f.write(text))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2).encode()
        _atomic_write_bytes(self.path / name, lambda f: f.write(text))

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> Path:
        path = self.ckpt_dir / f"{name}.pt"
        _atomic_write_bytes(path, lambda f: torch.save(state, f))
        return path

    def load_checkpoint(self, name: str) -> dict[str, Any]:
        return load_checkpoint_file(self.ckpt_dir / f"{name}.pt")


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """torch.load with a clear error for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        run = path.parent.parent
        how = (f"train it again with python -m ltlab train --config {run / 'config.yaml'} --out {run} --overwrite"
               if (run / "config.yaml").is_file() else f"train the run first (python -m ltlab train --out {run})")
        raise DataError(f"checkpoint {path} not found; {how}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated, empty, random bytes, another format
        raise DataError(f"checkpoint {path} is damaged or not an ltlab checkpoint ({type(e).__name__}); delete it "
                        "and train again with --overwrite") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise DataError(f"checkpoint {path} is not an ltlab checkpoint (no 'model' tensors); train again with "
                        "--overwrite")
    return state


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a partial last line (a killed writer) is skipped, other bad lines raise."""
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise DataError(f"{path} line {i + 1} is not JSON; the run's records are damaged: train it again "
                            "with --overwrite") from None
    return rows


@dataclass
class Run:
    """A finished (or partial) run, as plain data for notebooks and plots."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def checkpoint(self, which: str = "last") -> dict[str, Any]:
        return RunDir(self.path).load_checkpoint(which)

    def epoch_states(self) -> list[dict[str, Any]]:
        """The trainable tensors saved every `save_every` epochs, in epoch order (the training path)."""
        names = sorted(p.stem for p in (self.path / "checkpoints").glob("epoch*.pt"))
        if not names:
            raise DataError(f"{self.path} has no per-epoch checkpoints; train it with save_every=1 to record the "
                            "training path")
        return [self.checkpoint(n)["model"] for n in names]

    def build(self, which: str = "last", device: str = "cpu"):
        """(model, data bundle, loss) rebuilt from the config, with the checkpoint's trainable tensors."""
        from ..config import config_from_dict
        from ..data import build_dataset
        from ..losses import loss_from_config
        from ..models import build_model

        cfg = config_from_dict(self.config)
        data = build_dataset(cfg.data)
        model = build_model(cfg.model, data.num_classes)
        state = self.checkpoint(which)
        model.load_state_dict(state["model"], strict=False)
        # the training loss as it stood at that checkpoint (DRW weights of its epoch), deterministic (eval mode)
        loss = loss_from_config(cfg, data.class_counts)
        loss.set_epoch(max(0, int(state.get("epoch", cfg.epochs)) - 1))
        return model.to(device).eval(), data, loss.eval()

    @property
    def headline_checkpoint(self) -> str:
        """The checkpoint the summary's headline reports ("last" unless eval.select=best_val chose another)."""
        return self.summary.get("checkpoint", "last")


def load_run(path: str | Path) -> Run:
    """Read a run directory written by the trainer."""
    path = Path(path)
    if not (path / "config.yaml").exists():
        raise DataError(f"{path} is not an ltlab run directory (no config.yaml)")
    metrics = read_jsonl(path / "metrics.jsonl") if (path / "metrics.jsonl").exists() else []
    try:
        summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else {}
        config = yaml.safe_load((path / "config.yaml").read_text())
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: summary.json or config.yaml is damaged ({type(e).__name__}); train the run "
                        "again with --overwrite") from None
    if not isinstance(config, dict):
        raise DataError(f"{path}/config.yaml does not hold a config mapping; train the run again with --overwrite")
    if not isinstance(summary, dict):
        raise DataError(f"{path}/summary.json does not hold a run's summary (a mapping); train the run again with "
                        "--overwrite")
    return Run(path, config, metrics, summary)
