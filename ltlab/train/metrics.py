"""Per-class accuracy, many / medium / few, ECE, confusion matrix."""
from __future__ import annotations

import numpy as np
import torch


def per_class_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> np.ndarray:
    """Accuracy of each class (NaN for a class with no samples)."""
    pred, target = pred.cpu(), target.cpu()
    total = torch.bincount(target, minlength=num_classes).double()
    correct = torch.bincount(target[pred == target], minlength=num_classes).double()
    acc = (correct / total.clamp_min(1)).numpy()
    acc[total.numpy() == 0] = np.nan
    return acc


def group_accuracy(per_class: np.ndarray, splits: dict[str, list[int]]) -> dict[str, float]:
    """Mean per-class accuracy over each group's classes (NaN for an empty group)."""
    out = {}
    for name, classes in splits.items():
        vals = per_class[classes] if len(classes) else np.array([])
        vals = vals[~np.isnan(vals)]
        out[name] = float(vals.mean()) if len(vals) else float("nan")
    return out


def expected_calibration_error(probs: torch.Tensor, target: torch.Tensor, bins: int = 15) -> float:
    """ECE: sum over equal-width confidence bins of |accuracy - confidence| weighted by bin mass."""
    conf, pred = probs.max(1)
    correct = pred.eq(target).double()
    idx = torch.clamp((conf.double() * bins).ceil().long() - 1, 0, bins - 1)
    mass = torch.bincount(idx, minlength=bins).double()
    gap = torch.bincount(idx, weights=correct - conf.double(), minlength=bins)
    return float(gap.abs().sum() / mass.sum())


def classification_metrics(logits: torch.Tensor, target: torch.Tensor, splits: dict[str, list[int]]) -> dict:
    """overall (sample accuracy), many / medium / few, ECE and per-class accuracy, in percent."""
    num_classes = logits.shape[1]
    pred = logits.argmax(1)
    pc = per_class_accuracy(pred, target, num_classes)
    groups = group_accuracy(pc, splits)
    return {
        "overall": 100 * float((pred == target).double().mean()),
        **{k: 100 * v for k, v in groups.items()},
        "ece": 100 * expected_calibration_error(torch.softmax(logits.float(), 1), target),
        "per_class": [None if np.isnan(a) else round(100 * float(a), 3) for a in pc],
    }
