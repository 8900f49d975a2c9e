"""Figures from plain results (dataclasses, arrays, rows); one style, `save(fig, name)`."""
from .headtail import cost_bars, group_bars, per_class_accuracy, training_curves
from .style import PALETTE, color, save, style

__all__ = ["save", "style", "color", "PALETTE", "per_class_accuracy", "group_bars", "training_curves", "cost_bars"]
