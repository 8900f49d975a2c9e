"""One optimizer family: SAM, ASAM, RSAM, GNM, ImbSAM, Focal-SAM and CC-SAM over any base optimizer (see base.py).

A new method is one file: subclass `PerturbedOptimizer` (its ``perturbation``; its options are its
``__init__`` keyword arguments) and name it by import path, ``optimizer.name=package.module:Class``,
or add one `OptimInfo` line to the registry in factory.py.
"""
from .asam import ASAM
from .base import PerturbedOptimizer, Plain, SampleLosses, make_closure
from .factory import OPTIMIZERS, PAPER_COMPARISON, OptimInfo, create_optimizer, list_optimizers, method_options, optimizer_info
from .gnm import GNM
from .ccsam import CCSAM
from .class_aware import ClassWeightedSAM, FocalSAM, ImbSAM
from .rsam import RSAM
from .sam import SAM

__all__ = ["SAM", "ASAM", "RSAM", "GNM", "ImbSAM", "FocalSAM", "CCSAM", "ClassWeightedSAM", "PerturbedOptimizer",
           "Plain", "SampleLosses", "make_closure", "create_optimizer", "list_optimizers", "method_options",
           "optimizer_info", "OPTIMIZERS", "PAPER_COMPARISON", "OptimInfo"]
