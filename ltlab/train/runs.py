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


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def provenance() -> dict[str, Any]:
    """Git commit, package versions and machine, recorded with every run."""
    import timm

    import ltlab

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(ltlab.__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "git_commit": commit or None, "ltlab": ltlab.__version__, "torch": torch.__version__,
        "timm": timm.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }


class RunDir:
    """Writer for one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"

    def write_config(self, cfg: dict[str, Any]) -> None:
        text = yaml.safe_dump(cfg, sort_keys=False).encode()
        _atomic_write_bytes(self.path / "config.yaml", lambda f: f.write(text))

    def log_metrics(self, row: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

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
        path = self.ckpt_dir / f"{name}.pt"
        if not path.exists():
            raise DataError(f"checkpoint {path} not found: nothing to resume from (train without --resume)")
        return torch.load(path, map_location="cpu", weights_only=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


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

    def checkpoint(self, which: str = "best") -> dict[str, Any]:
        return RunDir(self.path).load_checkpoint(which)

    def build(self, which: str = "best", device: str = "cpu"):
        """(model, data bundle, loss) rebuilt from the config, with the checkpoint's trainable tensors."""
        from ..config import config_from_dict
        from ..data import build_dataset
        from ..losses import build_loss
        from ..models import build_model

        cfg = config_from_dict(self.config)
        data = build_dataset(cfg.data)
        model = build_model(cfg.model, data.num_classes)
        model.load_state_dict(self.checkpoint(which)["model"], strict=False)
        loss = build_loss(cfg.loss.name, data.class_counts, None, cfg.loss.beta, **loss_kwargs(cfg))
        return model.to(device).eval(), data, loss


def loss_kwargs(cfg) -> dict[str, Any]:
    """Constructor arguments of the configured loss (margins in the cosine head's scale)."""
    lc = cfg.loss
    return {"m": lc.m, "max_m": lc.max_m, "noise_mul": lc.noise_mul, "tau": lc.tau, "gamma": lc.gamma,
            "scale": cfg.model.head_scale}


def load_run(path: str | Path) -> Run:
    """Read a run directory written by the trainer."""
    path = Path(path)
    if not (path / "config.yaml").exists():
        raise DataError(f"{path} is not an ltlab run directory (no config.yaml)")
    metrics = read_jsonl(path / "metrics.jsonl") if (path / "metrics.jsonl").exists() else []
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else {}
    return Run(path, yaml.safe_load((path / "config.yaml").read_text()), metrics, summary)
