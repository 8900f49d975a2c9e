"""Figures of the 2-parameter playground (notebook 00), from plain arrays computed by ltlab.playground."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .style import color, style

_BACKGROUND = dict(cmap="Greys", alpha=0.45)  # light: every method's colour stays visible on it


def _outline(lw: float = 3.2):
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=lw, foreground="white")]


def _contours(ax, grid, levels=24):
    X, Y, Z = grid
    cs = ax.contourf(X, Y, Z, levels=levels, **_BACKGROUND)
    ax.contour(X, Y, Z, levels=12, colors="#333333", linewidths=0.3, alpha=0.5)
    ax.set_aspect("equal")
    ax.grid(False)
    return cs


def trajectories(grid, runs: Mapping[str, tuple[np.ndarray, str]], upto: int | None = None,
                 start=None, title: str = "sharp basin (left) vs flat basin (right)"):
    """Paths on the loss contour; runs = {method: (path (T, 2), end label)}; `upto` = the step shown."""
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(5.0, 4.4))
        _contours(ax, grid)
        for name, (path, label) in runs.items():
            k = len(path) if upto is None else min(upto + 1, len(path))
            ax.plot(path[:k, 0], path[:k, 1], color=color(name), lw=1.6, path_effects=_outline(), zorder=3,
                    label=f"{name}: {label}" if upto is None or k == len(path) else f"{name}: step {k - 1}")
            ax.plot(*path[k - 1], "o", color=color(name), ms=6, mec="white", mew=1.2, zorder=4)
        first = next(iter(runs.values()))[0][0] if start is None else start
        ax.plot(*first, "*", color="black", mec="white", ms=12, zorder=5)
        ax.legend(loc="lower left", fontsize=7, frameon=True, framealpha=0.9)
        ax.set(xlabel="$w_1$", ylabel="$w_2$", title=title)
    return fig


def neighbourhoods(grid, w, panels):
    """One panel per method at the same point w: panels = [{"name", "title", "ball": radius or None, "cloud":
    (n, 2) points or None, "point": the point the gradient is taken at, or None}] (``ltlab.playground.
    lesson_neighbourhoods`` builds them from the lesson); each drawn in its method's colour."""
    import matplotlib.pyplot as plt

    w = np.asarray(w)
    t = np.linspace(0, 2 * np.pi, 200)
    with style():
        fig, axes = plt.subplots(1, len(panels), figsize=(3.5 * len(panels), 3.6), sharex=True, sharey=True)
        for ax, p in zip(np.atleast_1d(axes), panels):
            _contours(ax, grid)
            ax.plot(*w, "*", color="black", mec="white", ms=12, zorder=5)
            c = color(p["name"])
            if p.get("ball") is not None:
                r = p["ball"]
                ax.fill(w[0] + r * np.cos(t), w[1] + r * np.sin(t), color=c, alpha=0.25)
                ax.plot(w[0] + r * np.cos(t), w[1] + r * np.sin(t), color=c, lw=1.2)
            if p.get("cloud") is not None:
                ax.scatter(p["cloud"][:, 0], p["cloud"][:, 1], s=5, color=c, alpha=0.6, zorder=3)
            if p.get("point") is not None:
                ax.annotate("", xy=p["point"], xytext=w, arrowprops=dict(arrowstyle="->", color="black", lw=1.4))
                ax.plot(*p["point"], "o", color=c, mec="black", ms=7, zorder=5)
            ax.set_title(p["title"])
            ax.set_xlabel("$w_1$")
        np.atleast_1d(axes)[0].set_ylabel("$w_2$")
        fig.tight_layout()
    return fig


def objectives(surfaces: Mapping[str, tuple], minima: Mapping[str, Sequence[tuple[float, float]]] | None = None):
    """What each method minimises, side by side on ONE colour scale with a colourbar:
    surfaces = {title: (X, Y, Z)}; minima = {title: [(x, y), ...]} marks the lowest points."""
    import matplotlib.pyplot as plt

    lo = min(float(np.min(z)) for _, _, z in surfaces.values())
    hi = max(float(np.max(z)) for _, _, z in surfaces.values())
    levels = np.linspace(lo, hi, 25)
    with style():
        fig, axes = plt.subplots(1, len(surfaces), figsize=(3.6 * len(surfaces), 3.6), sharex=True, sharey=True)
        axes = np.atleast_1d(axes)
        for ax, (title, grid) in zip(axes, surfaces.items()):
            cs = _contours(ax, grid, levels=levels)
            for (x, y) in (minima or {}).get(title, []):
                ax.plot(x, y, "X", color="black", mec="white", ms=9, zorder=5)
            ax.set_title(title)
            ax.set_xlabel("$w_1$")
        axes[0].set_ylabel("$w_2$")
        fig.colorbar(cs, ax=list(axes), shrink=0.85, label="objective value")
    return fig


def step_costs(seconds: Mapping[str, float], closures: Mapping[str, int], title: str):
    """Measured seconds per step, one bar per method, labelled with its forward/backward passes."""
    import matplotlib.pyplot as plt

    names = list(seconds)
    base = seconds[names[0]]
    with style():
        fig, ax = plt.subplots(figsize=(4.4, 2.6))
        ms = [1000 * seconds[n] for n in names]
        ax.bar(names, ms, color=[color(n) for n in names])
        for i, n in enumerate(names):
            ax.text(i, ms[i], f"{closures[n]} pass{'es' if closures[n] > 1 else ''}\n{seconds[n] / base:.2f}×",
                    ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, max(ms) * 1.35)
        ax.set(ylabel="ms per step (median)", title=title)
    return fig


def sweep_map(rows: Sequence[Mapping], outcome: str = "flat basin"):
    """Share of runs that ended in `outcome`, per method (rows) and radius (columns)."""
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    radii = sorted({r["radius"] for r in rows})
    share = np.full((len(methods), len(radii)), np.nan)
    stalled = np.zeros_like(share)
    for r in rows:
        i, j = methods.index(r["method"]), radii.index(r["radius"])
        share[i, j], stalled[i, j] = r[outcome], r["stalled"]
    with style():
        fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(radii), 0.6 + 0.5 * len(methods)))
        im = ax.imshow(share, vmin=0, vmax=1, cmap="Greens", aspect="auto")
        for i in range(len(methods)):
            for j in range(len(radii)):
                ax.text(j, i, f"{share[i, j]:.0%}" + (f"\n({stalled[i, j]:.0%} stall)" if stalled[i, j] else ""),
                        ha="center", va="center", fontsize=6.5)
        ax.set_xticks(range(len(radii)), [f"{r:g}" for r in radii])
        ax.set_yticks(range(len(methods)), methods)
        ax.grid(False)
        ax.set(xlabel="radius ρ (SAM, RSAM: ball; GNM: noise scale)", title=f"share of runs ending in the {outcome}")
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig
