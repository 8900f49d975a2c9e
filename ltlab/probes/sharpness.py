"""Sharpness: average-case (Gaussian; GNM's own objective) and worst-case (SAM-style, PGD in a ball).

Both follow Andriushchenko et al. (ICML 2023): sharpness = max/mean loss increase around w,
measured per batch; the standard error is over Gaussian samples (average-case) or batches (worst-case).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..values import check_count, check_positive
from .hvp import as_batches, gather_list, model_device, probe_mode, select_params
from .results import SharpnessResult


def gaussian_sharpness(model: nn.Module, loss_fn: Callable, data: Any, sigma: float = 0.005, samples: int = 20,
                       params: Sequence[str] | None = None, seed: int = 0) -> SharpnessResult:
    """E_e[L(w + e)] - L(w), e ~ N(0, sigma^2 I) over the probed parameters; stderr over samples."""
    check_positive("sigma", sigma)
    samples = check_count("samples", samples)
    named = select_params(model, params)
    ps = [p for _, p in named]
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with probe_mode(model, ps, loss_fn), torch.no_grad():
        batches = as_batches(data, model_device(model))
        base = [p.detach().clone() for p in ps]
        l0 = batches.mean_loss(model, loss_fn)
        vals = []
        for _ in range(samples):
            for p, w in zip(ps, base):
                p.copy_(w + sigma * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.device, p.dtype))
            vals.append(batches.mean_loss(model, loss_fn) - l0)
    vals = np.array(vals)
    se = vals.std(ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else float("nan")
    return SharpnessResult(float(vals.mean()), float(se), vals, l0, time.perf_counter() - t0, "gaussian", sigma)


def worst_case_sharpness(model: nn.Module, loss_fn: Callable, data: Any, rho: float = 0.05, steps: int = 20,
                         norm: str = "l2", adaptive: bool = False, params: Sequence[str] | None = None,
                         seed: int = 0) -> SharpnessResult:
    """max_{||d|| <= rho} L(w + d) - L(w) per batch by projected gradient ascent; mean and stderr over batches.

    The value is per batch, so it depends on how the probe set is batched: under torch.distributed it is
    the mean over every rank's batches (each rank seeds its own start points), not one process's number.
    adaptive=True measures in ASAM's scale-invariant ball: d = |w| * u with ||u|| <= rho.
    norm="l2" takes normalised-gradient steps, "linf" sign steps; step size 2.5 rho / steps (Madry et al.).
    """
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm={norm!r}: use 'l2' or 'linf'")
    if rho < 0:
        raise ValueError(f"rho={rho}: must be >= 0")
    steps = check_count("steps", steps)
    named = select_params(model, params)
    ps = [p for _, p in named]
    g = torch.Generator().manual_seed(seed)
    lr = 2.5 * rho / steps
    t0 = time.perf_counter()
    vals, base_losses = [], []
    with probe_mode(model, ps, loss_fn):
        batches = as_batches(data, model_device(model))
        base = [p.detach().clone() for p in ps]
        scale = [w.abs() if adaptive else torch.ones_like(w) for w in base]
        for x, y in batches:
            with torch.no_grad():
                l0 = float(loss_fn(model(x), y))
            u = [1e-3 * rho * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.device, p.dtype) for p in ps]
            best = l0
            for _ in range(steps):
                with torch.no_grad():
                    for p, w, s, ui in zip(ps, base, scale, u):
                        p.copy_(w + s * ui)
                loss = loss_fn(model(x), y)
                best = max(best, float(loss.detach()))
                grads = torch.autograd.grad(loss, ps, allow_unused=True)
                grads = [torch.zeros_like(p) if gr is None else gr * s for gr, p, s in zip(grads, ps, scale)]
                with torch.no_grad():
                    if norm == "l2":
                        gn = torch.sqrt(sum((gr**2).sum() for gr in grads)) + 1e-12
                        u = [ui + lr * gr / gn for ui, gr in zip(u, grads)]
                        un = torch.sqrt(sum((ui**2).sum() for ui in u))
                        u = [ui * min(1.0, rho / float(un + 1e-12)) for ui in u]
                    else:
                        u = [(ui + lr * gr.sign()).clamp(-rho, rho) for ui, gr in zip(u, grads)]
            with torch.no_grad():
                for p, w, s, ui in zip(ps, base, scale, u):
                    p.copy_(w + s * ui)
                best = max(best, float(loss_fn(model(x), y)))
                for p, w in zip(ps, base):
                    p.copy_(w)
            vals.append(best - l0)
            base_losses.append(l0)
    vals, base_losses = np.array(gather_list(vals)), gather_list(base_losses)  # every rank's batches
    se = vals.std(ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else 0.0
    return SharpnessResult(float(vals.mean()), float(se), vals, float(np.mean(base_losses)),
                           time.perf_counter() - t0, f"worst-case-{norm}{'-adaptive' if adaptive else ''}", rho)
