"""ipywidgets explorers over precomputed results; each can be built and driven headless.

>>> w = PlaygroundExplorer(steps=20)     # doctest: +SKIP
>>> w.controls["sam_rho"].value = 0.8     # re-runs the optimizers and redraws
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import plots
from .playground import LESSON, lesson_options, lesson_runs, loss_grid


def _show(output, fig) -> None:
    """Render `fig` into an ipywidgets Output (as a static image), then free it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    output.clear_output(wait=True)
    with output:
        display(fig)
    plt.close(fig)


class PlaygroundExplorer:
    """SGD / SAM / RSAM / GNM on the 2-D playground, one explained control per method's radius.

    Changing lr, momentum, steps or a radius re-runs the four optimizers; the "show step" slider
    walks the trajectories without re-running. End labels are computed (``Trajectory.label``).
    """

    HELP = ("<b>SAM ρ</b>: radius of the ball whose worst point SAM's gradient is taken at. "
            "<b>RSAM ρ</b>: the same ball, after <b>RSAM σ</b>: the smoothing noise std, relative to ‖w‖. "
            "<b>GNM ρ</b>: scale of GNM's noise, e = ρ·clamp(N(0, σ²), −1, 1) per coordinate (<b>GNM σ</b> = 1/3, "
            "the paper's: std ≈ ρ/3). "
            "<b>show step</b>: walk the paths.")

    RANGES = {"rho": (0.0, 2.0, 0.05, "ρ"), "sigma": (0.01, 0.5, 0.01, "σ")}

    def __init__(self, lr: float = LESSON["lr"], momentum: float = LESSON["momentum"], steps: int = LESSON["steps"],
                 seed: int = 0, **options: float):
        """options: a lesson method's starting value, e.g. sam_rho=0.8 (``ltlab.playground.lesson_options``)."""
        import ipywidgets as W

        self.seed = seed
        self.grid = loss_grid()
        style = {"description_width": "initial"}
        self.controls = {
            "lr": W.FloatLogSlider(value=lr, base=10, min=-3, max=0, description="lr", style=style),
            "momentum": W.FloatSlider(value=momentum, min=0.0, max=0.95, step=0.05, description="momentum", style=style),
            "steps": W.IntSlider(value=steps, min=10, max=800, step=10, description="steps", style=style),
        }
        for m, opts in lesson_options(**options).items():  # one slider per lesson method's option
            for k, v in opts.items():
                lo, hi, step, symbol = self.RANGES[k]
                self.controls[f"{m}_{k}"] = W.FloatSlider(value=v, min=lo, max=hi, step=step,
                                                          description=f"{m.upper()} {symbol}", style=style)
        self.step = W.IntSlider(value=steps, min=0, max=steps, description="show step", style=style)
        self.output = W.Output()
        self.trajectories: dict = {}
        for c in self.controls.values():
            c.observe(lambda change: self.update(), names="value")
        self.step.observe(lambda change: self.redraw(), names="value")
        c = list(self.controls.values())
        rows = [c[i:i + 3] for i in range(0, len(c), 3)]
        self.widget = W.VBox([W.HTML(self.HELP), *(W.HBox(r) for r in rows[:-1]), W.HBox(rows[-1] + [self.step]),
                              self.output])
        self.update()

    def compute(self) -> dict:
        v = {k: c.value for k, c in self.controls.items()}
        return lesson_runs(seed=self.seed, **v)

    def update(self) -> None:
        self.trajectories = self.compute()
        steps = self.controls["steps"].value
        self.step.max = steps
        if self.step.value != steps:
            self.step.value = steps  # triggers redraw
        else:
            self.redraw()

    def redraw(self) -> None:
        runs = {n: (t.path, t.label) for n, t in self.trajectories.items()}
        self.figure = plots.playground.trajectories(self.grid, runs, upto=self.step.value)
        _show(self.output, self.figure)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def trajectory_figure(grid, trajectories: Mapping, upto: int | None = None):
    """Trajectories (``ltlab.playground.Trajectory``) with their computed end labels."""
    return plots.playground.trajectories(grid, {n: (t.path, t.label) for n, t in trajectories.items()}, upto=upto)


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
