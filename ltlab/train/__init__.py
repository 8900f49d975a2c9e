"""Training: fit loop, metrics, run directories."""
from .metrics import classification_metrics, expected_calibration_error, group_accuracy, per_class_accuracy
from .runs import Run, RunDir, load_run
from .entry import fit
from .trainer import Trainer, TrainingDiverged

__all__ = ["fit", "Trainer", "TrainingDiverged", "load_run", "Run", "RunDir", "classification_metrics",
           "per_class_accuracy", "group_accuracy", "expected_calibration_error"]
