"""One optimizer family: SAM, ASAM, RSAM, GNM, ImbSAM, Focal-SAM and CC-SAM over any base optimizer (see base.py)."""
from .asam import ASAM
from .base import PerturbedOptimizer, SampleLosses
from .factory import OPTIMIZERS, OptimInfo, create_optimizer, list_optimizers
from .gnm import GNM
from .ccsam import CCSAM
from .class_aware import ClassWeightedSAM, FocalSAM, ImbSAM
from .rsam import RSAM
from .sam import SAM

__all__ = ["SAM", "ASAM", "RSAM", "GNM", "ImbSAM", "FocalSAM", "CCSAM", "ClassWeightedSAM", "PerturbedOptimizer", "SampleLosses", "create_optimizer", "list_optimizers",
           "OPTIMIZERS", "OptimInfo"]
