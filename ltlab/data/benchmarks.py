"""Real benchmarks: CIFAR-10/100-LT (torchvision's python files) and txt-list data sets.

Nothing downloads unless `download=True`; missing files are a DataError that says where they go.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError

CIFAR_DIRS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}


class ArrayImageDataset(Dataset):
    """HWC uint8 images in memory (CIFAR) + labels, PIL transform applied per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable | None = None):
        self.images, self.targets, self.transform = images, np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        x = self.transform(img) if self.transform else torch.from_numpy(self.images[i]).permute(2, 0, 1)
        return x, int(self.targets[i])


def read_cifar(root: str | Path, num_classes: int, download: bool = False):
    """(train_images, train_labels, test_images, test_labels, class_names) from torchvision's files."""
    root = Path(root)
    folder = root / CIFAR_DIRS[num_classes]
    if not folder.exists() and download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if num_classes == 10 else torchvision.datasets.CIFAR100
        try:
            cls(str(root), train=True, download=True)
            cls(str(root), train=False, download=True)
        except Exception as e:  # no network, a proxy, a full disk
            raise DataError(
                f"data.download=true could not fetch CIFAR-{num_classes} ({type(e).__name__}). Download "
                f"cifar-{num_classes}-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html on a machine with "
                f"network access and unpack it into {root}/ (so that {folder}/ exists)") from None
    if not folder.exists():
        raise DataError(
            f"CIFAR-{num_classes} not found: expected torchvision's python files in {folder}/ "
            f"(data.root={str(root)!r}). Put them there, or pass data.download=true to fetch them."
        )

    def load(name: str) -> dict:
        path = folder / name
        if not path.exists():
            raise DataError(f"{path} is missing: the CIFAR-{num_classes} folder is incomplete; re-download it")
        try:
            with open(path, "rb") as f:
                data = pickle.load(f, encoding="latin1")
        except Exception as e:  # garbage, truncated, another format
            raise DataError(f"{path} is not a CIFAR python pickle ({type(e).__name__}); re-download CIFAR-{num_classes} "
                            f"into {root}/") from None
        want = {"data", "labels" if num_classes == 10 else "fine_labels"} if "batch" in name or name in (
            "train", "test") else set()
        if not isinstance(data, dict) or not want <= set(data):
            raise DataError(f"{path} does not hold CIFAR-{num_classes} data (keys {sorted(want)} missing); is data.root "
                            f"pointing at the other CIFAR? re-download CIFAR-{num_classes} into {root}/")
        return data

    if num_classes == 10:
        parts = [load(f"data_batch_{i}") for i in range(1, 6)]
        train_x = np.concatenate([p["data"] for p in parts])
        train_y = np.concatenate([p["labels"] for p in parts])
        test = load("test_batch")
        test_x, test_y = test["data"], np.asarray(test["labels"])
        names = load("batches.meta")["label_names"]
    else:
        train, test = load("train"), load("test")
        train_x, train_y = train["data"], np.asarray(train["fine_labels"])
        test_x, test_y = test["data"], np.asarray(test["fine_labels"])
        names = load("meta")["fine_label_names"]

    def hwc(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))

    return hwc(train_x), np.asarray(train_y), hwc(test_x), np.asarray(test_y), list(names)


class ListDataset(Dataset):
    """Images listed in a txt file, one "relative/path label" per line (ImageNet-LT, Places-LT, iNat 2018)."""

    def __init__(self, root: str | Path, list_file: str | Path, transform: Callable | None = None,
                 key: str = "data.train_list / data.test_list"):
        self.root, self.transform = Path(root), transform
        list_file = Path(list_file)
        if not list_file.is_absolute() and not list_file.exists():
            list_file = self.root / list_file
        if not list_file.exists():
            raise DataError(
                f"{key}: the image list {list_file} does not exist (data.root={str(self.root)!r}); put the standard "
                f"txt list there (one 'relative/path label' per line) or set {key} to its path"
            )
        self.paths, targets = [], []
        for n, line in enumerate(list_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise DataError(f"{list_file}:{n}: expected 'relative/path label' with a class index >= 0, got {line!r}")
            self.paths.append(parts[0])
            targets.append(int(parts[1]))
        self.targets = np.asarray(targets, dtype=np.int64)
        self.list_file = list_file
        if not self.paths:
            raise DataError(f"{key}: {list_file} lists no images; it needs one 'relative/path label' per line")
        if not (self.root / self.paths[0]).exists():
            raise DataError(f"image {self.root / self.paths[0]} listed in {list_file} does not exist: data.root="
                            f"{str(self.root)!r} must be the folder the list's paths are relative to")
        missing = [p for p in self.paths if not (self.root / p).is_file()]  # one stat per image, before training
        if missing:
            raise DataError(f"{len(missing)} of the {len(self.paths)} images listed in {list_file} are missing under "
                            f"{self.root}, e.g. {', '.join(missing[:3])}; restore them or remove their lines")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.root / self.paths[i]) as im:
                img = im.convert("RGB")
        except OSError as e:  # a truncated or non-image file (PIL's UnidentifiedImageError is an OSError)
            raise DataError(f"{self.root / self.paths[i]} (listed in {self.list_file}) cannot be read as an image "
                            f"({type(e).__name__}); replace the file or remove its line") from None
        x = self.transform(img) if self.transform else torch.from_numpy(np.asarray(img)).permute(2, 0, 1)
        return x, int(self.targets[i])
