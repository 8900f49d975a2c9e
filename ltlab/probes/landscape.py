"""Loss landscapes: filter-normalised directions, 1D/2D surfaces, interpolation, trajectory PCA, λ ratio.

Directions are Gaussian and filter-normalised (Li et al. 2018): every row along the last dimension
(a prompt token, a head row) is rescaled to the norm of the matching slice of the weights; 1-D
parameters (biases, norms) are left out by default. Grids with an odd number of points contain 0
exactly, so the centre is the current weights bit for bit.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..values import check_count, check_positive
from .hvp import as_batches, flatten, model_device, probe_mode, select_params
from .results import EigenRatio1D, Surface1D, Surface2D, TrajectoryPCA


def random_direction(params: Sequence[torch.Tensor], generator: torch.Generator | None = None,
                     normalization: str = "filter", ignore_1d: bool = True) -> list[torch.Tensor]:
    """A Gaussian direction shaped like `params`, normalised per filter / layer / not at all."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    out = []
    for p in params:
        d = torch.randn(p.shape, generator=g, dtype=torch.float64).to(device=p.device, dtype=p.dtype)
        w = p.detach()
        if p.dim() <= 1 and ignore_1d:
            d.zero_()
        elif normalization == "filter":
            wn = torch.linalg.vector_norm(w, dim=-1, keepdim=True) if p.dim() > 1 else torch.linalg.vector_norm(w)
            dn = torch.linalg.vector_norm(d, dim=-1, keepdim=True) if p.dim() > 1 else torch.linalg.vector_norm(d)
            d = d * wn / (dn + 1e-10)
        elif normalization == "layer":
            d = d * torch.linalg.vector_norm(w) / (torch.linalg.vector_norm(d) + 1e-10)
        elif normalization != "none":
            raise ValueError(f"normalization={normalization!r}: use 'filter', 'layer' or 'none'")
        out.append(d)
    return out


def centred_grid(span: float, steps: int) -> np.ndarray:
    """`steps` points on [-span, span]; with odd `steps` the middle one is exactly 0."""
    steps = check_count("steps", steps, 2)
    check_positive("span", span)
    half = (steps - 1) / 2
    return span * (np.arange(steps) - half) / half


def _set(params, base, dirs, coefs) -> None:
    with torch.no_grad():
        for i, p in enumerate(params):
            v = base[i].clone()
            for c, d in zip(coefs, dirs):
                if c != 0:
                    v.add_(d[i], alpha=float(c))
            p.copy_(v)


def surface_2d(model: nn.Module, loss_fn: Callable, data: Any, directions: Sequence[Sequence[torch.Tensor]] | None = None,
               span: float = 1.0, steps: int = 41, normalization: str = "filter", params: Sequence[str] | None = None,
               seed: int = 0, progress: bool = True, label: str = "") -> Surface2D:
    """Loss and accuracy on the plane w + a d1 + b d2, a, b in [-span, span]; arrays (len(y), len(x))."""
    named = select_params(model, params)
    ps = [p for _, p in named]
    g = torch.Generator().manual_seed(seed)
    dirs = directions or [random_direction(ps, g, normalization), random_direction(ps, g, normalization)]
    xs = ys = centred_grid(span, steps)
    loss = np.zeros((len(ys), len(xs)))
    acc = np.zeros_like(loss)
    t0 = time.perf_counter()
    with probe_mode(model, ps, loss_fn), torch.no_grad():
        batches = as_batches(data, model_device(model))
        base = [p.detach().clone() for p in ps]
        bar = tqdm(total=loss.size, desc="surface", disable=not progress, leave=False)
        for i, b in enumerate(ys):
            for j, a in enumerate(xs):
                _set(ps, base, dirs, (a, b))
                loss[i, j], acc[i, j] = batches.mean_loss_acc(model, loss_fn)
                bar.update()
        bar.close()
    return Surface2D(xs, ys, loss, acc, time.perf_counter() - t0, label)


def surface_1d(model: nn.Module, loss_fn: Callable, data: Any, direction: Sequence[torch.Tensor] | None = None,
               span: float = 1.0, steps: int = 41, normalization: str = "filter", params: Sequence[str] | None = None,
               seed: int = 0, label: str = "") -> Surface1D:
    """Loss and accuracy along w + a d, a in [-span, span]."""
    named = select_params(model, params)
    ps = [p for _, p in named]
    d = direction or random_direction(ps, torch.Generator().manual_seed(seed), normalization)
    xs = centred_grid(span, steps)
    loss, acc = np.zeros(len(xs)), np.zeros(len(xs))
    t0 = time.perf_counter()
    with probe_mode(model, ps, loss_fn), torch.no_grad():
        batches = as_batches(data, model_device(model))
        base = [p.detach().clone() for p in ps]
        for j, a in enumerate(xs):
            _set(ps, base, [d], (a,))
            loss[j], acc[j] = batches.mean_loss_acc(model, loss_fn)
    return Surface1D(xs, loss, acc, time.perf_counter() - t0, label)


def interpolate(model: nn.Module, loss_fn: Callable, data: Any, state_a: Mapping[str, torch.Tensor],
                state_b: Mapping[str, torch.Tensor], steps: int = 21, margin: float = 0.25,
                label: str = "") -> Surface1D:
    """Loss along (1 - t) w_a + t w_b for t in [-margin, 1 + margin] over the tensors both states hold."""
    steps = check_count("steps", steps, 2)
    names = [n for n in state_a if n in state_b]
    named = dict(model.named_parameters())
    ps = [named[n] for n in names]
    a = [state_a[n].to(p.device, p.dtype) for n, p in zip(names, ps)]
    b = [state_b[n].to(p.device, p.dtype) for n, p in zip(names, ps)]
    ts = np.linspace(-margin, 1 + margin, steps)
    loss, acc = np.zeros(steps), np.zeros(steps)
    t0 = time.perf_counter()
    with probe_mode(model, ps, loss_fn), torch.no_grad():
        batches = as_batches(data, model_device(model))
        for j, t in enumerate(ts):
            _set(ps, a, [[bb - aa for aa, bb in zip(a, b)]], (t,))
            loss[j], acc[j] = batches.mean_loss_acc(model, loss_fn)
    return Surface1D(ts, loss, acc, time.perf_counter() - t0, label)


def trajectory_pca(checkpoints: Sequence[Mapping[str, torch.Tensor]], final: Mapping[str, torch.Tensor] | None = None
                   ) -> TrajectoryPCA:
    """PCA of the training trajectory (w_i - w_final), as in Li et al. (2018); top-2 directions."""
    if len(checkpoints) + (final is not None) < 2:
        raise ValueError(f"trajectory_pca needs at least two points of the trajectory; got {len(checkpoints)} "
                         f"checkpoint(s){' and the final state' if final is not None else ''}")
    final = final if final is not None else checkpoints[-1]
    names = list(final)
    W = torch.stack([flatten([c[n].double().cpu() for n in names]) for c in checkpoints])
    D = W - flatten([final[n].double().cpu() for n in names])
    _, s, vt = torch.linalg.svd(D, full_matrices=False)
    k = min(2, vt.shape[0])
    dirs = vt[:k]
    if k < 2:
        dirs = torch.cat([dirs, torch.zeros(2 - k, dirs.shape[1], dtype=dirs.dtype)])
    var = (s**2 / max(float((s**2).sum()), 1e-30)).numpy()
    ev = np.zeros(2)
    ev[:k] = var[:k]
    return TrajectoryPCA((D @ dirs.T).numpy(), ev, dirs.numpy())


def pca_directions(pca: TrajectoryPCA, like: Mapping[str, torch.Tensor]) -> list[list[torch.Tensor]]:
    """The PCA directions reshaped like the state's tensors (to pass to surface_2d)."""
    out = []
    for row in pca.directions:
        vec, i, parts = torch.as_tensor(row), 0, []
        for t in like.values():
            parts.append(vec[i : i + t.numel()].view_as(t).to(t.dtype))
            i += t.numel()
        out.append(parts)
    return out


def hessian_ratio_along(model: nn.Module, loss_fn: Callable, data: Any, direction: Sequence[torch.Tensor] | None = None,
                        span: float = 1.0, steps: int = 11, tol: float = 1e-2, params: Sequence[str] | None = None,
                        seed: int = 0, max_iter: int = 60, label: str = "") -> EigenRatio1D:
    """lambda_min / lambda_max of the Hessian at each point of a 1-D slice (Lanczos, both ends)."""
    from .hessian import top_eigenvalues

    named = select_params(model, params)
    ps = [p for _, p in named]
    d = direction or random_direction(ps, torch.Generator().manual_seed(seed))
    xs = centred_grid(span, steps)
    lmax, lmin = np.zeros(len(xs)), np.zeros(len(xs))
    hvps = 0
    t0 = time.perf_counter()
    with probe_mode(model, ps, loss_fn):
        base = [p.detach().clone() for p in ps]
        for j, a in enumerate(xs):
            _set(ps, base, [d], (a,))
            r = top_eigenvalues(model, loss_fn, data, k=1, which="both", tol=tol, params=[n for n, _ in named],
                                seed=seed, max_iter=max_iter)
            lmax[j], lmin[j] = r.eigenvalues[0], r.eigenvalues[1]
            hvps += r.hvps
    return EigenRatio1D(xs, lmax, lmin, lmin / np.where(lmax == 0, np.nan, lmax), hvps, time.perf_counter() - t0, label)
