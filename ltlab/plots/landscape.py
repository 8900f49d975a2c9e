"""Flatness figures from probe results (Surface2D, Surface1D, SpectralDensity, EigenRatio1D, PerClassResult)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .style import color, style


def surfaces_2d(surfaces: Mapping[str, object], zmax: float | None = None, log: bool = False):
    """Per method: a 3D side view (top row) and a contour top view (bottom row), one shared colour scale."""
    import matplotlib.pyplot as plt
    from matplotlib import colors
    from matplotlib.ticker import MaxNLocator

    names = list(surfaces)
    losses = [np.asarray(surfaces[n].loss) for n in names]
    vmin = min(float(v.min()) for v in losses)
    vmax = zmax if zmax is not None else max(float(v.max()) for v in losses)
    norm = colors.LogNorm(max(vmin, 1e-6), vmax) if log else colors.Normalize(vmin, vmax)
    with style():
        fig = plt.figure(figsize=(3.1 * len(names), 6.0))
        contour_axes = []
        for i, n in enumerate(names):
            s = surfaces[n]
            X, Y = np.meshgrid(s.x, s.y)
            Z = np.clip(np.asarray(s.loss), None, vmax)
            ax = fig.add_subplot(2, len(names), i + 1, projection="3d")
            ax.plot_surface(X, Y, Z, cmap="viridis", norm=norm, linewidth=0, antialiased=True)
            ax.set_zlim(vmin, vmax)
            ax.set_title(n, fontweight="bold")
            ax.view_init(elev=25, azim=-60)
            for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
                axis.set_major_locator(MaxNLocator(3))
            ax.tick_params(labelsize=8, pad=0)
            ax.set_xlabel("dir. 1", fontsize=8, labelpad=-4)
            ax.set_ylabel("dir. 2", fontsize=8, labelpad=-4)
            ax.set_zlabel("loss", fontsize=8, labelpad=-2)
            ax2 = fig.add_subplot(2, len(names), len(names) + i + 1,
                                  sharey=contour_axes[0] if contour_axes else None)
            contour_axes.append(ax2)
            cs = ax2.contourf(X, Y, Z, levels=20, cmap="viridis", norm=norm)
            ax2.contour(X, Y, Z, levels=10, colors="k", linewidths=0.3)
            ax2.plot(0, 0, "w*", ms=6)
            ax2.set_aspect("equal")
            ax2.xaxis.set_major_locator(MaxNLocator(3))
            ax2.yaxis.set_major_locator(MaxNLocator(3))
            ax2.set_xlabel("direction 1")
            if i == 0:
                ax2.set_ylabel("direction 2")
            else:
                ax2.tick_params(labelleft=False)
        fig.subplots_adjust(wspace=0.25, hspace=0.15)
        fig.colorbar(cs, ax=contour_axes, shrink=0.8, label="loss")
    return fig


def trajectory_on_surface(surfaces: Mapping[str, object], paths: Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """Training paths over the loss on the plane of their own top-2 PCA directions (Li et al. 2018).

    surfaces = {method: Surface2D on the PCA plane, centred at the final weights};
    paths = {method: (coords (epochs, 2), explained variance of the two directions)}. One colour scale."""
    import matplotlib.pyplot as plt

    names = list(surfaces)
    vmin = min(float(np.min(surfaces[n].loss)) for n in names)
    vmax = max(float(np.max(surfaces[n].loss)) for n in names)
    levels = np.linspace(vmin, vmax, 21)
    with style():
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
        for ax, n in zip(axes[0], names):
            s = surfaces[n]
            X, Y = np.meshgrid(s.x, s.y)
            cs = ax.contourf(X, Y, np.asarray(s.loss), levels=levels, cmap="viridis")
            ax.contour(X, Y, np.asarray(s.loss), levels=10, colors="k", linewidths=0.3)
            xy, ev = paths[n]
            ax.plot(xy[:, 0], xy[:, 1], "-o", color="white", ms=3, lw=1.2, mec=color(n))
            ax.plot(*xy[0], "s", color=color(n), mec="white", ms=6, label="first epoch")
            ax.plot(0, 0, "*", color=color(n), mec="white", ms=10, label="last epoch")
            ax.set_title(n, color=color(n))
            ax.set_xlabel(f"PC 1 ({100 * ev[0]:.0f} % of the path)")
            ax.set_ylabel(f"PC 2 ({100 * ev[1]:.0f} %)")
            ax.grid(False)
        axes[0][0].legend(loc="lower left", fontsize=6, frameon=True)
        fig.tight_layout()
        fig.colorbar(cs, ax=list(axes[0]), shrink=0.85, label="loss")
    return fig


def surfaces_1d(slices: Mapping[str, object], key: str = "loss"):
    """Loss (or accuracy) along a 1D slice, one line per method."""
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(3.6, 2.8))
        for n, s in slices.items():
            ax.plot(s.x, getattr(s, key), color=color(n), label=n)
        ax.set(xlabel="distance along filter-normalised direction", ylabel=key)
        ax.legend()
    return fig


def spectra(densities: Mapping[str, object], log: bool = True, floor: float = 1e-5):
    """SLQ spectral densities of the Hessian: one panel per method on shared axes. With a log axis the axis
    starts at floor x the highest peak; lower densities run off its bottom as one unbroken curve."""
    import matplotlib.pyplot as plt

    names = list(densities)
    with style():
        fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names) + 0.6, 2.6), sharex=True, sharey=True,
                                 squeeze=False)
        for ax, n in zip(axes[0], names):
            d = densities[n]
            y = np.asarray(d.density, dtype=float)
            if log:  # a density of exactly 0 would break the line on a log axis: far below the axis instead
                y = np.maximum(y, 1e-300)
            ax.plot(d.grid, y, color=color(n), lw=1.2)
            ax.axvline(0, color="k", lw=0.5, ls=":")
            ax.set_title(n)
            ax.set_xlabel("eigenvalue")
        if log:
            axes[0][0].set_yscale("log")
            peak = max(float(np.max(densities[n].density)) for n in names)
            axes[0][0].set_ylim(floor * peak, 2 * peak)
        axes[0][0].set_ylabel("spectral density")
        fig.tight_layout()
    return fig


def eigen_ratio(ratios: Mapping[str, object]):
    """lambda_min / lambda_max along a 1D slice, per method (the GNM paper's rebuttal figure)."""
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(3.6, 2.8))
        for n, r in ratios.items():
            ax.plot(r.x, r.ratio, marker="o", ms=3, color=color(n), label=n)
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="position along slice", ylabel=r"$\lambda_{min} / \lambda_{max}$")
        ax.legend()
    return fig


def per_class_values(results: Mapping[str, object], ylabel: str = r"$\lambda_{max}$", logy: bool = True):
    """A per-class probe value against class size (log-log), coloured by method, marked by group."""
    import matplotlib.pyplot as plt

    markers = {"many": "o", "medium": "s", "few": "^", "": "."}
    with style():
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
        for n, r in results.items():
            for g in ("many", "medium", "few"):
                idx = [i for i, gg in enumerate(r.groups) if gg == g]
                if idx:
                    ax.scatter(np.array(r.counts)[idx], np.array(r.values)[idx], color=color(n), marker=markers[g],
                               s=14, alpha=0.8, label=f"{n}" if g == "many" else None)
            order = np.argsort(r.counts)
            ax.plot(np.array(r.counts)[order], _running(np.array(r.values)[order]), color=color(n), lw=1)
        ax.set_xscale("log")
        if logy and all(v > 0 for r in results.values() for v in r.values):
            ax.set_yscale("log")
        ax.set(xlabel="training images of the class", ylabel=ylabel)
        from matplotlib.lines import Line2D

        # both legends right of the axes, where they cover no point
        methods = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="method",
                            title_fontsize=7, alignment="left")
        ax.add_artist(methods)
        shapes = [Line2D([], [], ls="", marker=m, color="#444444", label=g) for g, m in markers.items() if g]
        ax.legend(handles=shapes + [Line2D([], [], color="#444444", lw=1, label="running\nmean")], fontsize=7,
                  loc="lower left", bbox_to_anchor=(1.02, 0.0), title="class group", title_fontsize=7,
                  alignment="left")
    return fig


def _running(v: np.ndarray, k: int = 7) -> np.ndarray:
    k = max(1, min(k, len(v)))
    pad = np.pad(v, (k // 2, k - 1 - k // 2), mode="edge")
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def group_values(rows: Sequence[Mapping[str, float]], ylabel: str, label: str = "label"):
    """Grouped bars of a per-group probe value (many / medium / few) per method."""
    import matplotlib.pyplot as plt

    groups = ("many", "medium", "few")
    n = len(rows)
    width = 0.8 / max(n, 1)
    with style():
        fig, ax = plt.subplots(figsize=(4.0, 2.8))
        for i, r in enumerate(rows):
            x = np.arange(3) + (i - (n - 1) / 2) * width
            ax.bar(x, [r[g] for g in groups], width, color=color(r[label]), label=r[label])
        ax.set_xticks(np.arange(3), groups)
        ax.set_ylabel(ylabel)
        ax.legend()
    return fig


__all__ = ["trajectory_on_surface", "surfaces_2d", "surfaces_1d", "spectra", "eigen_ratio", "per_class_values", "group_values"]
