"""One optimizer family: SAM, ASAM, RSAM and GNM over any base optimizer (see base.py)."""
from .asam import ASAM
from .base import PerturbedOptimizer
from .factory import OPTIMIZERS, OptimInfo, create_optimizer, list_optimizers
from .gnm import GNM
from .rsam import RSAM
from .sam import SAM

__all__ = ["SAM", "ASAM", "RSAM", "GNM", "PerturbedOptimizer", "create_optimizer", "list_optimizers",
           "OPTIMIZERS", "OptimInfo"]
