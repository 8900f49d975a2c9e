"""ipywidgets explorers over precomputed results; each can be built and driven headless.

>>> w = PlaygroundExplorer(steps=20)     # doctest: +SKIP
>>> w.controls["lr"].value = 0.1          # re-runs the optimizers and redraws
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import plots
from .playground import loss_grid, run_optimizer


def _show(output, fig) -> None:
    """Render `fig` into an ipywidgets Output (as a static image), then free it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    output.clear_output(wait=True)
    with output:
        display(fig)
    plt.close(fig)


class PlaygroundExplorer:
    """Sliders for lr, rho, sigma and steps; SGD / SAM / RSAM / GNM trajectories on the 2-D playground."""

    def __init__(self, optimizers=("sgd", "sam", "rsam", "gnm"), lr: float = 0.05, rho: float = 0.5,
                 sigma: float = 1 / 3, steps: int = 100, start=(-0.55, 0.95)):
        import ipywidgets as W

        self.optimizers, self.start = list(optimizers), start
        self.grid = loss_grid()
        self.controls = {
            "lr": W.FloatLogSlider(value=lr, base=10, min=-3, max=0, description="lr"),
            "rho": W.FloatSlider(value=rho, min=0.0, max=1.5, step=0.05, description="rho"),
            "sigma": W.FloatSlider(value=sigma, min=0.05, max=1.0, step=0.05, description="sigma (GNM)"),
            "steps": W.IntSlider(value=steps, min=5, max=400, step=5, description="steps"),
        }
        self.output = W.Output()
        self.trajectories: dict = {}
        for c in self.controls.values():
            c.observe(lambda change: self.update(), names="value")
        self.widget = W.VBox([W.HBox(list(self.controls.values())[:2]), W.HBox(list(self.controls.values())[2:]),
                              self.output])
        self.update()

    def compute(self) -> dict:
        v = {k: c.value for k, c in self.controls.items()}
        out = {}
        for name in self.optimizers:
            # GNM's rho scales clamp(N(0, sigma^2)); SAM-type methods use rho as the ascent radius
            kw = dict(rho=v["rho"], sigma=v["sigma"] if name == "gnm" else None) if name != "sgd" else {}
            out[name] = run_optimizer(name, self.start, lr=v["lr"], steps=v["steps"], **kw)
        return out

    def update(self) -> None:

        self.trajectories = self.compute()
        self.figure = trajectory_figure(self.grid, self.trajectories)
        self._show(self.figure)

    def _show(self, fig) -> None:
        _show(self.output, fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def trajectory_figure(grid, trajectories: Mapping):
    import matplotlib.pyplot as plt

    X, Y, Z = grid
    with plots.style():
        fig, ax = plt.subplots(figsize=(4.6, 4.0))
        ax.contourf(X, Y, Z, levels=30, cmap="Greys_r")
        ax.contour(X, Y, Z, levels=15, colors="w", linewidths=0.3)
        for name, t in trajectories.items():
            ax.plot(t.path[:, 0], t.path[:, 1], color=plots.color(name), lw=1.5,
                    label=f"{name} → {t.basin} (L={t.loss[-1]:.3f})")
            ax.plot(*t.path[-1], "o", color=plots.color(name), ms=5)
        ax.plot(*trajectories[next(iter(trajectories))].path[0], "k*", ms=9)
        ax.set_aspect("equal")
        ax.legend(loc="lower left", fontsize=7, frameon=True)
        ax.set(xlabel="$w_1$", ylabel="$w_2$", title="sharp minimum (left) vs flat minimum (right)")
    return fig


class LandscapeExplorer:
    """Method / class group / a second group beside it / a slice row, over precomputed 2D surfaces.

    surfaces: {(method, group): Surface2D} (group may be "all"). Never recomputes. Every contour uses
    ONE colour scale (the range over all surfaces) with a colourbar, so head and tail panels compare
    by colour; the slice panel overlays the two groups' rows.
    """

    def __init__(self, surfaces: Mapping[tuple[str, str], object], beside: str | None = "few"):
        import ipywidgets as W

        self.surfaces = dict(surfaces)
        methods = list(dict.fromkeys(m for m, _ in self.surfaces))
        groups = list(dict.fromkeys(g for _, g in self.surfaces))
        first = next(iter(self.surfaces.values()))
        lo = min(float(np.nanmin(v.loss)) for v in self.surfaces.values())
        hi = max(float(np.nanmax(v.loss)) for v in self.surfaces.values())
        self.levels = np.linspace(lo, hi if hi > lo else lo + 1e-6, 21)  # one scale for every panel
        start = "many" if "many" in groups else groups[0]
        self.controls = {
            "method": W.Dropdown(options=methods, value=methods[0], description="method"),
            "group": W.Dropdown(options=groups, value=start, description="classes"),
            "beside": W.Dropdown(options=["none"] + groups, value=beside if beside in groups else "none",
                                 description="beside"),
            "row": W.IntSlider(value=len(first.y) // 2, min=0, max=len(first.y) - 1, description="slice row"),
        }
        self.output = W.Output()
        for c in self.controls.values():
            c.observe(lambda change: self.update(), names="value")
        self.widget = W.VBox([W.HBox(list(self.controls.values())[:2]), W.HBox(list(self.controls.values())[2:]),
                              self.output])
        self.update()

    @property
    def current(self):
        return self.surfaces[(self.controls["method"].value, self.controls["group"].value)]

    def panels(self) -> list[tuple[str, object]]:
        m, g, b = (self.controls[k].value for k in ("method", "group", "beside"))
        out = [(g, self.surfaces[(m, g)])]
        if b != "none" and b != g and (m, b) in self.surfaces:
            out.append((b, self.surfaces[(m, b)]))
        return out

    def slice(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.current
        return s.x, s.loss[self.controls["row"].value]

    def update(self) -> None:
        import matplotlib.pyplot as plt

        panels, row = self.panels(), self.controls["row"].value
        method = self.controls["method"].value
        with plots.style():
            fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.4 * (len(panels) + 1) + 0.6, 3.0))
            for ax, (g, s) in zip(axes, panels):
                X, Y = np.meshgrid(s.x, s.y)
                cs = ax.contourf(X, Y, np.clip(s.loss, self.levels[0], self.levels[-1]), levels=self.levels,
                                 cmap="viridis")
                ax.axhline(s.y[row], color="w", lw=1)
                ax.set(title=f"{method} / {g}", xlabel="d1", ylabel="d2")
            fig.colorbar(cs, ax=list(axes[:len(panels)]), label="loss (one scale for all)", shrink=0.9)
            b = axes[-1]
            for i, (g, s) in enumerate(panels):
                b.plot(s.x, s.loss[row], color=plots.color(method), ls=["-", "--"][i], label=g)
            b.set(xlabel="d1", ylabel="loss", title=f"slice at d2 = {panels[0][1].y[row]:.2f}",
                  ylim=(self.levels[0], self.levels[-1]))
            b.legend(fontsize=7)
        self.figure = fig
        self._show(fig)

    def _show(self, fig) -> None:
        _show(self.output, fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
