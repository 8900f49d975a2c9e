"""What a checkpoint holds, and exact resume: a resumed run is the run it would have been.

A checkpoint holds the trainable tensors (never the frozen backbone), the optimizer (with its
perturbation generators), the lr schedule, the fp16 scaler, the position (epoch, step), the best
validation so far, every RNG and the config. A resume refuses a changed config, except the keys that
do not change the maths (`RESUME_MAY_CHANGE`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..config import ExperimentConfig, config_from_dict, to_dict
from ..errors import ConfigError
from ..utils import rng_restore, rng_snapshot

RESUME_MAY_CHANGE = ("device", "data.num_workers", "data.root", "compile", "log", "eval.diagnostics_every")


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """'key: old -> new' for every key that differs, except those a resume may change."""
    out = []
    for k in sorted(set(old) | set(new)):
        key = prefix + str(k)
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, key + ".")
        elif a != b and key not in RESUME_MAY_CHANGE:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def current_form(saved: dict[str, Any]) -> dict[str, Any]:
    """A config dict as today's code writes it (old keys mapped, every default filled in); unchanged when
    it no longer validates (the comparison then lists what differs). The device is read as "auto": a run made
    on a GPU is compared on a machine without one, and a resume may change the device anyway."""
    try:
        return to_dict(config_from_dict({**saved, "device": "auto"}))
    except ConfigError:
        return saved


def changed_since(saved: dict[str, Any], cfg: ExperimentConfig) -> list[str]:
    """What differs between a saved config (a run's config.yaml, a checkpoint's) and cfg."""
    if not isinstance(saved, dict):
        return ["the saved config is not a mapping"]
    return config_changes(current_form(saved), to_dict(cfg))  # the device is among RESUME_MAY_CHANGE


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Everything but the frozen backbone: prompts (shared, group, keys) and head; a few MB even for ViT-B."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.startswith("backbone.")}


@dataclasses.dataclass
class TrainState:
    """Where a run stands at a step boundary, beside its tensors: what a checkpoint holds and resume restores."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0
    global_step: int = 0
    best_val: float = -1.0  # best validation overall accuracy so far, and its epoch (1-based; -1: none yet)
    best_epoch: int = -1
    step_times: list[float] = dataclasses.field(default_factory=list)
    epoch_losses: list[float] = dataclasses.field(default_factory=list)  # the current epoch's step losses
    epoch_diagnostics: list[dict[str, float]] = dataclasses.field(default_factory=list)  # its diagnosed steps

    def next_epoch(self) -> None:
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.epoch_losses, self.epoch_diagnostics = [], []


def checkpoint_state(state: TrainState, cfg: ExperimentConfig, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                     scaler: Any = None) -> dict[str, Any]:
    """The exact state of a run at a step boundary (the inverse of `restore`)."""
    return {
        "model": trainable_state(model), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler else None,
        **{k: (list(v) if isinstance(v, list) else v) for k, v in dataclasses.asdict(state).items()},
        "rng": rng_snapshot(), "config": to_dict(cfg),
    }


def restore(st: dict[str, Any], model: torch.nn.Module, optimizer: Any, scheduler: Any, scaler: Any = None
            ) -> TrainState:
    """Put checkpoint `st`'s tensors, schedule and RNGs back; returns its TrainState."""
    model.load_state_dict(st["model"], strict=False)
    optimizer.load_state_dict(st["optimizer"])
    scheduler.load_state_dict(st["scheduler"])
    if scaler and st.get("scaler"):
        scaler.load_state_dict(st["scaler"])
    rng_restore(st["rng"])
    lists = {"step_times", "epoch_losses", "epoch_diagnostics"}  # absent from older checkpoints: empty
    return TrainState(**{f.name: list(st.get(f.name, [])) if f.name in lists else st[f.name]
                         for f in dataclasses.fields(TrainState)})


def resumable(run: Any, cfg: ExperimentConfig) -> dict[str, Any]:
    """The run's checkpoints/last.pt, to continue it with `cfg`: model, optimizer, schedule, data order, RNGs.

    The checkpoint's config must equal cfg, except keys that do not change the maths (RESUME_MAY_CHANGE);
    anything else is refused with the list of differences.
    """
    st = run.load_checkpoint("last")
    changed = changed_since(st.get("config", {}), cfg)
    if changed:
        raise ConfigError(
            f"--resume with a changed config: {'; '.join(changed)}. A resumed run must be the run it would "
            f"have been: resume with the run's own config ({run.path / 'config.yaml'}), or start a new "
            "run (another --out, or --overwrite)")
    return st
