"""Run any probe on each class's samples: head-vs-tail curvature in one call."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .hvp import model_device, shard
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
              max_per_class: int = 64, value_fn: Callable = probe_value, equal: bool = True, seed: int = 0,
              **probe_kwargs: Any) -> PerClassResult:
    """probe(model, loss_fn, (x_c, y_c), **kw) for each class c; a table with class size and group.

    equal=True (default) gives every class the same number of images, min(max_per_class, the smallest
    class's count), drawn with `seed`, so head and tail classes are measured alike (curvature
    estimates depend on the sample size). equal=False takes up to max_per_class images per class.

    >>> from ltlab.probes import top_eigenvalues                         # doctest: +SKIP
    >>> per_class(top_eigenvalues, model, loss_fn, data.val, class_counts=data.class_counts,
    ...           splits=data.splits).to_frame()                          # doctest: +SKIP
    """
    targets = np.asarray(getattr(dataset, "targets", [dataset[i][1] for i in range(len(dataset))]))
    targets = targets.numpy() if torch.is_tensor(targets) else targets
    classes = list(classes) if classes is not None else sorted(set(targets.tolist()))
    group_of = {c: g for g, cs in (splits or {}).items() for c in cs}
    device = model_device(model)
    members = {c: np.where(targets == c)[0] for c in classes}
    empty = [c for c in classes if len(members[c]) == 0]
    if empty:
        raise ValueError(f"class {empty[0]} has no samples in this dataset")
    take = min(max_per_class, min(len(m) for m in members.values())) if equal else max_per_class
    rng = np.random.RandomState(seed)
    values, errs, counts, groups = [], [], [], []
    for c in classes:
        idx = np.sort(rng.permutation(members[c])[:take]) if equal else members[c][:take]
        items = [dataset[int(i)] for i in shard(idx)]  # under torch.distributed: this rank's share of the class
        x = (torch.stack([torch.as_tensor(it[0]) for it in items]) if items
             else torch.empty(0, *torch.as_tensor(dataset[int(idx[0])][0]).shape)).to(device)
        y = torch.as_tensor([int(it[1]) for it in items], dtype=torch.long, device=device)
        v, e = value_fn(probe(model, loss_fn, (x, y), seed=seed, **probe_kwargs)
                        if "seed" in _parameters(probe) else probe(model, loss_fn, (x, y), **probe_kwargs))
        values.append(v)
        errs.append(e)
        counts.append(int(class_counts[c]) if class_counts is not None else int(len(idx)))
        groups.append(group_of.get(c, ""))
    return PerClassResult([int(c) for c in classes], counts, groups, values, errs, getattr(probe, "__name__", ""),
                          int(take) if equal else 0)


def _parameters(fn: Callable) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()
