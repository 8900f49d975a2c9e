"""A 2-parameter loss with a sharp and a flat minimum, for teaching SGD vs SAM vs RSAM vs GNM.

The real `ltlab.optim` optimizers run on it (the same code that tunes prompts on a ViT), so the
trajectories show what each update rule does; nothing here is drawn by hand:

- SAM  minimises the worst loss over a ball of radius rho (``max_over_ball_grid``), one-step
  approximated by the gradient at w + rho g / ||g|| (``sam_worst_point``);
- GNM  minimises the loss averaged over its clamped Gaussian noise (``smoothed_grid``), one
  gradient at a random neighbour per step (``gnm_cloud``);
- RSAM smooths with random noise first, then ascends like SAM (``rsam_ascent``).

What each run reaches is measured (``outcome``: sharp basin, flat basin or stalled, with its
loss), never assumed. ``sweep`` maps outcomes over radii and seeds; notebook 00 uses it to choose
its defaults (``LESSON``).

>>> traj = run_optimizer("gnm", lr=0.05, rho=0.5, steps=50)
>>> traj.path.shape
(51, 2)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .optim import create_optimizer, optimizer_info
from .values import check_count, check_positive

SHARP = (-1.0, 0.6, 0.3, 1.1)  # centre x, centre y, width, depth: narrow and slightly deeper
FLAT = (0.9, -0.5, 1.0, 1.0)  # wide and slightly shallower
START = (-0.55, 0.95)  # next to the sharp basin
GNM_SIGMA = 1 / 3  # GNM-PT's noise std before the clamp (the paper's value)

# The lesson's settings (its preset: the one place that names its methods), chosen with `sweep` (notebook 00
# reruns it): lr 0.05, momentum 0.9, 400 steps from START. At these radii SAM and GNM leave the sharp basin for
# the flat one in every seed swept, while the base (SGD) stays in the sharp one; RSAM with small sigma behaves
# like SAM. Larger SAM radii stall. "neighbourhood" says how each method's neighbourhood is drawn: the ball and
# its worst point, a cloud of random points, or a smoothing cloud and then the ball's ascent point.
LESSON = {"lr": 0.05, "momentum": 0.9, "steps": 400, "base": "sgd",
          "radius": {"sam": 0.3, "rsam": 0.3, "gnm": 0.5}, "sigma": {"rsam": 0.1, "gnm": GNM_SIGMA},
          "neighbourhood": {"sam": "ball", "gnm": "cloud", "rsam": "smoothed ball"}}
SLIDER_OPTIONS = ("rho", "sigma")  # lesson_runs' per-method overrides: <method>_rho, <method>_sigma


def two_minima_loss(w: torch.Tensor) -> torch.Tensor:
    """L(w) = 1.2 - sum_k depth_k exp(-|w - c_k|^2 / (2 width_k^2)) + 0.02 |w|^2, for w of shape (..., 2)."""
    loss = 1.2 + 0.02 * (w**2).sum(-1)
    for cx, cy, width, depth in (SHARP, FLAT):
        d2 = (w[..., 0] - cx) ** 2 + (w[..., 1] - cy) ** 2
        loss = loss - depth * torch.exp(-d2 / (2 * width**2))
    return loss


def _grid(extent: float, points: int) -> torch.Tensor:
    check_positive("extent", extent)
    points = check_count("points", points, 2)
    lin = torch.linspace(-extent, extent, points, dtype=torch.float64)
    X, Y = torch.meshgrid(lin, lin, indexing="xy")
    return torch.stack([X, Y], -1)


def loss_grid(extent: float = 2.5, points: int = 121) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, Y, Z) of the playground loss on a square grid, for contour plots."""
    W = _grid(extent, points)
    return W[..., 0].numpy(), W[..., 1].numpy(), two_minima_loss(W).numpy()


def max_over_ball_grid(rho: float, extent: float = 2.5, points: int = 81, angles: int = 48,
                       rings: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SAM's objective max_{||e|| <= rho} L(w + e) on a grid (the max over `rings` circles of `angles` points)."""
    if not rho >= 0:
        raise ValueError(f"rho={rho}: a ball radius must be >= 0")
    W = _grid(extent, points)
    t = torch.linspace(0, 2 * math.pi, angles + 1, dtype=torch.float64)[:-1]
    r = torch.linspace(rho / rings, rho, rings, dtype=torch.float64)
    e = (r[:, None, None] * torch.stack([t.cos(), t.sin()], -1)[None]).reshape(-1, 2)
    Z = torch.maximum(two_minima_loss(W), two_minima_loss(W[..., None, :] + e).amax(-1))
    return W[..., 0].numpy(), W[..., 1].numpy(), Z.numpy()


def gnm_noise(rho: float, sigma: float = GNM_SIGMA, truncate: float = 1.0, n: int = 256, seed: int = 0) -> torch.Tensor:
    """n draws of GNM's perturbation e = rho * clamp(N(0, sigma^2), -truncate, truncate), per coordinate."""
    g = torch.Generator().manual_seed(seed)
    return rho * (torch.randn(n, 2, generator=g, dtype=torch.float64) * sigma).clamp(-truncate, truncate)


def smoothed_grid(rho: float, sigma: float = GNM_SIGMA, extent: float = 2.5, points: int = 81,
                  n: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GNM's objective E_e L(w + e) on a grid (Monte Carlo, the same n noise draws at every point)."""
    W = _grid(extent, points)
    Z = two_minima_loss(W[..., None, :] + gnm_noise(rho, sigma, n=n)).mean(-1)
    return W[..., 0].numpy(), W[..., 1].numpy(), Z.numpy()


def gradient(w) -> np.ndarray:
    p = torch.tensor(np.asarray(w, dtype=np.float64), requires_grad=True)
    two_minima_loss(p).backward()
    return p.grad.numpy()


def sam_worst_point(w, rho: float) -> np.ndarray:
    """SAM's one-step approximation of the worst point of the rho-ball: w + rho g / ||g||."""
    w, g = np.asarray(w, dtype=np.float64), gradient(w)
    return w + rho * g / (np.linalg.norm(g) + 1e-12)


def gnm_cloud(w, rho: float, sigma: float = GNM_SIGMA, n: int = 200, seed: int = 0) -> np.ndarray:
    """Points where GNM may take its gradient: w + rho * clamp(N(0, sigma^2), -1, 1)."""
    return np.asarray(w, dtype=np.float64) + gnm_noise(rho, sigma, n=n, seed=seed).numpy()


def rsam_ascent(w, rho: float, sigma: float, n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RSAM's smoothing cloud w + d, d ~ N(0, (sigma ||w||)^2), and its ascent point w + rho g~ / ||g~||
    with g~ the gradient averaged over the cloud (one draw per step in training; the mean shows the direction)."""
    w = np.asarray(w, dtype=np.float64)
    g = torch.Generator().manual_seed(seed)
    cloud = w + sigma * np.linalg.norm(w) * torch.randn(n, 2, generator=g, dtype=torch.float64).numpy()
    gbar = np.mean([gradient(c) for c in cloud], axis=0)
    return cloud, w + rho * gbar / (np.linalg.norm(gbar) + 1e-12)


def lesson_neighbourhoods(w, **overrides) -> list[dict]:
    """The panels of ``ltlab.plots.playground.neighbourhoods`` at w for every lesson method with a radius, drawn
    as LESSON["neighbourhood"] says: "ball" (the rho-ball and its one-step worst point), "cloud" (the points
    where a noise-averaging method may take its gradient), "smoothed ball" (the smoothing cloud, then the
    ascent point of the smoothed gradient)."""
    panels = []
    for m, o in lesson_options(**overrides).items():
        kind, rho, sigma = LESSON["neighbourhood"][m], o["rho"], o.get("sigma")
        if kind == "ball":
            panels.append({"name": m, "ball": rho, "point": sam_worst_point(w, rho),
                           "title": f"{m.upper()}: ball of radius ρ = {rho:g},\ngradient at its worst point w + ρ g/‖g‖"})
        elif kind == "cloud":
            panels.append({"name": m, "cloud": gnm_cloud(w, rho, sigma),
                           "title": f"{m.upper()}: gradient at ONE random point\nof the clamped Gaussian cloud (1 pass)"})
        else:
            cloud, point = rsam_ascent(w, rho, sigma)
            panels.append({"name": m, "cloud": cloud, "point": point,
                           "title": f"{m.upper()}: smooth with random noise,\nthen ascend as in a ball (2 passes)"})
    return panels


@lru_cache(maxsize=1)
def minima() -> dict[str, tuple[np.ndarray, float]]:
    """{"sharp" | "flat": (location, loss)}: the two local minima, found by L-BFGS from the basin centres."""
    out = {}
    for kind, (cx, cy, _, _) in (("sharp", SHARP), ("flat", FLAT)):
        w = torch.tensor([cx, cy], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w], lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure():
            opt.zero_grad()
            loss = two_minima_loss(w)
            loss.backward()
            return loss

        opt.step(closure)
        out[kind] = (w.detach().numpy().copy(), float(two_minima_loss(w.detach())))
    return out


def outcome(point) -> str:
    """Where a run ended: "sharp basin" / "flat basin" (inside the basin's width and within 0.15 of its
    minimum's loss) or "stalled" (anywhere else: on a ridge, a slope or between the basins)."""
    point = np.asarray(point, dtype=np.float64)
    loss = float(two_minima_loss(torch.tensor(point)))
    for kind, (_, _, width, _) in (("sharp", SHARP), ("flat", FLAT)):
        where, floor = minima()[kind]
        if np.linalg.norm(point - where) < width and loss < floor + 0.15:
            return f"{kind} basin"
    return "stalled"


@dataclass
class Trajectory:
    optimizer: str
    path: np.ndarray  # (steps + 1, 2)
    loss: np.ndarray  # (steps + 1,)

    @property
    def outcome(self) -> str:
        return outcome(self.path[-1])

    @property
    def label(self) -> str:
        """The end, computed: e.g. "flat basin, L = 0.22"."""
        return f"{self.outcome}, L = {self.loss[-1]:.2f}"


def run_optimizer(name: str, start: tuple[float, float] = START, lr: float = 0.05, rho: float | None = None,
                  sigma: float | None = None, steps: int = 100, seed: int = 0, momentum: float = 0.0) -> Trajectory:
    """Run one ltlab optimizer on the playground loss from `start`; rho/sigma None = method defaults.

    rho is SAM's / RSAM's ball radius and GNM's noise scale (e = rho * clamp(N(0, sigma^2)));
    sigma is RSAM's smoothing std (relative to ||w||) and GNM's std before the clamp."""
    if np.shape(start) != (2,):
        raise ValueError(f"start={start!r}: a point of the plane, two numbers (x, y)")
    steps = check_count("steps", steps)
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


def lesson_methods() -> list[str]:
    """The lesson's methods: its base, then every method with a radius."""
    return [LESSON["base"], *LESSON["radius"]]


def lesson_options(**overrides) -> dict[str, dict[str, float]]:
    """{method: {rho, sigma}} at the lesson's settings, with overrides <method>_rho / <method>_sigma."""
    opts = {m: {"rho": LESSON["radius"][m], **({"sigma": LESSON["sigma"][m]} if m in LESSON["sigma"] else {})}
            for m in LESSON["radius"]}
    for key, value in overrides.items():
        method, _, option = key.rpartition("_")
        if method not in opts or option not in SLIDER_OPTIONS:
            raise TypeError(f"{key}: not a lesson option; use <method>_rho or <method>_sigma with a method from "
                            f"{', '.join(opts)}")
        opts[method][option] = value
    return opts


def lesson_runs(seed: int = 0, **overrides) -> dict[str, Trajectory]:
    """Every lesson method (``lesson_methods``) at the lesson's settings (``LESSON``); overrides: lr, momentum,
    steps, and <method>_rho / <method>_sigma (e.g. sam_rho=0.8)."""
    common = {k: overrides.pop(k, LESSON[k]) for k in ("lr", "momentum", "steps")}
    opts = lesson_options(**overrides)
    return {m: run_optimizer(m, seed=seed, **common, **opts.get(m, {})) for m in lesson_methods()}


def sweep(names=None, radii=(0.1, 0.2, 0.3, 0.5, 0.8, 1.2), seeds=range(3),
          lr: float = LESSON["lr"], momentum: float = LESSON["momentum"], steps: int = LESSON["steps"],
          sigma: dict[str, float] | None = None) -> list[dict]:
    """Outcome counts over radii and seeds: one row per (method, radius) with the share of runs that
    ended in the sharp basin, the flat basin or stalled, and the mean final loss. names: the lesson's methods
    with a radius by default; sigma: {method: sigma}, the lesson's by default. Deterministic methods (no random
    perturbation: the class's ``stochastic`` is False) run once (the first seed)."""
    rows, seeds, radii = [], list(seeds), list(radii)
    if not seeds or not radii:
        raise ValueError(f"sweep needs at least one seed and one radius; got seeds={seeds}, radii={radii}")
    sigma = {**LESSON["sigma"], **(sigma or {})}
    for name in names or list(LESSON["radius"]):
        for r in radii:
            runs = [run_optimizer(name, lr=lr, momentum=momentum, steps=steps, seed=s, rho=r, sigma=sigma.get(name))
                    for s in (seeds if optimizer_info(name).cls.stochastic else seeds[:1])]
            ends = [t.outcome for t in runs]
            rows.append({"method": name, "radius": r, "runs": len(runs),
                         **{k: ends.count(k) / len(runs) for k in ("sharp basin", "flat basin", "stalled")},
                         "final loss": float(np.mean([t.loss[-1] for t in runs]))})
    return rows


def step_cost(names=None, steps: int = 30, batch: int = 512, width: int = 256,
              seed: int = 0) -> dict[str, float]:
    """Measured seconds per step of each optimizer on a small MLP (3 layers of `width`, one batch):
    the cost of the extra forward/backward pass, which the 2-parameter toy is too small to show.
    Interleaved rounds, median per method."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 64, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                                torch.nn.ReLU(), torch.nn.Linear(width, 10))
    names = names or lesson_methods()
    opts = {n: create_optimizer(n, model.parameters(), lr=1e-3, seed=seed) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}

    def make(opt):
        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        return closure

    for r in range(steps + 3):
        for n, opt in opts.items():
            t0 = time.perf_counter()
            opt.step(make(opt))
            if r >= 3:  # warm-up
                times[n].append(time.perf_counter() - t0)
    return {n: float(np.median(t)) for n, t in times.items()}


def closures_per_step(name: str) -> int:
    return optimizer_info(name).closures_per_step


def grid_minima(grid) -> list[tuple[float, float]]:
    """Interior grid points lower than their 8 neighbours: the basins of a sampled objective."""
    X, Y, Z = grid
    c = Z[1:-1, 1:-1]
    lower = np.ones_like(c, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                lower &= c < Z[1 + di:Z.shape[0] - 1 + di, 1 + dj:Z.shape[1] - 1 + dj]
    i, j = np.nonzero(lower)
    return [(float(X[a + 1, b + 1]), float(Y[a + 1, b + 1])) for a, b in zip(i, j)]
