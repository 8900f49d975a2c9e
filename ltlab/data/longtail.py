"""Long-tailed class profiles and many / medium / few splits."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError


def longtail_counts(num_classes: int, n_max: int, imbalance_ratio: float, profile: str = "exp") -> list[int]:
    """Images per class of a long-tailed profile.

    exp:  n_i = int(n_max * (1/IR) ** (i / (C - 1)))   (Cao et al. 2019; CIFAR-100-LT)
    step: the first half of the classes keep n_max, the rest get int(n_max / IR).

    >>> sum(longtail_counts(100, 500, 100))
    10847
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes={num_classes}: need at least 1 class")
    if n_max < 1:
        raise ConfigError(f"n_max={n_max}: need at least 1 image for the largest class")
    if not imbalance_ratio >= 1:  # also catches NaN
        raise ConfigError(f"imbalance_ratio={imbalance_ratio}: must be >= 1 (1 = balanced)")
    if num_classes == 1 and imbalance_ratio != 1:
        raise ConfigError(f"imbalance_ratio={imbalance_ratio} with 1 class: one class cannot be imbalanced; use at "
                          "least 2 classes or imbalance_ratio=1")
    if profile == "exp":
        if num_classes == 1:
            return [n_max]
        return _check_counts([int(n_max * (1.0 / imbalance_ratio) ** (i / (num_classes - 1)))
                              for i in range(num_classes)], n_max, imbalance_ratio)
    if profile == "step":
        half = num_classes // 2
        return _check_counts([n_max] * (num_classes - half) + [int(n_max / imbalance_ratio)] * half, n_max,
                             imbalance_ratio)
    raise ConfigError(f"profile={profile!r}: use 'exp' or 'step'")


def _check_counts(counts: list[int], n_max: int, imbalance_ratio: float) -> list[int]:
    if min(counts) < 1:
        raise ConfigError(f"n_max={n_max} / imbalance_ratio={imbalance_ratio} leaves a class with no image; raise "
                          "n_max or lower the imbalance ratio")
    return counts


def class_splits(
    counts: Sequence[int], many: int = 100, few: int = 20, convention: str = "count"
) -> dict[str, list[int]]:
    """Many / medium / few class indices.

    convention="count" (standard): many > `many` images, few < `few`, medium in between.
    convention="gnm_index": the GNM repository's fixed index ranges for 100 classes,
    [0, 36) / [36, 71) / [71, 100), scaled proportionally for other class counts.

    >>> {k: len(v) for k, v in class_splits([500, 50, 5]).items()}
    {'many': 1, 'medium': 1, 'few': 1}
    """
    counts = list(counts)
    if convention == "count":
        return {
            "many": [c for c, n in enumerate(counts) if n > many],
            "medium": [c for c, n in enumerate(counts) if few <= n <= many],
            "few": [c for c, n in enumerate(counts) if n < few],
        }
    if convention == "gnm_index":
        n = len(counts)
        a, b = round(36 * n / 100), round(71 * n / 100)
        return {"many": list(range(0, a)), "medium": list(range(a, b)), "few": list(range(b, n))}
    raise ConfigError(f"convention={convention!r}: use 'count' or 'gnm_index'")


def subsample_per_class(labels: np.ndarray, counts: Sequence[int], seed: int = 0) -> np.ndarray:
    """Indices keeping counts[c] random images of class c (numpy RandomState(seed), as LDAM-DRW and GNM do)."""
    rng = np.random.RandomState(seed)
    keep = []
    for c, n in enumerate(counts):
        idx = np.where(labels == c)[0]
        rng.shuffle(idx)
        if len(idx) < n:
            raise ConfigError(f"class {c} has {len(idx)} images, the profile asks for {n}; lower data.n_max")
        keep.append(idx[:n])
    return np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
