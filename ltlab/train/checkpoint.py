"""What a checkpoint holds, and exact resume: a resumed run is the run it would have been.

A checkpoint holds the trainable tensors (never the frozen backbone), the optimizer (with its
perturbation generators), the lr schedule, the fp16 scaler, the position (epoch, step), the best
validation so far, every RNG and the config. A resume refuses a changed config, except the keys that
do not change the maths (`RESUME_MAY_CHANGE`).
"""
from __future__ import annotations

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


def checkpoint_state(t) -> dict[str, Any]:
    """The exact state of trainer `t` at a step boundary."""
    return {
        "model": trainable_state(t.model), "optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
        "scaler": t.scaler.state_dict() if t.scaler else None,
        "epoch": t.epoch, "step_in_epoch": t.step_in_epoch, "global_step": t.global_step,
        "best_val": t.best_val, "best_epoch": t.best_epoch, "rng": rng_snapshot(),
        "step_times": t.step_times, "epoch_losses": list(t.epoch_losses),
        "epoch_diagnostics": list(t.epoch_diagnostics), "config": to_dict(t.cfg),
    }


def restore(t, st: dict[str, Any]) -> None:
    """Put checkpoint `st` back into trainer `t` (the inverse of `checkpoint_state`)."""
    t.model.load_state_dict(st["model"], strict=False)
    t.optimizer.load_state_dict(st["optimizer"])
    t.scheduler.load_state_dict(st["scheduler"])
    if t.scaler and st.get("scaler"):
        t.scaler.load_state_dict(st["scaler"])
    t.epoch, t.step_in_epoch, t.global_step = st["epoch"], st["step_in_epoch"], st["global_step"]
    t.best_val, t.best_epoch = st["best_val"], st["best_epoch"]
    t.step_times = list(st.get("step_times", []))
    t.epoch_losses = list(st.get("epoch_losses", []))
    t.epoch_diagnostics = list(st.get("epoch_diagnostics", []))
    rng_restore(st["rng"])


def resume(t) -> None:
    """Continue trainer `t` from its run's checkpoints/last.pt: model, optimizer, schedule, data order, RNGs.

    The checkpoint's config must equal t's, except keys that do not change the maths (RESUME_MAY_CHANGE);
    anything else is refused with the list of differences.
    """
    st = t.run.load_checkpoint("last")
    changed = changed_since(st.get("config", {}), t.cfg)
    if changed:
        raise ConfigError(
            f"--resume with a changed config: {'; '.join(changed)}. A resumed run must be the run it would "
            f"have been: resume with the run's own config ({t.run.path / 'config.yaml'}), or start a new "
            "run (another --out, or --overwrite)")
    restore(t, st)
    t.run.truncate_metrics(t.epoch)
