"""Long-tailed data: profiles, splits, the embedded synthetic task and real benchmarks.

>>> from ltlab.config import DataConfig
>>> b = build_dataset(DataConfig(num_classes=10, n_max=20, imbalance_ratio=10, test_per_class=2))
>>> b.num_classes, len(b.train) == sum(b.class_counts)
(10, True)
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..config import DataConfig
from ..errors import ConfigError, DataError
from . import synthetic
from .longtail import class_splits, longtail_counts, subsample_per_class
from .transforms import TensorAugment, cifar_transform, imagenet_transform

__all__ = [
    "DatasetBundle", "build_dataset", "longtail_counts", "class_splits", "list_datasets", "TensorDataset",
]


class TensorDataset(Dataset):
    """uint8 image tensor (N, 3, H, W) + labels, with a per-item transform."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: Callable | None = None):
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        x = self.images[i]
        return (self.transform(x) if self.transform else x), int(self.targets[i])

    def subset(self, indices, transform: Callable | None = None) -> "TensorDataset":
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return TensorDataset(self.images[idx], self.targets[idx], transform)


@dataclass
class DatasetBundle:
    """Train / val / test splits plus what the metrics need (class counts and groups)."""

    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    class_counts: list[int]
    class_names: list[str]
    splits: dict[str, list[int]] = field(default_factory=dict)


def _synthetic(cfg: DataConfig) -> DatasetBundle:
    classes = synthetic.target_classes(cfg.num_classes, cfg.seed)
    counts = longtail_counts(cfg.num_classes, cfg.n_max, cfg.imbalance_ratio, cfg.profile)
    s = cfg.image_size
    # three disjoint generator streams: train, val (balanced), test (balanced)
    tr_x, tr_y = synthetic.make_split(classes, counts, s, seed=cfg.seed * 3 + 0)
    va_x, va_y = synthetic.make_split(classes, [cfg.val_per_class] * cfg.num_classes, s, seed=cfg.seed * 3 + 1)
    te_x, te_y = synthetic.make_split(classes, [cfg.test_per_class] * cfg.num_classes, s, seed=cfg.seed * 3 + 2)
    train_tf = TensorAugment(train=cfg.augment)
    eval_tf = TensorAugment(train=False)
    return DatasetBundle(
        train=TensorDataset(tr_x, tr_y, train_tf),
        val=TensorDataset(va_x, va_y, eval_tf),
        test=TensorDataset(te_x, te_y, eval_tf),
        num_classes=cfg.num_classes,
        class_counts=counts,
        class_names=[synthetic.class_name(c) for c in classes],
    )


def _cifar(cfg: DataConfig, num_classes: int) -> DatasetBundle:
    from .benchmarks import ArrayImageDataset, read_cifar

    tr_x, tr_y, te_x, te_y, names = read_cifar(cfg.root, num_classes, cfg.download)
    n_max = min(cfg.n_max, int(np.bincount(tr_y).min()))
    counts = longtail_counts(num_classes, n_max, cfg.imbalance_ratio, cfg.profile)
    keep = subsample_per_class(tr_y, counts, seed=cfg.seed)
    # validation: a balanced set from the training images the long-tailed subset left out
    unused = np.setdiff1d(np.arange(len(tr_y)), keep)
    rng = np.random.RandomState(cfg.seed + 1)
    val_idx = np.concatenate(
        [rng.permutation(unused[tr_y[unused] == c])[: cfg.val_per_class] for c in range(num_classes)]
    ).astype(np.int64)
    s = cfg.image_size
    return DatasetBundle(
        train=ArrayImageDataset(tr_x[keep], tr_y[keep], cifar_transform(True, s, cfg.augment)),
        val=ArrayImageDataset(tr_x[val_idx], tr_y[val_idx], cifar_transform(False, s)),
        test=ArrayImageDataset(te_x, te_y, cifar_transform(False, s)),
        num_classes=num_classes,
        class_counts=counts,
        class_names=names,
    )


def _txt_list(cfg: DataConfig, default_lists: tuple[str, str, str]) -> DatasetBundle:
    from .benchmarks import ListDataset

    train_list = cfg.train_list or default_lists[0]
    test_list = cfg.test_list or default_lists[2]
    s = cfg.image_size
    full = ListDataset(cfg.root, train_list, imagenet_transform(True, s, cfg.augment), key="data.train_list")
    num_classes = int(full.targets.max()) + 1
    empty = np.flatnonzero(np.bincount(full.targets, minlength=num_classes) == 0).tolist()
    if empty:
        raise DataError(f"data.train_list: {len(empty)} of the classes 0..{num_classes - 1} have no image in "
                        f"{full.list_file} (e.g. {empty[:5]}); labels must be 0..C-1 with every class listed")
    if cfg.val_list:
        train, val = full, ListDataset(cfg.root, cfg.val_list, imagenet_transform(False, s), key="data.val_list")
    else:  # carve val_per_class images per class from the training list (never more than half a class)
        rng = np.random.RandomState(cfg.seed)
        val_idx = []
        for c in range(num_classes):
            idx = rng.permutation(np.where(full.targets == c)[0])
            val_idx.extend(idx[: min(cfg.val_per_class, len(idx) // 2)].tolist())
        train_idx = np.setdiff1d(np.arange(len(full)), val_idx)
        eval_view = copy.copy(full)  # the same list (parsed and checked once), with the evaluation transform
        eval_view.transform = imagenet_transform(False, s)
        train, val = Subset(full, train_idx.tolist()), Subset(eval_view, sorted(val_idx))
        train.targets = full.targets[train_idx]
    counts = np.bincount(np.asarray(train.targets), minlength=num_classes).tolist()
    test = ListDataset(cfg.root, test_list, imagenet_transform(False, s), key="data.test_list")
    for key, ds in (("data.val_list", val if cfg.val_list else None), ("data.test_list", test)):
        if ds is not None and int(ds.targets.max()) >= num_classes:
            raise DataError(f"{key}: {ds.list_file} has label {int(ds.targets.max())}, but the training list has "
                            f"classes 0..{num_classes - 1} only; the lists must share one label set")
    return DatasetBundle(train, val, test, num_classes, counts, [str(c) for c in range(num_classes)])


_BUILDERS: dict[str, Callable[[DataConfig], DatasetBundle]] = {
    "synthetic": _synthetic,
    "cifar10_lt": lambda c: _cifar(c, 10),
    "cifar100_lt": lambda c: _cifar(c, 100),
}
TXT_LISTS: dict[str, tuple[str, str, str]] = {  # data sets read from "relative/path label" lists: default lists
    "imagenet_lt": ("ImageNet_LT_train.txt", "ImageNet_LT_val.txt", "ImageNet_LT_test.txt"),
    "places_lt": ("Places_LT_train.txt", "Places_LT_val.txt", "Places_LT_test.txt"),
    "inat2018": ("iNaturalist18_train.txt", "", "iNaturalist18_val.txt"),
}
_BUILDERS.update({name: (lambda c, lists=lists: _txt_list(c, lists)) for name, lists in TXT_LISTS.items()})


def list_datasets() -> list[str]:
    return sorted(_BUILDERS)


class WithheldSplit:
    """A split that must not be read (the test split of a tuning run): any access to its images, labels or
    length raises DataError. Only its evaluation `transform` (a function, not data) stays readable."""

    def __init__(self, name: str, why: str, transform: Any = None):
        self._name, self._why, self.transform = name, why, transform

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise DataError(f"the {self._name} split is withheld from this run ({self._why})")

    __len__ = __getitem__ = __iter__ = _refuse

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        self._refuse()


def withhold_test(bundle: DatasetBundle, why: str) -> DatasetBundle:
    """A shallow copy of `bundle` whose test split raises on any read (`WithheldSplit`); the cached bundle is
    left as it was."""
    import copy

    out = copy.copy(bundle)
    out.test = WithheldSplit("test", why, getattr(bundle.test, "transform", None))
    return out


def build_dataset(cfg: DataConfig) -> DatasetBundle:
    """Build the train / val / test bundle named by `cfg.name` (see `list_datasets()`)."""
    if cfg.name not in _BUILDERS:
        raise ConfigError(f"data.name={cfg.name!r} is unknown; choose one of {', '.join(list_datasets())}")
    lists = [k for k in ("train_list", "val_list", "test_list") if getattr(cfg, k)]
    if lists and cfg.name not in TXT_LISTS:
        raise ConfigError(f"data.{lists[0]}={getattr(cfg, lists[0])!r}: data.name={cfg.name} does not read image "
                          f"lists (only {', '.join(TXT_LISTS)} do); remove it, or choose one of those data sets")
    bundle = _BUILDERS[cfg.name](cfg)
    bundle.splits = class_splits(bundle.class_counts, cfg.many, cfg.few, cfg.split_convention)
    return bundle
