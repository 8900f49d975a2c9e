"""`fit`: the one entry point that trains a run directory, VPT (one phase) or LPT (two phases, ltlab.train.lpt).
It sits above both, so the trainer knows no LPT and LPT drives the trainer, with no import circle."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ExperimentConfig
from .lpt import fit_lpt
from .trainer import default_out, fit_run


def fit(cfg: ExperimentConfig, out: str | Path | None = None, resume: bool = False, progress: bool = True,
        overwrite: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Train one run; returns summary.json's dict.

    A directory that already holds a run is refused unless `resume=True` (continue from
    out/checkpoints/last.pt, exactly) or `overwrite=True` (delete that run and start over).
    method="lpt" runs both LPT phases (`ltlab.train.lpt.fit_lpt`).

    >>> from ltlab.config import load_config
    >>> summary = fit(load_config("synthetic", ["epochs=1"]), out="runs/doc")   # doctest: +SKIP
    """
    out = Path(out) if out is not None else default_out(cfg)
    if cfg.method == "lpt" and not kwargs.get("init_from"):
        return fit_lpt(cfg, out, resume, progress, overwrite)
    return fit_run(cfg, out, resume, progress, overwrite, **kwargs)
