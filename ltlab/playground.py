"""A 2-parameter loss with a sharp and a flat minimum, for teaching SGD vs SAM vs RSAM vs GNM.

The real `ltlab.optim` optimizers run on it (same code as on a ViT), so the trajectories show what
each update rule does: SAM's ascent and GNM's Gaussian smoothing both push towards the wide basin.

>>> traj = run_optimizer("gnm", lr=0.05, rho=0.5, steps=50)
>>> traj.path.shape
(51, 2)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .optim import create_optimizer

SHARP = (-1.0, 0.6, 0.3, 1.1)  # centre x, centre y, width, depth: narrow and slightly deeper
FLAT = (0.9, -0.5, 1.0, 1.0)  # wide and slightly shallower


def two_minima_loss(w: torch.Tensor) -> torch.Tensor:
    """L(w) = 1.2 - sum_k depth_k exp(-|w - c_k|^2 / (2 width_k^2)) + 0.02 |w|^2, for w of shape (..., 2)."""
    loss = 1.2 + 0.02 * (w**2).sum(-1)
    for cx, cy, width, depth in (SHARP, FLAT):
        d2 = (w[..., 0] - cx) ** 2 + (w[..., 1] - cy) ** 2
        loss = loss - depth * torch.exp(-d2 / (2 * width**2))
    return loss


def loss_grid(extent: float = 2.5, points: int = 121) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, Y, Z) of the playground loss on a square grid, for contour plots."""
    lin = torch.linspace(-extent, extent, points, dtype=torch.float64)
    X, Y = torch.meshgrid(lin, lin, indexing="xy")
    Z = two_minima_loss(torch.stack([X, Y], -1))
    return X.numpy(), Y.numpy(), Z.numpy()


@dataclass
class Trajectory:
    optimizer: str
    path: np.ndarray  # (steps + 1, 2)
    loss: np.ndarray  # (steps + 1,)

    @property
    def basin(self) -> str:
        """Which minimum the run ended nearer to."""
        end = self.path[-1]
        d_sharp = np.hypot(end[0] - SHARP[0], end[1] - SHARP[1])
        d_flat = np.hypot(end[0] - FLAT[0], end[1] - FLAT[1])
        return "sharp" if d_sharp < d_flat else "flat"


def run_optimizer(name: str, start: tuple[float, float] = (-0.55, 0.95), lr: float = 0.05, rho: float | None = None,
                  sigma: float | None = None, steps: int = 100, seed: int = 0, momentum: float = 0.0) -> Trajectory:
    """Run one ltlab optimizer on the playground loss from `start`; rho/sigma None = method defaults."""
    w = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    kw = {}
    if rho is not None:
        kw["rho"] = rho
    if sigma is not None:
        kw["sigma"] = sigma
    opt = create_optimizer(name, [w], lr=lr, momentum=momentum, seed=seed, **kw)

    def closure():
        opt.zero_grad()
        loss = two_minima_loss(w)
        loss.backward()
        return loss

    path, losses = [w.detach().numpy().copy()], [float(two_minima_loss(w.detach()))]
    for _ in range(steps):
        opt.step(closure)
        path.append(w.detach().numpy().copy())
        losses.append(float(two_minima_loss(w.detach())))
    return Trajectory(name, np.array(path), np.array(losses))
