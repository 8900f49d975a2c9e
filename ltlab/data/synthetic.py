"""The embedded default: procedurally drawn shapes on textured backgrounds, generated offline.

Every image shows one shape (8 kinds) in one hue (8 hues) on a background texture (6 kinds), with
random position, size, rotation, colour jitter and pixel noise. A *task* is a list of classes, each a
(shape, hue, texture) triple drawn from the 384 combinations with a fixed seed:

- ``source`` (what ltlab's bundled backbone is pretrained on): 64 classes = (shape, hue) on the [CLS]
  token, for which texture is a nuisance; the patch tokens are also trained to tell the texture
  (``ltlab.train.pretrain``);
- ``target`` (what prompt tuning learns, long-tailed): ``num_classes`` triples, so telling some
  classes apart needs the texture, which the [CLS] summary carries only partly and the patch tokens carry plainly.

Everything is a pure function of the seed: the same seed gives bit-identical images.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

SHAPES = ("circle", "square", "triangle", "diamond", "ring", "cross", "bar", "half-disc")
HUES = tuple(f"hue{i}" for i in range(8))
TEXTURES = ("plain", "hstripes", "vstripes", "diagonal", "checker", "dots")


def target_classes(num_classes: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """`num_classes` distinct (shape, hue, texture) triples, chosen by a seeded permutation."""
    combos = [(s, h, t) for s in range(len(SHAPES)) for h in range(len(HUES)) for t in range(len(TEXTURES))]
    if not 1 <= num_classes <= len(combos):
        raise ValueError(f"num_classes={num_classes}: the synthetic task has 1..{len(combos)} classes")
    order = np.random.RandomState(seed + 7919).permutation(len(combos))
    return [combos[i] for i in order[:num_classes]]


def class_name(triple: tuple[int, int, int]) -> str:
    s, h, t = triple
    return f"{SHAPES[s]}-{HUES[h]}-{TEXTURES[t]}"


def _shape_mask(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Mask of shape `kind` in the rotated, scaled coordinates (u, v)."""
    r = torch.sqrt(u * u + v * v)
    if kind == 0:
        return r < 1.0
    if kind == 1:
        return torch.maximum(u.abs(), v.abs()) < 0.8
    if kind == 2:
        return (v > -0.6) & (v < 0.9) & (u.abs() < (0.9 - v) * 0.65)
    if kind == 3:
        return u.abs() + v.abs() < 1.0
    if kind == 4:
        return (r > 0.55) & (r < 1.0)
    if kind == 5:
        return ((u.abs() < 0.3) & (v.abs() < 1.0)) | ((v.abs() < 0.3) & (u.abs() < 1.0))
    if kind == 6:
        return (u.abs() < 1.0) & (v.abs() < 0.35)
    return (r < 1.0) & (u > 0)


def _texture(kind: int, xx: torch.Tensor, yy: torch.Tensor, freq: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """(N, H, W) texture pattern `kind` in [-1, 1]."""
    f = freq[:, None, None] * math.pi
    p = phase[:, None, None]
    if kind == 0:
        return torch.zeros_like(f * xx)
    if kind == 1:
        return torch.sin(f * yy + p)
    if kind == 2:
        return torch.sin(f * xx + p)
    if kind == 3:
        return torch.sin(f * (xx + yy) / math.sqrt(2) + p)
    if kind == 4:
        return torch.sign(torch.sin(f * xx + p) * torch.sin(f * yy + p))
    return ((torch.cos(f * xx + p) * torch.cos(f * yy + p)) > 0.5).float() * 2 - 1


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorised HSV -> RGB, inputs (N,) in [0, 1], output (N, 3)."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def render(
    attributes: Sequence[tuple[int, int, int]], image_size: int = 32, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one uint8 image (3, S, S) per (shape, hue, texture) triple, with random nuisances."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    a = torch.as_tensor(np.asarray(attributes, dtype=np.int64).reshape(-1, 3))
    n = a.shape[0]

    def unif(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=g)

    lin = torch.linspace(-1, 1, image_size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    cx, cy, radius, theta = unif(-0.3, 0.3), unif(-0.3, 0.3), unif(0.4, 0.65), unif(0, 2 * math.pi)
    dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u = (dx * c + dy * s) / radius[:, None, None]
    v = (-dx * s + dy * c) / radius[:, None, None]
    mask = torch.zeros(n, image_size, image_size)
    for k in a[:, 0].unique().tolist():  # each image draws only its own shape (same numbers as drawing all)
        sel = a[:, 0] == k
        mask[sel] = _shape_mask(k, u[sel], v[sel]).float()

    hue = (a[:, 1].float() + unif(-0.2, 0.2)) / len(HUES)
    colour = _hsv_to_rgb(hue % 1.0, unif(0.55, 1.0), unif(0.65, 1.0))  # (N, 3)
    freq, phase = unif(2.5, 4.0), unif(0, 2 * math.pi)
    tex = torch.zeros(n, image_size, image_size)
    for k in a[:, 2].unique().tolist():
        sel = a[:, 2] == k
        tex[sel] = _texture(k, xx[None], yy[None], freq[sel], phase[sel])
    bg_level = unif(0.25, 0.5)[:, None, None, None]
    bg_tint = 0.08 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    background = (bg_level + bg_tint + 0.22 * tex[:, None]).expand(n, 3, image_size, image_size)
    img = background * (1 - mask[:, None]) + colour[:, :, None, None] * mask[:, None]
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def make_split(
    classes: Sequence[tuple[int, int, int]], counts: Sequence[int], image_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels with counts[c] images of class c, deterministic in `seed` (cached per process)."""
    return _make_split(tuple(map(tuple, classes)), tuple(int(n) for n in counts), int(image_size), int(seed))


@functools.lru_cache(maxsize=6)
def _make_split(classes, counts, image_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.cat([torch.full((int(n),), c, dtype=torch.long) for c, n in enumerate(counts)])
    attrs = [classes[int(y)] for y in labels]
    images = render(attrs, image_size, torch.Generator().manual_seed(seed))
    return images, labels


def source_task(n_per_class: int, image_size: int = 32, seed: int = 1, with_texture: bool = False):
    """The pretraining task: 64 balanced (shape, hue) classes, each image on a random texture.

    Returns (images, labels), or (images, labels, textures) with ``with_texture=True`` (the texture index of
    every image, for a dense objective on the patch tokens)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(SHAPES) * len(HUES)).repeat_interleave(n_per_class)
    textures = torch.randint(0, len(TEXTURES), (len(labels),), generator=g)
    attrs = torch.stack([labels // len(HUES), labels % len(HUES), textures], 1).tolist()
    images = render(attrs, image_size, g)
    return (images, labels, textures) if with_texture else (images, labels)
