"""Batch samplers: instance-balanced, class-balanced, and LPT's dual sampling (both in one batch)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def class_balanced_indices(targets: Sequence[int], n: int, generator: torch.Generator) -> list[int]:
    """n indices: a uniformly random class, then a uniformly random image of that class."""
    targets = np.asarray(targets)
    classes = np.unique(targets)
    by_class = [np.where(targets == c)[0] for c in classes]
    cls = torch.randint(0, len(classes), (n,), generator=generator).numpy()
    pick = torch.rand(n, generator=generator).numpy()
    return [int(by_class[c][int(p * len(by_class[c]))]) for c, p in zip(cls, pick)]


def dual_batches(targets: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """One epoch of LPT dual sampling: each batch = an instance-balanced half + a class-balanced half.

    The first len(batch) // 2 indices are instance-balanced (a random permutation), the rest
    class-balanced; the trainer splits the batch there and weights the two losses.
    """
    perm = torch.randperm(len(targets), generator=generator)
    out = []
    for ib in perm.split(batch_size):
        out.append(ib.tolist() + class_balanced_indices(targets, len(ib), generator))
    return out
