"""Hessian spectra over the trainable parameters: Lanczos / power top-k, Hutchinson and Hutch++ trace, SLQ density.

>>> import torch
>>> net = torch.nn.Linear(3, 2)
>>> r = top_eigenvalues(net, torch.nn.CrossEntropyLoss(), (torch.randn(8, 3), torch.randint(0, 2, (8,))))
>>> bool(r.converged and r.eigenvalues[0] >= 0)
True
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..values import check_count
from .hvp import HessianOperator, hessian_operator
from .results import EigenResult, SpectralDensity, TraceResult

MatVec = Callable[[torch.Tensor], torch.Tensor]


def lanczos(matvec: MatVec, v0: torch.Tensor, steps: int, stop: Callable | None = None):
    """Lanczos with full re-orthogonalisation (twice). Returns (alpha, beta, Q) with Q (dim, m).

    `stop(alpha, beta)` is asked after each step and may end the iteration early.
    """
    dim = v0.numel()
    steps = min(steps, dim)
    q = v0 / torch.linalg.vector_norm(v0)
    Q = torch.zeros(dim, steps, dtype=v0.dtype, device=v0.device)
    alpha, beta = [], []
    for j in range(steps):
        Q[:, j] = q
        w = matvec(q)
        a = torch.dot(q, w)
        w = w - a * q - (beta[-1] * Q[:, j - 1] if j > 0 else 0)
        for _ in range(2):
            w = w - Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)
        b = torch.linalg.vector_norm(w)
        alpha.append(float(a))
        beta.append(float(b))
        if (stop is not None and stop(alpha, beta)) or b <= 1e-10 * max(1.0, abs(float(a))) or j == steps - 1:
            break
        q = w / b
    m = len(alpha)
    return np.array(alpha), np.array(beta), Q[:, :m]


def _tridiag_eig(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = len(alpha)
    T = np.diag(alpha) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
    return np.linalg.eigh(T)


def _pick(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    order = np.argsort(theta)
    if which == "largest":
        return order[::-1][:k]
    if which == "smallest":
        return order[:k]
    return np.concatenate([order[::-1][:k], order[:k]])


def _ritz_converged(alpha, beta, k, which, tol) -> bool:
    if len(alpha) < k + 1:
        return False
    theta, s = _tridiag_eig(np.asarray(alpha), np.asarray(beta))
    idx = _pick(theta, k, which)
    res = np.abs(beta[-1] * s[-1, idx]) / np.maximum(np.abs(theta[idx]), 1e-30)
    return bool(np.all(res < tol))


def _power(op: HessianOperator, k: int, tol: float, max_iter: int, g: torch.Generator, which: str):
    """PyHessian-style power iteration with deflation (relative change < tol), for comparison."""
    vals, vecs, history = [], [], []
    shift = 0.0
    if which == "smallest":  # power iteration on (H - lambda_max I) finds the most negative end
        lam, _, _ = _power(op, 1, tol, max_iter, g, "largest")
        shift = lam[0]
    for _ in range(k):
        v = torch.randn(op.dim, generator=g, dtype=torch.float64).to(op.device)
        v /= v.norm()
        lam = None
        for _ in range(max_iter):
            for u in vecs:
                v = v - torch.dot(u, v) * u
            v /= v.norm()
            hv = op.matvec(v) - shift * v
            new = float(torch.dot(v, hv))
            history.append([op.hvps, new + shift])
            v_next = hv / hv.norm()
            if lam is not None and abs(new - lam) / max(abs(lam), 1e-30) < tol:
                lam = new
                v = v_next
                break
            lam, v = new, v_next
        vals.append(lam + shift)
        vecs.append(v)
    return np.array(vals), torch.stack(vecs, 1), history


def top_eigenvalues(model: nn.Module, loss_fn: Callable, data: Any, k: int = 1, method: str = "lanczos",
                    tol: float = 1e-3, params: Sequence[str] | None = None, which: str = "largest",
                    max_iter: int = 100, seed: int = 0) -> EigenResult:
    """Top-k Hessian eigenvalues of the loss over the probed parameters (default: the trainable ones).

    method="lanczos": full re-orthogonalisation; stops when every wanted Ritz pair has relative
    residual |beta_m s_m| / |theta| < tol. method="power": deflated power iteration (PyHessian's rule:
    stop when the eigenvalue's relative change < tol, or at max_iter HVPs per eigenvalue).
    Either way `converged` is True only when every returned pair has relative residual
    ||Hv - lambda v|| / |lambda| < tol; a run that stops at its cap says converged=False.
    which: "largest", "smallest" (most negative), or "both" (k of each).
    """
    if method not in ("lanczos", "power"):
        raise ValueError(f"method={method!r}: use 'lanczos' or 'power'")
    k = check_count("k", k)
    if which not in ("largest", "smallest", "both"):
        raise ValueError(f"which={which!r}: use 'largest', 'smallest' or 'both'")
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with hessian_operator(model, loss_fn, data, params) as op:
        if method == "power":
            whiches = ["largest", "smallest"] if which == "both" else [which]
            parts = [_power(op, k, tol, max_iter, g, w) for w in whiches]
            vals = np.concatenate([p[0] for p in parts])
            vecs = torch.cat([p[1] for p in parts], 1)
            history = sum((p[2] for p in parts), [])
            hv = torch.stack([op.matvec(vecs[:, i]) for i in range(vecs.shape[1])], 1)
            op.hvps -= vecs.shape[1]  # residual check is bookkeeping, not part of the method's cost
            res = (torch.linalg.vector_norm(hv - vecs * torch.as_tensor(vals, device=vecs.device), dim=0).cpu().numpy()
                   / np.maximum(np.abs(vals), 1e-30))
            # judged like Lanczos: the Ritz residual ||Hv - lambda v|| / |lambda| against tol, never the stopping rule
            converged = bool(np.all(res < tol))
        else:
            v0 = torch.randn(op.dim, generator=g, dtype=torch.float64).to(op.device)
            history: list = []

            def stop(alpha, beta):
                history.append([len(alpha), float(_tridiag_eig(np.asarray(alpha), np.asarray(beta))[0].max())])
                return _ritz_converged(alpha, beta, k, which, tol)

            alpha, beta, Q = lanczos(op.matvec, v0, max(max_iter, 2 * k + 2), stop)
            theta, s = _tridiag_eig(alpha, beta)
            idx = _pick(theta, k, which)
            vals = theta[idx]
            vecs = Q @ torch.as_tensor(s[:, idx], dtype=Q.dtype, device=Q.device)
            res = np.abs(beta[-1] * s[-1, idx]) / np.maximum(np.abs(vals), 1e-30)
            if len(alpha) == op.dim:  # the whole space: Ritz values are exact
                res = np.zeros_like(res)
            converged = bool(np.all(res < tol))
    return EigenResult(np.asarray(vals, dtype=np.float64), vecs.cpu().numpy(), np.asarray(res), converged,
                       op.hvps, time.perf_counter() - t0, method, which, history)


def _rademacher(dim: int, n: int, g: torch.Generator, device) -> torch.Tensor:
    return (torch.randint(0, 2, (dim, n), generator=g).double() * 2 - 1).to(device)


def xtrace(apply: Callable[[torch.Tensor], torch.Tensor], dim: int, num_hvps: int, g: torch.Generator,
           device: torch.device | str = "cpu") -> tuple[float, float, np.ndarray]:
    """XTrace (Epperly, Tropp and Webber, SIMAX 2024, Algorithm 1.2): (estimate, stderr, per-vector estimates).

    m = num_hvps // 2 Rademacher vectors w_i; Y = A W and Q = orth(Y), Z = A Q (2m products in all). For each
    i, Q_i = orth(A W without column i), a subspace of span(Q): Q_i = Q U_i with U_i = orth(R without column
    i), Y = Q R, so A Q_i = Z U_i costs no product. The i-th estimate is
    tr(Q_i^T A Q_i) + w_i^T (I - Q_i Q_i^T) A (I - Q_i Q_i^T) w_i, which is unbiased, uses every vector both
    for the low-rank part and for the residual, and holds for indefinite A; XTrace is the mean of the m
    estimates, its standard error their standard deviation / sqrt(m) (the paper's error estimate).
    """
    m = min(num_hvps // 2, dim)
    if m < 2:
        raise ValueError(f"num_hvps={num_hvps}: XTrace needs at least 4 products")
    W = _rademacher(dim, m, g, device)
    Y = apply(W)
    Q, R = torch.linalg.qr(Y)
    Z = apply(Q)
    H = Q.T @ Z
    QtW = Q.T @ W
    ests = np.zeros(m)
    for i in range(m):
        keep = [j for j in range(m) if j != i]
        U, _ = torch.linalg.qr(R[:, keep])  # (m, m-1): Q_i = Q U
        c = U.T @ QtW[:, i]  # Q_i^T w_i
        r = W[:, i] - Q @ (U @ c)  # (I - Q_i Q_i^T) w_i
        Ar = Y[:, i] - Z @ (U @ c)  # A r, from products already made
        ests[i] = float(torch.trace(U.T @ H @ U)) + float(r @ Ar)
    return float(ests.mean()), float(ests.std(ddof=1) / np.sqrt(m)), ests


def hessian_trace(model: nn.Module, loss_fn: Callable, data: Any, method: str = "hutch++", num_hvps: int = 99,
                  params: Sequence[str] | None = None, seed: int = 0, block: int = 1) -> TraceResult:
    """Trace of the Hessian with a standard error.

    hutchinson: mean of z^T H z over Rademacher z (stderr = sample std / sqrt(n)).
    hutch++ (Meyer et al. 2021): a third of the budget sketches Q = orth(H S), a third gives
    tr(Q^T H Q) exactly, a third runs Hutchinson on the deflated (I - QQ^T) H (I - QQ^T); the stderr
    is that of the deflated part, which is far smaller when the spectrum decays.
    xtrace (Epperly, Tropp and Webber 2024; see `xtrace`): half the budget on test vectors, half on
    their range; every vector serves both the low-rank part and the residual (leave-one-out).
    block: HVPs per batched double backward (`HessianOperator.matmat`); the estimate is the same to
    float rounding. 1 (one at a time) is the faster choice on the 2-core CPU (`bench/batched_hvp.py`).
    """
    num_hvps, block = check_count("num_hvps", num_hvps), check_count("block", block)
    if method not in ("hutch++", "hutchinson", "xtrace"):
        raise ValueError(f"method={method!r}: use 'hutch++', 'xtrace' or 'hutchinson'")
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with hessian_operator(model, loss_fn, data, params) as op:
        if method == "xtrace":
            est, se, samples = xtrace(lambda V: op.apply(V, block), op.dim, num_hvps, g, op.device)
        elif method == "hutchinson" or num_hvps < 3:
            Z = _rademacher(op.dim, num_hvps, g, op.device)
            samples = (Z * op.apply(Z, block)).sum(0).cpu().numpy()
            est, se = samples.mean(), samples.std(ddof=1) / np.sqrt(len(samples)) if len(samples) > 1 else np.inf
            method = "hutchinson"
        else:
            m = min(num_hvps // 3, op.dim)
            S = _rademacher(op.dim, m, g, op.device)
            Q, _ = torch.linalg.qr(op.apply(S, block))
            exact = float((Q * op.apply(Q, block)).sum())
            n = max(2, num_hvps - 2 * m)
            G = _rademacher(op.dim, n, g, op.device)
            G = G - Q @ (Q.T @ G)
            samples = (G * op.apply(G, block)).sum(0).cpu().numpy()
            est, se = exact + samples.mean(), samples.std(ddof=1) / np.sqrt(n)
    return TraceResult(float(est), float(se), op.hvps, time.perf_counter() - t0, method, samples)


def spectral_density(model: nn.Module, loss_fn: Callable, data: Any, runs: int = 3, steps: int = 40,
                     grid_points: int = 400, bandwidth: float | None = None, params: Sequence[str] | None = None,
                     seed: int = 0) -> SpectralDensity:
    """Stochastic Lanczos quadrature (Ghorbani et al. 2019), computed with numpy's eigh (no torch.eig).

    Each run: Lanczos from a normalised Rademacher vector; nodes = Ritz values, weights = squared
    first components of the Ritz vectors (they sum to 1). Density: Gaussian kernels averaged over runs.
    """
    runs, steps = check_count("runs", runs), check_count("steps", steps, 2)
    grid_points = check_count("grid_points", grid_points, 2)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with hessian_operator(model, loss_fn, data, params) as op:
        m = min(steps, op.dim)
        nodes = np.full((runs, m), np.nan)
        weights = np.zeros((runs, m))
        for r in range(runs):
            v0 = _rademacher(op.dim, 1, g, op.device)[:, 0]
            alpha, beta, _ = lanczos(op.matvec, v0, m)
            theta, s = _tridiag_eig(alpha, beta)
            nodes[r, : len(theta)] = theta
            weights[r, : len(theta)] = s[0] ** 2
    lo, hi = np.nanmin(nodes), np.nanmax(nodes)
    pad = 0.05 * max(hi - lo, 1e-12)
    grid = np.linspace(lo - pad, hi + pad, grid_points)
    bw = bandwidth if bandwidth is not None else max(hi - lo, 1e-12) / 100
    density = np.zeros_like(grid)
    for r in range(runs):
        ok = ~np.isnan(nodes[r])
        density += (weights[r, ok, None] * np.exp(-((grid[None] - nodes[r, ok, None]) ** 2) / (2 * bw**2))).sum(0)
    density /= runs * np.sqrt(2 * np.pi) * bw
    return SpectralDensity(nodes, weights, grid, density, op.hvps, time.perf_counter() - t0, bw)


def eigenvector_direction(model: nn.Module, result: EigenResult, index: int = 0,
                          params: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Eigenvector `index` of `result` as tensors shaped like the probed parameters (unit norm overall).

    Pass it to `surface_1d(..., direction=d, normalization="none")` for a slice along the top
    eigenvector, the direction of largest curvature.

    >>> r = top_eigenvalues(net, loss_fn, batch, k=1)                       # doctest: +SKIP
    >>> s = surface_1d(net, loss_fn, batch, direction=eigenvector_direction(net, r), normalization="none")  # doctest: +SKIP
    """
    from .hvp import select_params, unflatten

    ps = [p for _, p in select_params(model, params)]
    vec = torch.as_tensor(np.asarray(result.eigenvectors)[:, index])
    return [t.to(p.device, p.dtype) for t, p in zip(unflatten(vec, ps), ps)]
