"""Figures from plain results (dataclasses, arrays, rows); one style, `save(fig, name)`."""
from .headtail import (cost_bars, effect_lines, group_bars, metric_bars, paired_note, per_class_accuracy, sample_images,
                       training_curves)
from .landscape import trajectory_on_surface, eigen_ratio, group_values, per_class_values, spectra, surfaces_1d, surfaces_2d
from . import playground
from .style import PALETTE, color, save, style

__all__ = ["playground", "save", "style", "color", "PALETTE", "per_class_accuracy", "sample_images", "group_bars", "training_curves", "cost_bars", "effect_lines", "metric_bars", "paired_note",
           "surfaces_2d", "trajectory_on_surface", "surfaces_1d", "spectra", "eigen_ratio", "per_class_values", "group_values"]
