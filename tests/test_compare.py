"""The comparison protocol: paired intervals, the last-epoch rule, paired seeds, run directories, the report."""
import json
import math

import numpy as np
import pytest
import torch
import yaml

from ltlab.cli import main
from ltlab.config import load_config
from ltlab.errors import ConfigError, DataError
from ltlab.stats import binomial_stderr, group_stderr, mean_std, paired_difference, t_quantile, verdict
from ltlab.train import Trainer, fit, load_run
from ltlab.results.tables import format_table
from ltlab.results import aggregate, paired_table
from ltlab.experiments.compare import compare

TINY = ["epochs=3", "batch_size=16", "data.num_classes=6", "data.n_max=30", "data.imbalance_ratio=10",
        "data.val_per_class=3", "data.test_per_class=4", "data.many=20", "data.few=6", "model.prompt_length=2",
        "optimizer.lr=0.05", "eval_every=1"]


def tiny_cfg(*extra):
    return load_config("synthetic", TINY + list(extra))


# -- statistics against hand computations ---------------------------------------------------------
def test_t_quantiles_match_tables():
    # two-sided 95 % critical values from any t table
    for df, want in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)]:
        assert t_quantile(0.975, df) == pytest.approx(want, abs=1e-3)
    assert t_quantile(0.025, 4) == pytest.approx(-2.776, abs=1e-3)


def test_paired_interval_against_hand_computation():
    base, other = [50.0, 52.0, 51.0], [51.0, 53.2, 51.9]
    # d = [1.0, 1.2, 0.9]; mean 1.0333; sd = sqrt(((1-m)^2 + (1.2-m)^2 + (0.9-m)^2) / 2) = 0.152753
    # half width = t_{0.975, 2} * sd / sqrt(3) = 4.302653 * 0.152753 / 1.732051 = 0.379460
    d = paired_difference(base, other)
    assert d.n == 3
    assert d.mean == pytest.approx(1.033333, abs=1e-6)
    assert d.std == pytest.approx(0.152753, abs=1e-6)
    assert (d.lo, d.hi) == (pytest.approx(1.033333 - 0.379460, abs=1e-5), pytest.approx(1.033333 + 0.379460, abs=1e-5))
    assert d.verdict == "better"
    assert paired_difference(other, base).verdict == "worse"
    wide = paired_difference([50.0, 52.0, 51.0], [51.0, 53.5, 50.5])  # d = [1, 1.5, -0.5]: straddles 0
    assert wide.lo < 0 < wide.hi and wide.verdict == "no resolved difference"


def test_verdict_directions_and_single_seed():
    assert verdict(0.1, 0.5, higher_is_better=False) == "worse"  # e.g. ECE went up
    assert verdict(-3.0, -1.0, higher_is_better=None) == "lower"  # curvature has no good direction
    one = paired_difference([50.0], [55.0])
    assert one.n == 1 and one.verdict == "" and math.isnan(one.lo) and "no interval" in one.format()


def test_nan_values_are_dropped_not_fatal():
    # CPU runs have NaN peak CUDA memory; statistics.stdev would raise on it
    assert mean_std([float("nan"), float("nan")])[2] == 0
    d = paired_difference([1.0, float("nan"), 2.0, 3.0], [2.0, 5.0, 3.5, 3.5])
    assert d.n == 3 and d.mean == pytest.approx(1.0)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    base = [50.0, 51.0, 52.0, 49.0, 50.5, 51.5]
    other = [51.0, 52.5, 52.5, 50.0, 51.0, 53.0]
    a = paired_difference(base, other, method="bootstrap")
    b = paired_difference(base, other, method="bootstrap")
    assert (a.lo, a.hi) == (b.lo, b.hi) and a.lo <= a.mean <= a.hi
    assert a.verdict == "better"  # every difference is positive


def test_standard_errors():
    assert binomial_stderr(50.0, 10_000) == pytest.approx(0.5)
    assert group_stderr([50.0] * 4, [100] * 4) == pytest.approx(100 * math.sqrt(4 * 0.25 / 100) / 4)


def test_embedded_task_has_enough_evaluation_power():
    # the target: one run's standard error <= 0.5 points overall and <= 1 point on the few classes
    cfg = load_config("synthetic")
    from ltlab.data import class_splits, longtail_counts

    counts = longtail_counts(cfg.data.num_classes, cfg.data.n_max, cfg.data.imbalance_ratio)
    few = class_splits(counts, cfg.data.many, cfg.data.few)["few"]
    n = cfg.data.test_per_class
    assert binomial_stderr(50.0, n * cfg.data.num_classes) <= 0.5  # worst case p = 0.5
    assert group_stderr([50.0] * len(few), [n] * len(few)) <= 1.0
    assert cfg.data.val_per_class >= n  # validation as strong as test


# -- the selection rule -----------------------------------------------------------------------------
def _val_peaks_at_epoch_1(monkeypatch):
    original = Trainer.evaluate

    def fake(self, split="val"):
        m = original(self, split)
        if split == "val":  # make epoch 1 the best on validation whatever the training did
            m["overall"] = 90.0 if self.state.epoch == 0 else 10.0
        return m

    monkeypatch.setattr(Trainer, "evaluate", fake)


def test_last_epoch_rule_reports_the_last_epoch(tmp_path, monkeypatch):
    _val_peaks_at_epoch_1(monkeypatch)
    s = fit(tiny_cfg(), out=tmp_path / "run", progress=False)
    assert s["select"] == "last" and s["epoch"] == 3 and s["checkpoint"] == "last"
    assert s["best_val"]["epoch"] == 1 and s["last"]["epoch"] == 3
    assert s["overall"] == s["last"]["overall"]
    assert set(s["stderr"]) == {"overall", "many", "medium", "few"}


def test_best_val_rule_is_opt_in_and_reports_its_epoch(tmp_path, monkeypatch):
    _val_peaks_at_epoch_1(monkeypatch)
    s = fit(tiny_cfg("eval.select=best_val"), out=tmp_path / "run", progress=False)
    assert s["select"] == "best_val" and s["epoch"] == 1 and s["checkpoint"] == "best"
    assert s["overall"] == s["best_val"]["overall"]
    ck = torch.load(tmp_path / "run/checkpoints/best.pt", weights_only=False)
    assert ck["epoch"] == 1


def test_best_val_ties_keep_the_earlier_epoch(tmp_path, monkeypatch):
    original = Trainer.evaluate

    def fake(self, split="val"):  # epochs 2 and 3 tie on validation
        m = original(self, split)
        if split == "val":
            m["overall"] = 10.0 if self.state.epoch == 0 else 50.0
        return m

    monkeypatch.setattr(Trainer, "evaluate", fake)
    s = fit(tiny_cfg("eval.select=best_val"), out=tmp_path / "run", progress=False)
    assert s["best_val"]["epoch"] == 2 and s["epoch"] == 2


def test_metrics_log_the_loss_at_w_beside_the_step_loss(tmp_path):
    fit(tiny_cfg("optimizer.name=gnm", "optimizer.method.rho=0.05"), out=tmp_path / "run", progress=False)
    rows = load_run(tmp_path / "run").metrics
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["train_ce_at_w"] > 0 and r["step_loss"] > 0 for r in rows)
    assert "train_loss" not in rows[0]  # the ambiguous name is gone


# -- paired seeds -------------------------------------------------------------------------------------
def test_seeds_pair_data_order_init_and_augmentation(tmp_path):
    # GNM with rho = 0 is the base optimizer; if seed s gave both the same data order, initialisation and
    # augmentation, every paired difference is exactly zero
    cfg = tiny_cfg("epochs=2", "optimizer.name=gnm", "optimizer.method.rho=0", "model.dropout=0.1")
    base = cfg.optimizer.base  # what GNM wraps
    rows = compare(cfg, [base, "gnm"], seeds=2, out=tmp_path, progress=False)
    by = {(r["optimizer"], r["seed"]): r for r in rows}
    for s in (0, 1):
        assert by[("gnm", s)]["overall"] == by[(base, s)]["overall"]
        a = torch.load(tmp_path / f"{base}-s{s}/checkpoints/last.pt", weights_only=False)["model"]
        b = torch.load(tmp_path / f"gnm-s{s}/checkpoints/last.pt", weights_only=False)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    # and the two seeds really differ
    assert not torch.equal(torch.load(tmp_path / f"{base}-s0/checkpoints/last.pt", weights_only=False)["model"]["prompts"],
                           torch.load(tmp_path / f"{base}-s1/checkpoints/last.pt", weights_only=False)["model"]["prompts"])
    table = format_table(aggregate(rows), paired_table(rows, base))
    assert "+0.00 [+0.00, +0.00]" in table


# -- run directories are never mixed -------------------------------------------------------------------
def test_fresh_run_into_existing_run_is_refused(tmp_path, capsys):
    fit(tiny_cfg("epochs=1"), out=tmp_path / "run", progress=False)
    with pytest.raises(DataError, match="--overwrite"):
        fit(tiny_cfg("epochs=1"), out=tmp_path / "run", progress=False)
    assert main(["train", *TINY, "epochs=1", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err


def test_overwrite_starts_over_cleanly(tmp_path):
    first = fit(tiny_cfg("epochs=2"), out=tmp_path / "run", progress=False)
    (tmp_path / "run/probes").mkdir()
    (tmp_path / "run/probes/eig.npz").write_bytes(b"stale")
    again = fit(tiny_cfg("epochs=2"), out=tmp_path / "run", progress=False, overwrite=True)
    run = load_run(tmp_path / "run")
    assert [r["epoch"] for r in run.metrics] == [1, 2]  # not 4 rows
    assert not (tmp_path / "run/probes").exists()
    assert again["per_class"] == first["per_class"]


def test_resume_continues_and_resume_plus_overwrite_is_refused(tmp_path):
    fit(tiny_cfg("epochs=2"), out=tmp_path / "run", progress=False)
    with pytest.raises(DataError, match="contradict"):
        fit(tiny_cfg("epochs=2"), out=tmp_path / "run", progress=False, resume=True, overwrite=True)
    s = fit(tiny_cfg("epochs=2"), out=tmp_path / "run", progress=False, resume=True)  # nothing left to train
    assert s["epoch"] == 2 and len(load_run(tmp_path / "run").metrics) == 2


def test_output_path_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["train", *TINY, "--out", str(f), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err


# -- per-class probes measure head and tail alike -------------------------------------------------------
def test_per_class_probes_use_equal_counts():
    from ltlab.probes import per_class

    sizes = {0: 50, 1: 10, 2: 3}

    class DS:
        targets = np.array([c for c, n in sizes.items() for _ in range(n)])

        def __len__(self):
            return len(self.targets)

        def __getitem__(self, i):
            return torch.full((2,), float(i)), int(self.targets[i])

    seen = []

    def probe(model, loss_fn, batch, seed=0):
        seen.append(len(batch[1]))
        from ltlab.probes.results import TraceResult

        return TraceResult(float(batch[0].mean()), 0.0, 0, 0.0, "fake", np.zeros(1))

    r = per_class(probe, torch.nn.Linear(2, 3), None, DS(), class_counts=[50, 10, 3], max_per_class=32)
    assert seen == [3, 3, 3] and r.images_per_class == 3
    seen.clear()
    per_class(probe, torch.nn.Linear(2, 3), None, DS(), class_counts=[50, 10, 3], max_per_class=32, equal=False)
    assert seen == [32, 10, 3]


# -- the report --------------------------------------------------------------------------------------------
def test_compare_cli_writes_report_with_intervals(tmp_path, capsys):
    rc = main(["compare", "--optimizers", "adamw,gnm", "--seeds", "2", "--out", str(tmp_path / "cmp"),
               "--no-progress", *TINY, "epochs=1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "last epoch" in out and "mean ± std over 2 seeds" in out and "| gnm | 2 |" in out
    report = (tmp_path / "cmp/report.md").read_text()
    assert "Paired difference to adamw" in report and "[" in report and "Best-on-validation" in report
    assert (tmp_path / "cmp/figures/headtail_synthetic.png").exists()
    assert len((tmp_path / "cmp/summary.csv").read_text().splitlines()) == 5
    # a second compare into the same directory is refused; --overwrite starts over
    assert main(["compare", "--optimizers", "adamw", "--out", str(tmp_path / "cmp"), "--no-progress",
                 *TINY, "epochs=1"]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("args,text", [(["--seeds", "0"], "at least one seed"),
                                       (["--optimizers", ","], "at least one optimizer"),
                                       (["--optimizers", "adamw,nope"], "'nope' is unknown"),
                                       (["--probe", "--images", "0"], "--images 0: need at least 1"),
                                       (["--probe", "--trace-hvps", "0"], "--trace-hvps 0: need at least 1")])
def test_compare_rejects_empty_or_bad_requests(tmp_path, capsys, args, text):
    assert main(["compare", *args, "--out", str(tmp_path / "c"), "--no-progress", *TINY]) == 2
    assert text in capsys.readouterr().err
    assert not (tmp_path / "c" / "report.md").exists()


def test_report_refuses_empty_missing_and_mixed_directories(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    fit(tiny_cfg("epochs=1"), out=tmp_path / "mixed/adamw-s0", progress=False)
    fit(tiny_cfg("epochs=1", "data.imbalance_ratio=5"), out=tmp_path / "mixed/gnm-s0", progress=False)
    assert main(["report", str(tmp_path / "mixed")]) == 2
    err = capsys.readouterr().err
    assert "different tasks" in err and "differ in data.imbalance_ratio: 10.0 -> 5.0)" in err, err  # names the key


def test_single_seed_report_prints_no_verdict(tmp_path):
    from ltlab.reports.comparison import write_report

    compare(tiny_cfg("epochs=1"), ["adamw", "gnm"], seeds=1, out=tmp_path, progress=False)
    text = write_report(tmp_path, figures=False).markdown
    assert "one seed only, so no interval and no verdict" in text
    assert "; 1 epoch; optimizer base" in text and "(1 epoch); one seed (0)" in text  # not "1 epochs"
    assert "better" not in text.split("## What the intervals say")[1].split("##")[0]
    assert json.loads((tmp_path / "gnm-s0/summary.json").read_text())["select"] == "last"


def test_reuse_keeps_matching_runs_and_replaces_stale_ones(tmp_path):
    compare(tiny_cfg("epochs=1"), ["adamw"], seeds=1, out=tmp_path, progress=False, reuse=True)
    mtime = (tmp_path / "adamw-s0/summary.json").stat().st_mtime_ns
    compare(tiny_cfg("epochs=1"), ["adamw"], seeds=1, out=tmp_path, progress=False, reuse=True)
    assert (tmp_path / "adamw-s0/summary.json").stat().st_mtime_ns == mtime  # reused, not retrained
    rows = compare(tiny_cfg("epochs=2"), ["adamw"], seeds=1, out=tmp_path, progress=False, reuse=True)
    assert rows[0]["epoch"] == 2 and len(load_run(tmp_path / "adamw-s0").metrics) == 2  # stale run replaced


def test_notebook_runs_reads_a_foreign_directory_and_trains_only_into_its_own(tmp_path):
    from ltlab.errors import ConfigError
    from ltlab.notebook import notebook_runs

    foreign = tmp_path / "foreign"
    compare(tiny_cfg("epochs=1"), ["adamw", "gnm"], seeds=1, out=foreign, progress=False)
    before = {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()}
    nb = notebook_runs(foreign, tiny_cfg("epochs=2"), ["adamw", "sam"], seeds=2, progress=False)
    assert not nb.own and nb.methods == ["adamw", "gnm"] and nb.base == "adamw" and len(nb.rows) == 2
    assert {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()} == before  # nothing written or trained
    own = tmp_path / "own"
    nb = notebook_runs(own, tiny_cfg("epochs=1"), ["adamw", "gnm"], seeds=1, progress=False)
    assert nb.own and nb.methods == ["adamw", "gnm"]
    mtime = (own / "gnm-s0/summary.json").stat().st_mtime_ns
    nb = notebook_runs(own, tiny_cfg("epochs=1"), ["adamw", "gnm", "sam"], seeds=1, progress=False)  # only sam new
    assert nb.methods == ["adamw", "sam", "gnm"] and (own / "gnm-s0/summary.json").stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="--overwrite"):  # a run of another config is never replaced
        notebook_runs(own, tiny_cfg("epochs=2"), ["adamw"], seeds=1, progress=False)


def test_training_path_lies_on_its_own_pca_plane(tmp_path):
    """save_every=1 records the path; the plane's centre is the last epoch and the path ends at (0, 0)."""
    from ltlab.results.probing import load_probe_inputs, training_path
    from ltlab.train import fit, load_run

    fit(tiny_cfg("epochs=4", "save_every=1"), out=tmp_path / "run", progress=False)
    assert len(load_run(tmp_path / "run").epoch_states()) == 4
    model, loss, batch, *_ = load_probe_inputs(tmp_path / "run", 16, which="last")
    surface, (coords, ev) = training_path(tmp_path / "run", model, loss, batch, steps=5)
    assert coords.shape == (4, 2) and np.allclose(coords[-1], 0) and 0.5 < ev.sum() <= 1 + 1e-9
    with torch.no_grad():
        at_w = float(loss(model(batch[0]), batch[1]))
    assert surface.loss[2, 2] == pytest.approx(at_w, rel=1e-5)  # the centre is the trained weights exactly
    assert np.ptp(surface.loss) > 0
    fit(tiny_cfg("epochs=2", "save_every=0"), out=tmp_path / "nopath", progress=False)
    with pytest.raises(DataError, match="save_every=1"):
        load_run(tmp_path / "nopath").epoch_states()


# -- the linear-probe reference and multiplicity (issue 21) ---------------------------------------------------
def test_p_value_and_holm_against_hand_computation():
    from ltlab.stats import holm, with_holm

    # d = [1.0, 1.2, 0.9]: t = 1.033333 / (0.152753 / sqrt 3) = 11.7169; two-sided p (df 2) = 0.0072054
    # (scipy.stats.ttest_rel gives 0.007205446)
    d = paired_difference([50.0, 52.0, 51.0], [51.0, 53.2, 51.9])
    assert d.p == pytest.approx(0.0072054, abs=1e-6)
    # Holm by hand: sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03; max(0.03, 2 x 0.03) = 0.06; max(0.06, 1 x 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, float("nan")])[0] == 0.5 and math.isnan(holm([0.5, float("nan")])[1])
    # an interval that excludes 0 alone loses its word once four such comparisons share the 5 %
    single = paired_difference([50.0, 52.0, 51.0], [51.0, 52.4, 52.6])  # p ~ 0.10: not resolved alone either
    strong = paired_difference([50.0, 52.0, 51.0], [51.0, 53.1, 52.05])  # p ~ 0.0008 alone
    weak = paired_difference([50.0, 52.0, 51.0], [51.0, 53.4, 51.7])  # excludes 0 alone, p = 0.0364
    assert weak.verdict == "better" and 0.01 < weak.p < 0.05
    adj = with_holm([strong, weak, single, single])
    assert adj[0].verdict == "better" and adj[0].p_holm == pytest.approx(4 * strong.p)
    assert adj[1].verdict == "no resolved difference" and adj[1].p_holm > 0.05
    assert "Holm p" in adj[1].format()


def test_a_declared_endpoint_moves_holm_and_the_labels():
    """A study may declare a tail metric as its primary endpoint: Holm then covers that column, the table
    labels it primary and the multiplicity sentence names it; overall becomes exploratory."""
    from ltlab.results import paired_table
    from ltlab.stats import with_holm

    rows = [{"label": n, "optimizer": n, "seed": s, "overall": 70.0 + d * (1 + 0.1 * s),
             "few": 50.0 + 2 * d * (1 + 0.2 * s), "sec_per_step": 0.1}
            for s in range(4) for n, d in (("sgd", 0.0), ("gnm", 1.0), ("sam", 0.3))]
    plain = paired_table(rows, "sgd", metrics=("overall", "few"))
    few = paired_table(rows, "sgd", metrics=("overall", "few"), endpoint="few")
    for n in ("gnm", "sam"):
        assert few[n]["overall"].p_holm is None and plain[n]["few"].p_holm is None
        assert few[n]["few"].p_holm == pytest.approx(with_holm([plain[m]["few"] for m in ("gnm", "sam")])[
            ("gnm", "sam").index(n)].p_holm)
    table = format_table(aggregate(rows), few, columns=("overall", "few"), endpoint="few")
    assert "few (primary)" in table and "overall (exploratory)" in table
    assert "2 primary intervals (few accuracy;" in table

def test_linear_probe_reference_shares_everything_but_the_prompts(tmp_path):
    from ltlab.config import to_dict
    from ltlab.reports.comparison import write_report

    cfg = tiny_cfg("epochs=1")
    bn = cfg.optimizer.base  # the base method: VPT with the preset's base optimizer
    rows = compare(cfg, [bn, "gnm"], seeds=2, out=tmp_path, progress=False, reference="linear")
    assert [r["label"] for r in rows] == [bn, bn, "gnm", "gnm", "linear-probe", "linear-probe"]
    base, probe = load_run(tmp_path / f"{bn}-s0"), load_run(tmp_path / "linear-probe-s0")

    def flat(d, prefix=""):
        return {k2: v2 for k, v in d.items()
                for k2, v2 in (flat(v, prefix + k + ".").items() if isinstance(v, dict) else [(prefix + k, v)])}

    a, b = flat(base.config), flat(probe.config)
    assert {k for k in a if a[k] != b[k]} == {"model.prompt_length", "label"}
    assert (a["model.prompt_length"], b["model.prompt_length"], b["label"]) == (2, 0, "linear-probe")
    assert probe.summary["optimizer"] == bn and probe.summary["label"] == "linear-probe"
    assert probe.summary["parameters"]["trainable"] < base.summary["parameters"]["trainable"]
    assert flat(to_dict(tiny_cfg("epochs=1"))).keys() == a.keys()
    text = write_report(tmp_path, figures=True).markdown
    headline = text.split("## Headline")[1].split("## What")[0]
    assert "| linear-probe | 2 |" in headline and f"{bn} (VPT) − linear-probe" in headline
    assert "| linear-probe |" not in headline.split(f"Paired difference to {bn}")[1]  # a reference, not a method
    assert "This table holds 1 primary interval (" in headline and "3 exploratory intervals" in headline
    assert "over the 1 method," in headline
    assert "(Holm p" in headline


def test_report_leaves_the_probe_out_of_flatness_and_says_why(tmp_path):
    from ltlab.reports.comparison import write_report
    from ltlab.results import FLATNESS

    compare(tiny_cfg("epochs=1"), ["sgd", "sam"], seeds=2, out=tmp_path, progress=False, reference="linear")
    for p in tmp_path.glob("*-s*/"):
        if not p.name.startswith("linear-probe"):  # what compare --probe saves, written by hand here
            (p / "probes").mkdir(exist_ok=True)
            (p / "probes/scalars.json").write_text(json.dumps({c: 1.0 + len(p.name) for c in FLATNESS}))
    text = write_report(tmp_path, figures=False).markdown
    flat = text.split("## Flatness probes")[1]
    assert "The linear probe is left out" in flat and "| linear-probe |" not in flat
    assert "| sam | 2 |" in flat
    assert "Learning rates" not in flat  # one lr: nothing to warn about
    for p in tmp_path.glob("sam-s*/config.yaml"):  # sam at half the lr: its curvature mixes method and lr
        cfg = yaml.safe_load(p.read_text())
        cfg["optimizer"]["lr"] /= 2
        p.write_text(yaml.safe_dump(cfg))
    flat = write_report(tmp_path, figures=False).markdown.split("## Flatness probes")[1]
    assert "sam ran at another lr than" in flat and "linear-probe ran" not in flat


# -- run directories written before optimizer.method existed --------------------------------------------------
OLD_OPTIMIZER_KEYS = {"rho": None, "sigma": None, "truncate": 1.0, "eta": 0.01, "schedule": "cosine",
                      "warmup_epochs": 0.0, "asam_adaptive_on": "all", "rsam_mix": "gradient", "sigma_end": None,
                      "rho_schedule": "constant", "rho_min": 0.0, "clip_grad_norm": None, "tail_threshold": 20,
                      "flat_ratio": 0.5, "flat_gamma": 5.5, "sharpness": 0.8, "gnm_halve_at_drw": False,
                      "gnm_epoch0_doubling": False}


def _as_old_run(run_dir, **old):
    """Rewrite a run's config.yaml and checkpoint config the way ltlab wrote them before optimizer.method."""
    import yaml

    def old_form(cfg):
        oc = dict(cfg["optimizer"])
        oc.pop("method")
        cfg["optimizer"] = {**oc, **OLD_OPTIMIZER_KEYS, **old}
        return cfg

    (run_dir / "config.yaml").write_text(yaml.safe_dump(old_form(yaml.safe_load((run_dir / "config.yaml").read_text())),
                                                        sort_keys=False))
    ck = torch.load(run_dir / "checkpoints/last.pt", weights_only=False)
    ck["config"] = old_form(ck["config"])
    torch.save(ck, run_dir / "checkpoints/last.pt")


def test_runs_written_before_optimizer_method_still_load(tmp_path, capsys):
    from ltlab.reports.comparison import write_report
    from ltlab.experiments.compare import finished_with

    rows = compare(tiny_cfg("epochs=1", "optimizer.name=gnm", "optimizer.method.rho=0.05"), ["sgd", "gnm"],
                   seeds=1, out=tmp_path, progress=False)
    _as_old_run(tmp_path / "gnm-s0", rho=0.05)
    _as_old_run(tmp_path / "sgd-s0")
    run = load_run(tmp_path / "gnm-s0")
    assert "rho" in run.config["optimizer"] and "method" not in run.config["optimizer"]
    model, data, loss = run.build()  # config_from_dict maps the old keys
    # the old config is the same run as today's: a compare with reuse keeps it, report and probe read it
    assert finished_with(tmp_path / "gnm-s0", tiny_cfg("epochs=1", "optimizer.name=gnm", "optimizer.method.rho=0.05"))
    assert not finished_with(tmp_path / "gnm-s0", tiny_cfg("epochs=1", "optimizer.name=gnm"))
    assert "| gnm | 1 |" in write_report(tmp_path, figures=False).markdown
    assert main(["probe", str(tmp_path / "gnm-s0"), "--what", "eig", "--images", "8", "--no-progress"]) == 0
    assert rows[1]["overall"] == json.loads((tmp_path / "gnm-s0/summary.json").read_text())["overall"]
    # an old key on the command line names the exact rename
    assert main(["train", *TINY, "optimizer.name=gnm", "optimizer.rho=0.1", "--out", str(tmp_path / "x")]) == 2
    assert "write optimizer.method.rho=0.1" in capsys.readouterr().err
    # an old key that the method never had is refused with the rename, not dropped
    with pytest.raises(ConfigError, match="optimizer.method.tail_threshold"):
        from ltlab.config import config_from_dict

        config_from_dict({"optimizer": {"name": "sam", "tail_threshold": 5}})


def test_resume_of_a_run_checkpointed_before_optimizer_method(tmp_path):
    cfg = tiny_cfg("epochs=2", "optimizer.name=sam", "optimizer.method.rho=0.1")
    full = fit(cfg, out=tmp_path / "full", progress=False)

    def stop_after_epoch_1(trainer, row):
        raise RuntimeError("cut")

    with pytest.raises(RuntimeError, match="cut"):  # last.pt of epoch 1 is on disk
        fit(cfg, out=tmp_path / "cut", progress=False, callbacks=(stop_after_epoch_1,))
    _as_old_run(tmp_path / "cut", rho=0.1)
    resumed = fit(cfg, out=tmp_path / "cut", resume=True, progress=False)
    assert resumed["overall"] == full["overall"]
    a = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "cut/checkpoints/last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_equal_compute_reference_stretches_the_whole_schedule():
    # the base run for twice the epochs: DRW and the warm-up start at the same fraction of training, so a
    # GCL + DRW base is compared with itself re-weighted as long, not for 9 of 16 epochs
    from ltlab.experiments.compare import reference_config

    cfg = load_config("synthetic_gcl", ["optimizer.warmup_epochs=0.5"])
    ref = reference_config(cfg, "compute")
    assert (ref.epochs, ref.loss.drw_epoch, ref.optimizer.warmup_epochs) == (16, 14, 1.0)
    assert (ref.loss.name, ref.model.head, ref.optimizer.lr) == ("gcl", "cosine", cfg.optimizer.lr)
    plain = reference_config(load_config("synthetic", []), "compute")
    assert (plain.epochs, plain.loss.drw_epoch, plain.optimizer.warmup_epochs) == (16, None, 0.0)
    probe = reference_config(cfg, "linear")  # the linear probe keeps the schedule, loses the prompts
    assert (probe.epochs, probe.loss.drw_epoch, probe.model.prompt_length) == (8, 7, 0)


def test_a_drw_comparison_with_its_equal_compute_row_loads_and_a_shifted_drw_is_refused(tmp_path):
    import yaml

    from ltlab.results import finished_runs

    cfg = tiny_cfg("epochs=2", "loss.drw_epoch=1", "save_every=0")
    compare(cfg, [cfg.optimizer.name], seeds=1, out=tmp_path, progress=False, reference=["compute"])
    runs = finished_runs(tmp_path)  # DRW at 1 of 2 epochs and at 2 of 4: one task
    assert sorted((r.config["epochs"], r.config["loss"]["drw_epoch"]) for r in runs) == [(2, 1), (4, 2)]
    path = tmp_path / "equal-compute-s0" / "config.yaml"
    shifted = yaml.safe_load(path.read_text())
    shifted["loss"]["drw_epoch"] = 1  # re-weighted for 3 of 4 epochs: another recipe, not the base's
    path.write_text(yaml.safe_dump(shifted))
    with pytest.raises(DataError, match=r"different tasks .*differ in loss.drw_epoch: 0.5 -> 0.25\)"):
        finished_runs(tmp_path)


@pytest.mark.parametrize("seeds", [0, -2, []])
def test_no_seeds_is_refused_by_compare_and_by_a_notebook_before_anything_is_trained(tmp_path, seeds):
    """A notebook's SEEDS=0 trained nothing and then said its RUNS held no finished runs."""
    from ltlab.notebook import notebook_runs

    cfg = tiny_cfg("epochs=1")
    with pytest.raises(ConfigError, match=r"seeds=.*need at least one seed"):
        compare(cfg, ["sgd"], seeds=seeds, out=tmp_path / "c", progress=False)
    with pytest.raises(ConfigError, match=r"seeds=.*need at least one seed"):
        notebook_runs(tmp_path / "nb", cfg, ["sgd"], seeds=seeds, progress=False)
    with pytest.raises(ConfigError, match="name at least one, e.g. sgd,"):
        compare(cfg, [], seeds=1, out=tmp_path / "c", progress=False)
    assert not list(tmp_path.glob("*/*/summary.json"))


def test_a_repeated_reference_row_is_trained_once(tmp_path):
    """--reference linear,linear trained the probe, then failed on its own second copy (\"already holds a run\")."""
    from ltlab.experiments.compare import comparison_jobs

    jobs = comparison_jobs(tiny_cfg("epochs=1"), ["sgd", "sgd"], 2, tmp_path, reference=["linear", "compute", "linear"])
    dirs = [d for _, d in jobs]
    assert len(dirs) == len(set(dirs)) == 6  # sgd, linear-probe, equal-compute on 2 seeds
