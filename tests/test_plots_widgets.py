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
        fig = plots.group_bars([{"label": "sgd", "many": 80, "medium": 50, "few": 20, "overall": 50},
                                {"label": "gnm", "many": 81, "medium": 52, "few": 25, "overall": 52}])
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
    before = {n: t.path.copy() for n, t in w.trajectories.items()}
    w.controls["sam_rho"].value = 0.8  # one method's radius moves only that method
    assert not np.array_equal(before["sam"], w.trajectories["sam"].path)
    assert np.array_equal(before["gnm"], w.trajectories["gnm"].path)
    w.controls["rsam_sigma"].value = 0.3
    assert not np.array_equal(before["rsam"], w.trajectories["rsam"].path)
    w.controls["steps"].value = 20
    assert w.trajectories["gnm"].path.shape == (21, 2) and w.step.max == 20
    kept = {n: t.path for n, t in w.trajectories.items()}
    w.step.value = 5  # walking the steps redraws without re-running
    assert all(w.trajectories[n].path is kept[n] for n in kept)
    assert "step 5" in w.figure.axes[0].get_legend().get_texts()[0].get_text()


def test_playground_sgd_goes_to_the_nearest_minimum():
    t = run_optimizer("sgd", lr=0.05, steps=300)
    assert t.outcome == "sharp basin" and t.loss[-1] < t.loss[0]
    g = run_optimizer("gnm", rho=0.0, lr=0.05, steps=300)
    assert np.array_equal(g.path, t.path)  # GNM with rho = 0 is SGD
    import torch

    assert float(two_minima_loss(torch.tensor([0.9, -0.5], dtype=torch.float64))) < 0.3


@pytest.mark.parametrize("call, words", [
    (lambda pg: pg.run_optimizer("gnm", steps=0), "steps=0"),
    (lambda pg: pg.run_optimizer("sgd", start=(1,)), "two numbers"),
    (lambda pg: pg.max_over_ball_grid(-1), "rho=-1"),
    (lambda pg: pg.loss_grid(points=1), "points=1"),
    (lambda pg: pg.sweep(seeds=[]), "at least one seed"),
    (lambda pg: pg.sweep(names=["nosuch"]), "'nosuch' is unknown; choose one of"),
])
def test_playground_bad_arguments_name_the_argument(call, words):
    from ltlab import playground
    from ltlab.errors import ConfigError

    with pytest.raises((ValueError, ConfigError), match=words):
        call(playground)


def test_playground_lesson_defaults_show_each_methods_behaviour():
    """The notebook-00 defaults (chosen by a sweep): SGD stays sharp, SAM / RSAM / GNM reach the flat basin;
    a larger SAM radius stalls. Computed labels, never fixed strings."""
    from ltlab.playground import lesson_runs, outcome

    runs = lesson_runs(seed=0)
    assert runs["sgd"].outcome == "sharp basin"
    for name in ("sam", "rsam", "gnm"):
        assert runs[name].outcome == "flat basin", (name, runs[name].label)
    assert lesson_runs(seed=0, sam_rho=0.8, steps=200)["sam"].outcome == "stalled"
    assert outcome((0.0, 0.0)) == "stalled" and runs["sgd"].label.startswith("sharp basin, L = 0.0")


def test_playground_objectives_match_their_definitions():
    import torch

    from ltlab.playground import gnm_noise, max_over_ball_grid, sam_worst_point, smoothed_grid

    X, Y, Z = max_over_ball_grid(0.3, extent=1.0, points=5)
    L = two_minima_loss(torch.tensor(np.stack([X, Y], -1)))
    assert (Z >= L.numpy() - 1e-12).all()  # the worst case over the ball is never below the centre
    w = np.array([X[2, 3], Y[2, 3]])
    p = sam_worst_point(w, 0.3)
    assert np.isclose(np.linalg.norm(p - w), 0.3) and Z[2, 3] >= float(two_minima_loss(torch.tensor(p))) - 1e-3  # 48 angles
    Xs, Ys, Zs = smoothed_grid(0.5, extent=1.0, points=5, n=64)
    e = gnm_noise(0.5, n=64)
    assert np.isclose(Zs[1, 1], float(two_minima_loss(torch.tensor([Xs[1, 1], Ys[1, 1]]) + e).mean()))
    assert float(e.abs().max()) <= 0.5


def test_whiskers_are_the_paired_interval_read_against_the_base_line():
    """group_bars with effects: each method's whisker is its paired interval (method − base) around its own mean,
    so it clears the base's dashed line exactly when the interval excludes 0; the base gets the line, no whisker;
    std whiskers are not drawn; n < 2 draws no whisker."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from ltlab.results import paired_table

    base = [70.0, 72.0, 74.0, 76.0]
    rows = ([{"label": "sgd", "seed": s, "overall": v} for s, v in enumerate(base)]
            + [{"label": "gnm", "seed": s, "overall": v + d} for s, (v, d) in enumerate(zip(base, (3, 5, 4, 4)))]
            + [{"label": "sam", "seed": s, "overall": v + d} for s, (v, d) in enumerate(zip(base, (-3, 4, 1, -2)))]
            + [{"label": "rsam", "seed": 0, "overall": 90.0}])
    effects = paired_table(rows, "sgd", metrics=("overall",))
    agg = [{"label": n, "overall": float(np.mean([r["overall"] for r in rows if r["label"] == n])),
            "overall_std": 9.0} for n in ("sgd", "gnm", "sam", "rsam")]
    fig = plots.group_bars(agg, groups=("overall",), effects=effects, base="sgd")
    ax = fig.axes[0]
    segs = [s for c in ax.collections if isinstance(c, LineCollection) and c.get_linestyle()[0][1] is None
            for s in c.get_segments()]
    spans = sorted((round(s[0][1], 6), round(s[1][1], 6)) for s in segs if abs(s[0][0] - s[1][0]) < 1e-12)
    want = sorted((round(m + d.lo - d.mean, 6), round(m + d.hi - d.mean, 6))
                  for m, d in ((a["overall"], effects[a["label"]]["overall"]) for a in agg[1:3]))
    assert spans == want  # two whiskers (gnm, sam); none for the base or for rsam's single seed; no std whiskers
    dashed = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_linestyle()[0][1] is not None]
    assert len(dashed) == 1 and dashed[0].get_segments()[0][0][1] == pytest.approx(73.0)
    gnm, sam = effects["gnm"]["overall"], effects["sam"]["overall"]
    assert gnm.lo > 0 and sam.lo < 0 < sam.hi  # gnm's whisker clears the line, sam's crosses it
    assert min(spans[1]) > 73.0 and spans[0][0] < 73.0 < spans[0][1]
    plt.close(fig)


def test_paired_table_with_references_keeps_holm_over_the_methods():
    from ltlab.results import paired_table

    rows = [{"label": n, "seed": s, "overall": v + s * 0.7 * (n == "gnm")}
            for s in range(4) for n, v in (("sgd", 70.0), ("gnm", 71.0), ("sam", 70.5), ("linear-probe", 60.0))]
    plain = paired_table(rows, "sgd", metrics=("overall",))
    both = paired_table(rows, "sgd", metrics=("overall",), references=True)
    assert list(plain) == ["gnm", "sam"] and list(both) == ["gnm", "sam", "linear-probe"]
    assert [both[n]["overall"].p_holm for n in plain] == [plain[n]["overall"].p_holm for n in plain]
    assert both["linear-probe"]["overall"].p_holm is None and both["linear-probe"]["overall"].mean == pytest.approx(-10)
