"""Figures are deterministic files; widgets can be driven headless; the playground behaves."""
import hashlib

import numpy as np
import pytest

from ltlab import plots
from ltlab.playground import run_optimizer, two_minima_loss
from ltlab.probes.results import Surface2D


def _surface(seed):
    rng = np.random.RandomState(seed)
    x = np.linspace(-1, 1, 7)
    return Surface2D(x, x, rng.rand(7, 7) + np.add.outer(x**2, x**2), rng.rand(7, 7))


def test_save_is_deterministic(tmp_path):
    digests = []
    for k in range(2):
        fig = plots.group_bars([{"optimizer": "sgd", "many": 80, "medium": 50, "few": 20, "overall": 50},
                                {"optimizer": "gnm", "many": 81, "medium": 52, "few": 25, "overall": 52}])
        paths = plots.save(fig, "bars", tmp_path / str(k))
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in paths])
    assert digests[0] == digests[1]
    assert b"/CreationDate" not in (tmp_path / "0" / "bars.pdf").read_bytes()


def test_palette_is_fixed_per_method():
    assert plots.color("gnm") == plots.color("GNM") != plots.color("sam")


def test_landscape_figures_build(tmp_path):
    fig = plots.surfaces_2d({"sgd": _surface(0), "gnm": _surface(1)})
    assert len(fig.axes) >= 4
    plots.save(fig, "land", tmp_path)
    assert (tmp_path / "land.png").stat().st_size > 1000


def test_landscape_explorer_headless():
    pytest.importorskip("ipywidgets")
    from ltlab.widgets import LandscapeExplorer

    w = LandscapeExplorer({("sgd", "all"): _surface(0), ("gnm", "all"): _surface(1), ("gnm", "few"): _surface(2)})
    x, before = w.slice()
    w.controls["method"].value = "gnm"
    w.controls["row"].value = 1
    _, after = w.slice()
    assert not np.array_equal(before, after)
    assert np.array_equal(after, _surface(1).loss[1])
    # head vs tail side by side, on one colour scale with a colourbar
    assert [g for g, _ in w.panels()] == ["all", "few"]
    lo = min(_surface(i).loss.min() for i in range(3))
    hi = max(_surface(i).loss.max() for i in range(3))
    assert w.levels[0] == pytest.approx(lo) and w.levels[-1] == pytest.approx(hi)
    assert len(w.figure.axes) == 4  # two contours, the slice, the colourbar
    w.controls["beside"].value = "none"
    assert len(w.panels()) == 1 and len(w.figure.axes) == 3


def test_playground_explorer_headless():
    pytest.importorskip("ipywidgets")
    from ltlab.widgets import PlaygroundExplorer

    w = PlaygroundExplorer(steps=10)
    first = {n: t.path.copy() for n, t in w.trajectories.items()}
    w.controls["lr"].value = 0.2
    assert set(w.trajectories) == {"sgd", "sam", "rsam", "gnm"}
    assert not np.array_equal(first["sgd"], w.trajectories["sgd"].path)
    w.controls["steps"].value = 15
    assert w.trajectories["gnm"].path.shape == (16, 2)


def test_playground_sgd_goes_to_the_nearest_minimum():
    t = run_optimizer("sgd", lr=0.05, steps=300)
    assert t.basin == "sharp" and t.loss[-1] < t.loss[0]
    g = run_optimizer("gnm", rho=0.0, lr=0.05, steps=300)
    assert np.array_equal(g.path, t.path)  # GNM with rho = 0 is SGD
    import torch

    assert float(two_minima_loss(torch.tensor([0.9, -0.5], dtype=torch.float64))) < 0.3
