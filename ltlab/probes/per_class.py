"""Run any probe on each class's samples: head-vs-tail curvature in one call."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .hvp import model_device
from .results import PerClassResult


def probe_value(result: Any) -> tuple[float, float]:
    """The headline number of a probe result: `estimate` (trace, sharpness) or the top eigenvalue."""
    if hasattr(result, "estimate"):
        return float(result.estimate), float(getattr(result, "stderr", np.nan))
    if hasattr(result, "eigenvalues"):
        return float(result.eigenvalues[0]), float(result.residuals[0] * abs(result.eigenvalues[0]))
    raise TypeError(f"cannot summarise a {type(result).__name__}: give value_fn=")


def per_class(probe: Callable, model: nn.Module, loss_fn: Callable, dataset: Any, classes: Sequence[int] | None = None,
              class_counts: Sequence[int] | None = None, splits: dict[str, list[int]] | None = None,
              max_per_class: int = 64, value_fn: Callable = probe_value, **probe_kwargs: Any) -> PerClassResult:
    """probe(model, loss_fn, (x_c, y_c), **kw) for each class c; a table with class size and group.

    >>> from ltlab.probes import top_eigenvalues                         # doctest: +SKIP
    >>> per_class(top_eigenvalues, model, loss_fn, data.val, class_counts=data.class_counts,
    ...           splits=data.splits).to_frame()                          # doctest: +SKIP
    """
    targets = np.asarray(getattr(dataset, "targets", [dataset[i][1] for i in range(len(dataset))]))
    targets = targets.numpy() if torch.is_tensor(targets) else targets
    classes = list(classes) if classes is not None else sorted(set(targets.tolist()))
    group_of = {c: g for g, cs in (splits or {}).items() for c in cs}
    device = model_device(model)
    values, errs, counts, groups = [], [], [], []
    for c in classes:
        idx = np.where(targets == c)[0][:max_per_class]
        if len(idx) == 0:
            raise ValueError(f"class {c} has no samples in this dataset")
        items = [dataset[int(i)] for i in idx]
        x = torch.stack([torch.as_tensor(it[0]) for it in items]).to(device)
        y = torch.as_tensor([int(it[1]) for it in items], device=device)
        v, e = value_fn(probe(model, loss_fn, (x, y), **probe_kwargs))
        values.append(v)
        errs.append(e)
        counts.append(int(class_counts[c]) if class_counts is not None else int(len(idx)))
        groups.append(group_of.get(c, ""))
    return PerClassResult([int(c) for c in classes], counts, groups, values, errs, getattr(probe, "__name__", ""))
