"""The fair study: per-method blocks, step diagnostics, validation-only tuning, evaluation and its report."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ltlab.cli import main
from ltlab.config import load_config, method_blocks, method_configs
from ltlab.errors import ConfigError, DataError

TINY = {"base": "synthetic", "epochs": 1, "batch_size": 16, "save_every": 0, "log": ["jsonl"],
        "data": {"num_classes": 5, "n_max": 40, "imbalance_ratio": 5, "val_per_class": 4, "test_per_class": 4},
        "eval": {"train_images": 16, "diagnostics_every": 2}}
T = ["epochs=2", "data.num_classes=5", "data.n_max=40", "data.imbalance_ratio=5", "data.val_per_class=4",
     "data.test_per_class=4", "eval.train_images=16", "batch_size=16", "save_every=0", "log=jsonl"]


def write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# -- per-method blocks ---------------------------------------------------------------------------------------
def test_method_blocks_apply_in_order(tmp_path):
    p = write(tmp_path / "p.yaml", {**TINY, "methods": {"sgd": {"optimizer": {"lr": 0.3}},
                                                       "sam": {"optimizer": {"lr": 0.1, "method": {"rho": 0.02}}}}})
    assert load_config(str(p)).optimizer.lr == 0.3  # the preset's own method (sgd) takes its block
    sam = load_config(str(p), ["optimizer.name=sam"])
    assert (sam.optimizer.lr, sam.optimizer.method["rho"]) == (0.1, 0.02)
    assert load_config(str(p), ["optimizer.name=sam", "optimizer.lr=0.5"]).optimizer.lr == 0.5  # command line wins
    gnm = load_config(str(p), ["optimizer.name=gnm"])  # no block: the preset's lr and the class defaults
    assert gnm.optimizer.lr == 0.2 and gnm.optimizer.method["rho"] == 0.005
    cfgs = method_configs(str(p), ["sgd", "sam", "gnm"], ["epochs=3"])
    assert [c.optimizer.lr for c in cfgs.values()] == [0.3, 0.1, 0.2] and {c.epochs for c in cfgs.values()} == {3}


@pytest.mark.parametrize("methods, words", [
    ({"sma": {"optimizer": {"lr": 0.1}}}, ["methods.sma", "did you mean 'sam'"]),
    ({"sam": {"optimizer": {"method": {"rhoo": 0.1}}}}, ["methods.sam", "rhoo", "rho"]),
    ({"sam": {"data": {"seed": 3}}}, ["methods.sam.data", "shared"]),
    ({"sam": {"optimizer": {"name": "gnm"}}}, ["methods.sam.optimizer.name"]),
    ({"sam": 0.1}, ["methods.sam must be a mapping"]),
])
def test_bad_method_block_names_method_and_option(tmp_path, capsys, methods, words):
    p = write(tmp_path / "p.yaml", {**TINY, "methods": methods})
    with pytest.raises(ConfigError) as e:
        method_blocks(str(p))
    for w in words:
        assert w in str(e.value)
    assert main(["compare", "--config", str(p), "--optimizers", "sgd,sam", "--out", str(tmp_path / "o")]) == 2
    assert words[0] in capsys.readouterr().err


def test_compare_applies_each_methods_block(tmp_path):
    p = write(tmp_path / "p.yaml", {**TINY, "methods": {"sam": {"optimizer": {"lr": 0.07, "method": {"rho": 0.03}}}}})
    assert main(["compare", "--config", str(p), "--optimizers", "sgd,sam", "--out", str(tmp_path / "o"),
                 "--no-progress", "--no-figures"]) == 0
    saved = yaml.safe_load((tmp_path / "o" / "sam-s0" / "config.yaml").read_text())
    assert saved["optimizer"]["lr"] == 0.07 and saved["optimizer"]["method"]["rho"] == 0.03
    assert yaml.safe_load((tmp_path / "o" / "sgd-s0" / "config.yaml").read_text())["optimizer"]["lr"] == 0.2


# -- step diagnostics ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sgd", "sam", "gnm", "rsam", "imbsam"])
def test_diagnostics_leave_the_trajectory_unchanged(tmp_path, name):
    from ltlab.train import fit

    states = {}
    for k in (0, 3):
        out = tmp_path / f"{name}{k}"
        fit(load_config("synthetic", T + [f"optimizer.name={name}", f"eval.diagnostics_every={k}"]), out=out,
            progress=False)
        states[k] = torch.load(out / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(states[0][n], states[3][n]) for n in states[0])
    rows = [json.loads(x) for x in (tmp_path / f"{name}3" / "metrics.jsonl").read_text().splitlines()]
    d = rows[-1]["diag"]
    assert d["steps"] >= 1 and d["grad_norm"] > 0
    assert "diag" not in json.loads((tmp_path / f"{name}0" / "metrics.jsonl").read_text().splitlines()[-1])
    if name == "sgd":
        assert d["rel_perturbation"] == 0 and d["loss_rise"] == 0
    else:
        assert d["rel_perturbation"] > 0
    if name in ("sam", "rsam"):  # an adversarial step raises the loss
        assert d["loss_rise"] > 0


def test_diagnostics_match_a_hand_computation():
    """SAM: ||g(w)||, rho / ||w|| and L(w + e) - L(w) on a quadratic, computed by hand."""
    from ltlab.optim import SAM

    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = SAM([w], torch.optim.SGD, rho=0.5, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure, diagnose=True)
    d = opt.last_diagnostics
    g = torch.tensor([6.0, 8.0])
    e = 0.5 * g / g.norm()
    assert d["grad_norm"] == pytest.approx(10.0)
    assert d["rel_perturbation"] == pytest.approx(0.5 / 5.0)
    assert d["loss_rise"] == pytest.approx(float(((torch.tensor([3.0, 4.0]) + e) ** 2).sum() - 25.0), rel=1e-5)


# -- tuning never reads the test split -----------------------------------------------------------------------
def test_withheld_split_raises():
    from ltlab.data import WithheldSplit

    s = WithheldSplit("test", "tuning", transform="tf")
    assert s.transform == "tf"
    for read in (lambda: len(s), lambda: s[0], lambda: list(s), lambda: s.targets):
        with pytest.raises(DataError, match="withheld"):
            read()


def study_file(tmp_path, **change):
    preset = write(tmp_path / "preset.yaml", TINY)
    data = {"preset": str(preset), "methods": ["sgd", "sam", "gnm"], "tuning_seeds": [0, 1], "lr": [0.05, 0.2],
            "base_lr": [0.02, 0.05, 0.1, 0.2], "options": {"sam": {"rho": [0.01, 0.05]}, "gnm": {"rho": [0.005, 0.05]}},
            "evaluation": {"seeds": [7, 8, 9, 10, 11], "probe_images": 8}}
    data.update(change)
    return write(tmp_path / "study.yaml", data)


def test_tune_selects_on_validation_only(tmp_path, monkeypatch):
    """Tuning completes with every test split withheld (any read raises), picks the best mean validation score,
    and a rerun trains nothing."""
    import ltlab.train.evaluation as evaluation
    from ltlab.experiments.study import load_study, tune

    def no_test(*a, **k):
        raise AssertionError("the test split was evaluated during tuning")

    monkeypatch.setattr(evaluation, "test_report", no_test)
    study = load_study(study_file(tmp_path))
    result = tune(study, tmp_path / "out", progress=False)
    for m, rows in result["grid"].items():
        assert len(rows) == 4
        assert result["selected"][m] == max(rows, key=lambda r: r["mean"])["values"]
        for r in rows:
            assert r["mean"] == pytest.approx(sum(r["scores"]) / 2)
    for p in (tmp_path / "out" / "tune").glob("*/*/summary.json"):
        s = json.loads(p.read_text())
        assert s["test"] is None and "overall" not in s and "per_class" not in s
    tuned = load_config(str(tmp_path / "out" / "tune" / "tuned.yaml"), ["optimizer.name=sam"])
    sel = result["selected"]["sam"]
    assert tuned.optimizer.lr == sel["optimizer.lr"] and tuned.optimizer.method["rho"] == sel["optimizer.method.rho"]
    assert (tmp_path / "out" / "tune" / "tune.png").exists()
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("tune/*/*/summary.json")}
    tune(study, tmp_path / "out", progress=False)
    assert stamp == {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("tune/*/*/summary.json")}


@pytest.mark.parametrize("change, words", [
    ({"base_lr": [0.1, 0.2]}, ["grids differ in size", "sgd 2", "sam 4"]),
    ({"options": {"sam": {"rhoo": [0.1, 0.2]}, "gnm": {"rho": [0.005, 0.05]}}}, ["sam", "rhoo"]),
    ({"options": {"sma": {"rho": [0.1, 0.2]}}}, ["options.sma", "not in methods"]),
    ({"evaluation": {"seeds": [1, 7]}}, ["share [1]", "fresh"]),
    ({"lr": [0.1, 0.1]}, ["repeats a value"]),
    ({"score": "top1"}, ["score='top1'"]),
    ({"endpoint": "tail"}, ["endpoint='tail'", "few"]),
    ({"methods": ["sgd", "sma"]}, ["sma"]),
    ({"evaluation": {"reference": ["linear"]}}, ["evaluation.reference"]),
    ({"contrasts": [["gnm", "asam"]]}, ["contrasts", "asam is not in methods"]),
    ({"contrasts": [["gnm"]]}, ["contrasts", "a pair of methods"]),
    ({"evaluation": {"redraw_data": "false"}}, ["evaluation.redraw_data", "true or false", "'false'"]),
    ({"evaluation": {"probe_images": "many"}}, ["evaluation.probe_images", "positive whole number"]),
    ({"evaluation": {"probe_images": 0}}, ["evaluation.probe_images", "got 0"]),
    ({"evaluation": {"trace_hvps": 2.5}}, ["evaluation.trace_hvps", "positive whole number"]),
    ({"evaluation": {"failure_points": -5}}, ["evaluation.failure_points", "positive number"]),
    ({"tuning_seeds": []}, ["tuning_seeds: expected a non-empty list, e.g. tuning_seeds: [0, 1, 2]; got []"]),
    ({"tuning_seeds": [0.5, 1]}, ["tuning_seeds", "not a whole number"]),  # int(0.5) would silently be seed 0
    ({"evaluation": {"seeds": [100, True]}}, ["evaluation.seeds", "not a whole number"]),
])
def test_bad_study_files(tmp_path, capsys, change, words):
    p = study_file(tmp_path, **change)
    assert main(["tune", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_study_end_to_end(tmp_path):
    """make study in small: tune, evaluate on fresh seeds (each its own task sample), probes, report."""
    p = study_file(tmp_path, methods=["sgd", "sam"], options={"sam": {"rho": [0.01, 0.05]}}, contrasts=[["sam", "sgd"]],
                   endpoint="few", lr=[0.2], base_lr=[0.05, 0.2],
                   evaluation={"seeds": [7, 8, 9, 10], "probe_images": 8, "trace_hvps": 6})
    out = tmp_path / "out"
    assert main(["study", str(p), "--out", str(out), "--no-progress"]) == 0
    text = (out / "study.md").read_text()
    # the declared endpoint is the primary one, in the study's report and in its evaluation runs' report
    assert "few (primary)" in text and "overall (exploratory)" in text and "- **sam** − sgd, few:" in text
    assert "primary endpoint few" in (out / "eval" / "report.md").read_text()
    assert "| sam − sgd |" in text.split("### Direct pairings")[1].split("###")[0]  # the declared contrast
    for words in ("## Tuning (validation)", "Holm", "equal-compute − sgd", "sgd − linear-probe", "Failure rate",
                  "Spearman ρ", "Where each method ends", "| lambda_max | lambda_min | gaussian_sharpness | lambda_max_few |", "Within a seed", "| all methods |", "Minima?", "smallest effect", "‖e‖ / ‖w‖"):
        assert words in text
    assert (out / "figures" / "study_flatness_vs_tail.png").exists() and (out / "figures" / "study_seeds.png").exists()
    probed = [json.loads(q.read_text()) for q in (out / "eval").glob("*/probes/scalars.json")]
    assert len(probed) == 8 and {(q["images_requested"], q["trace_hvps"]) for q in probed} == {(8, 6)}  # as declared
    drawn = {yaml.safe_load((d / "config.yaml").read_text())["data"]["seed"] for d in (out / "eval").glob("sam-s*")}
    assert drawn == {7, 8, 9, 10}  # each evaluation seed its own task sample
    eq = yaml.safe_load((out / "eval" / "equal-compute-s7" / "config.yaml").read_text())
    assert eq["epochs"] == 2 and eq["optimizer"]["name"] == "sgd"
    stamp = {q: q.stat().st_mtime_ns for q in out.glob("**/summary.json")}
    first = json.loads((out / "timing.json").read_text())
    assert main(["study", str(p), "--out", str(out), "--no-progress", "--resume"]) == 0  # trains nothing
    assert stamp == {q: q.stat().st_mtime_ns for q in out.glob("**/summary.json")}
    again = json.loads((out / "timing.json").read_text())  # the wall time adds up over invocations
    assert again["invocations"] == 2 and again["tune"] >= first["tune"] and again["evaluate"] >= first["evaluate"]
    assert "summed over 2 invocations" in (out / "study.md").read_text()


def test_runs_of_one_seed_on_different_draws_are_refused(tmp_path):
    from ltlab.train import fit
    from ltlab.results import finished_runs

    fit(load_config("synthetic", T + ["epochs=1"]), out=tmp_path / "sgd-s0", progress=False)
    fit(load_config("synthetic", T + ["epochs=1", "optimizer.name=gnm", "data.seed=4"]), out=tmp_path / "gnm-s0",
        progress=False)
    with pytest.raises(DataError, match="different task samples"):
        finished_runs(tmp_path)


def test_within_seed_spearman_removes_what_the_task_draw_moves():
    # each seed's draw lifts x and lowers y together (a pooled rank correlation sees a strong negative trend);
    # within a seed, y rises with x. The centred correlation must see the within-seed sign, with an interval
    from ltlab.reports.study import spearman, within_seed_spearman

    rng = np.random.default_rng(3)
    x, y, seeds = [], [], []
    for s in range(12):
        draw = 10.0 * s
        for u in rng.permutation(3):
            x.append(draw + u + 0.1 * rng.standard_normal())
            y.append(-draw + u + 0.1 * rng.standard_normal())
            seeds.append(s)
    assert spearman(x, y)[0] < -0.8
    rho, lo, hi = within_seed_spearman(x, y, seeds)
    assert rho > 0.8 and 0 < lo <= rho <= hi
    # unrelated within seeds: the interval holds zero
    noise = list(rng.standard_normal(len(x)))
    rho0, lo0, hi0 = within_seed_spearman(x, noise, seeds)
    assert lo0 < 0 < hi0
    assert math.isnan(within_seed_spearman(x[:9], y[:9], seeds[:9])[1])  # 3 seeds: too few for an interval


def test_within_seed_spearman_gives_no_interval_when_only_one_seed_varies():
    from ltlab.reports.study import within_seed_spearman

    seeds = [s for s in range(6) for _ in range(3)]
    x = [1.0, 2.0, 3.0] + [5.0] * 15  # only seed 0's runs differ: most resamples are constant
    y = [1.0, 3.0, 2.0] + [7.0] * 15
    rho, lo, hi = within_seed_spearman(x, y, seeds, reps=3, rng_seed=6)  # rng 6: no resample holds seed 0
    assert rho == pytest.approx(0.5) and math.isnan(lo) and math.isnan(hi)


def test_flatness_tables_warn_when_methods_ran_at_another_lr():
    """Curvature at the end point moves with the lr: a report comparing methods selected at different lr says so,
    naming each lr; at one lr it does not."""
    from ltlab.reports.study import _flatness_lines
    from ltlab.results.tables import lr_sentence

    rows = [{"label": m, "optimizer": m, "seed": s, "lambda_max": 10.0 + s + (m == "gnm"), "lambda_min": -1.0,
             "gaussian_sharpness": 0.01, "lambda_max_few": 20.0 + 2 * s} for m in ("sgd", "gnm") for s in range(3)]
    differ = "\n".join(_flatness_lines(rows, ["sgd", "gnm"], {"sgd": 0.01, "gnm": 0.005}))
    assert "Learning rates: sgd 0.01, gnm 0.005. gnm ran at another lr than sgd" in differ and "| gnm | 3 |" in differ
    same = "\n".join(_flatness_lines(rows, ["sgd", "gnm"], {"sgd": 0.01, "gnm": 0.01}))
    assert "Learning rates" not in same and same in differ
    three = lr_sentence({"sgd": 0.2, "sam": 0.2, "rsam": 0.1, "gnm": 0.05}, "sgd")
    assert "rsam, gnm ran at another lr than sgd" in three and "their flatness differences mix" in three
    assert lr_sentence({"sgd": 0.2, "legacy": None}, "sgd") == ""  # a run without optimizer.lr is not compared
    assert lr_sentence({"sgd": 0.2, "linear-probe": 0.1}, "sgd") == ""  # a reference row is not a method


def test_tuning_table_marks_the_choice_and_says_how_sure_it_is():
    """▶ on the highest mean (ties: the first in grid order); the margin over the runner-up is paired by tuning seed,
    so a choice ahead on every seed resolves and one that wins on average only does not."""
    from ltlab.results.tables import tuning_table

    def row(i, scores):
        return {"id": i, "scores": scores, "mean": float(np.mean(scores)), "sd": float(np.std(scores, ddof=1))}

    grid = {"sgd": [row("lr0.1", [80.0, 81.0, 79.0]), row("lr0.2", [83.0, 84.1, 81.9])],
            "gnm": [row("a", [70.0, 90.0, 80.0]), row("b", [86.0, 74.0, 80.3]), row("c", [86.0, 74.0, 80.3])]}
    text = "\n".join(tuning_table(grid))
    assert "| sgd | ▶ lr0.2 |" in text and "| sgd | lr0.1 | 80.00 ± 1.00 |" in text
    assert "| sgd | lr0.2 | lr0.1 | +3.00 [+2.75, +3.25] better |" in text  # paired: the seed-to-seed swing cancels
    assert "| gnm | ▶ b |" in text and "| gnm | ▶ c |" not in text  # a tie goes to the first in grid order
    assert "| gnm | b | c | +0.00 [+0.00, +0.00] no resolved difference |" in text
