"""Image transforms: tensor-level for the embedded default, timm/torchvision for benchmarks."""
from __future__ import annotations

from typing import Callable

import torch

SYNTHETIC_MEAN = (0.5, 0.5, 0.5)
SYNTHETIC_STD = (0.5, 0.5, 0.5)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


class TensorAugment:
    """uint8 (3, H, W) -> normalised float; training adds a random crop (zero pad) and a flip.

    Uses the global torch RNG, so resuming with the saved RNG state repeats the same crops.
    """

    def __init__(self, train: bool, pad: int = 2, mean=SYNTHETIC_MEAN, std=SYNTHETIC_STD):
        self.train, self.pad = train, pad
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x = img.float().div_(255)
        if self.train:
            h, w = x.shape[-2:]
            if self.pad:
                x = torch.nn.functional.pad(x, (self.pad,) * 4)
                i, j = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
                x = x[:, i : i + h, j : j + w]
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
        return (x - self.mean) / self.std


class Cutout:
    """One square hole of `size` px set to zero (DeVries & Taylor 2017), as in GNM-PT's CIFAR chain."""

    def __init__(self, size: int = 16):
        self.size = size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        cy, cx = torch.randint(0, h, ()).item(), torch.randint(0, w, ()).item()
        y0, y1 = max(0, cy - self.size // 2), min(h, cy + self.size // 2)
        x0, x1 = max(0, cx - self.size // 2), min(w, cx + self.size // 2)
        x = x.clone()
        x[..., y0:y1, x0:x1] = 0
        return x


def cifar_transform(train: bool, image_size: int = 224, augment: bool = True) -> Callable:
    """GNM-PT's CIFAR chain: crop 32 (pad 4), flip, AutoAugment (CIFAR-10 policy), Cutout 16, resize, normalise.

    Test: resize to image_size * 256/224, centre crop image_size.
    """
    from torchvision import transforms as T

    norm = [T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
    if train and augment:
        return T.Compose(
            [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
             T.AutoAugment(T.AutoAugmentPolicy.CIFAR10), T.Resize(image_size), *norm, Cutout(16 * image_size // 32)]
        )
    if image_size == 32:
        return T.Compose(norm)
    return T.Compose([T.Resize(int(image_size * 256 / 224)), T.CenterCrop(image_size), *norm])


def imagenet_transform(train: bool, image_size: int = 224, augment: bool = True) -> Callable:
    """timm's transform factory (RandAugment for training), ImageNet mean/std."""
    from timm.data import create_transform

    if train and augment:
        return create_transform(image_size, is_training=True, auto_augment="rand-m9-mstd0.5-inc1")
    return create_transform(image_size, is_training=False)
