"""LPT (Dong et al., ICLR 2023) from one command: phase 1 (shared prompt + head) then phase 2 (group prompts)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, without_lpt_keys
from ..errors import ConfigError
from ..models import check_model
from .runs import RunDir
from .trainer import Trainer, fit_run


def lpt_phases(cfg: ExperimentConfig) -> tuple[ExperimentConfig, ExperimentConfig]:
    """(phase 1, phase 2) configs of LPT from one experiment config. Phase 1 has no pool and no dual sampling,
    so its config holds the defaults of the keys that only they read (what it says is what it used)."""
    if cfg.model.pool_size < 1:
        raise ConfigError("method=lpt needs a group-prompt pool: set model.pool_size (LPT: 20)")
    p1 = without_lpt_keys(dataclasses.replace(cfg, method="vpt", epochs=cfg.lpt_phase1_epochs, dual_sampling=False,
                          model=dataclasses.replace(cfg.model, pool_size=0, freeze_shared_prompt=False)))
    p2 = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, freeze_shared_prompt=True))
    return p1, p2


def fit_lpt(cfg: ExperimentConfig, out: Path, resume: bool = False, progress: bool = True,
            overwrite: bool = False) -> dict[str, Any]:
    """out/phase1 (shared prompt + head, the pool off), then out itself (phase 2: group prompts, keys and
    head, shared prompt frozen, dual sampling), started from phase 1's `eval.select` checkpoint."""
    p1, p2 = lpt_phases(cfg)
    check_model(p2.model)  # an architecture phase 2 cannot build is refused before phase 1 trains
    run, phase1_dir = RunDir(out), out / "phase1"
    if resume:
        if not ((phase1_dir / "checkpoints" / "last.pt").exists() or (run.ckpt_dir / "last.pt").exists()):
            run.prepare(resume=True)  # raises: nothing to resume
    else:
        run.prepare(overwrite=overwrite)  # a rerun never reuses an old phase 1
    if not (phase1_dir / "summary.json").exists():
        fit_run(p1, phase1_dir, resume=resume and (phase1_dir / "checkpoints" / "last.pt").exists(), progress=progress)
    chosen = json.loads((phase1_dir / "summary.json").read_text()).get("checkpoint", "last")
    trainer = Trainer(p2, out, progress=progress, init_from=phase1_dir / "checkpoints" / f"{chosen}.pt")
    if resume and (run.ckpt_dir / "last.pt").exists():
        trainer.resume()
    return trainer.fit()
