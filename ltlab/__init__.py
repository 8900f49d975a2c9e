"""ltlab: sharpness-aware prompt tuning on long-tailed image data.

Importing ltlab is cheap: sub-modules (and torch, timm) load on first use.

>>> import ltlab
>>> ltlab.__version__
'0.1.0'
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (resolved lazily by __getattr__)
_EXPORTS = {
    "load_config": "ltlab.config",
    "ExperimentConfig": "ltlab.config",
    "build_dataset": "ltlab.data",
    "longtail_counts": "ltlab.data",
    "class_splits": "ltlab.data",
    "PromptedViT": "ltlab.models",
    "build_model": "ltlab.models",
    "build_loss": "ltlab.losses",
    "create_optimizer": "ltlab.optim",
    "fit": "ltlab.train",
    "Trainer": "ltlab.train",
    "load_run": "ltlab.train",
    "seed_everything": "ltlab.utils",
}
# every method of the optimizer registry is exported by its class name too (ltlab.GNM, ltlab.FocalSAM, ...): the
# registry (ltlab.optim.OPTIMIZERS) is the one list, read on first use
__all__ = sorted(_EXPORTS) + ["__version__"]


def _method_classes() -> dict[str, Any]:
    from .optim import OPTIMIZERS

    return {info.cls.__name__: info.cls for info in OPTIMIZERS.values() if info.base is None}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name[:1].isupper():
        classes = _method_classes()
        if name in classes:
            return classes[name]
    raise AttributeError(f"module 'ltlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_method_classes()))
