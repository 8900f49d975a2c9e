"""Trainer: run directory, exact resume, divergence handling, CLI behaviour."""
import json
import subprocess
import sys

import pytest
import torch

from ltlab.cli import main
from ltlab.config import load_config
from ltlab.train import Trainer, TrainingDiverged, fit, load_run

TINY = ["epochs=3", "batch_size=16", "data.num_classes=6", "data.n_max=30", "data.imbalance_ratio=10",
        "data.val_per_class=3", "data.test_per_class=4", "data.many=20", "data.few=6", "model.prompt_length=2",
        "optimizer.lr=0.05", "eval_every=1"]


def tiny_cfg(*extra):
    return load_config("synthetic", TINY + list(extra))


def test_provenance_says_whether_the_checkout_differs_from_its_commit(tmp_path):
    from ltlab.train.runs import provenance

    assert provenance(tmp_path)["git_commit"] is None and provenance(tmp_path)["git_dirty"] is None  # no repository
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "preset.yaml").write_text("lr: 0.1\n")
    for args in (["init", "-q"], ["add", "preset.yaml"], ["commit", "-q", "-m", "x"]):
        subprocess.run([*git, *args], check=True)
    (tmp_path / "notes.txt").write_text("untracked files do not count\n")
    clean = provenance(tmp_path)
    assert len(clean["git_commit"]) == 40 and clean["git_dirty"] is False
    (tmp_path / "preset.yaml").write_text("lr: 0.2\n")
    assert provenance(tmp_path)["git_dirty"] is True


def test_run_directory_layout(tmp_path):
    s = fit(tiny_cfg(), out=tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    assert {"overall", "many", "medium", "few", "ece", "per_class", "sec_per_step"} <= set(run.summary)
    assert len(run.metrics) == 3 and all("val" in r for r in run.metrics)
    assert (tmp_path / "run/checkpoints/last.pt").exists() and (tmp_path / "run/checkpoints/best.pt").exists()
    assert run.config["optimizer"]["name"] == "sgd"  # the embedded preset's base
    assert s["provenance"]["torch"] and s["provenance"]["cpu_capability"]  # e.g. AVX2: the kernels that ran
    ck = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)
    assert set(ck["model"]) == {"prompts", "head.weight", "head.bias"}  # trainable tensors only (linear head)
    model, data, loss = run.build("best")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 6)


@pytest.mark.parametrize("opt", ["gnm", "sam", "sam accum_steps=3"])
def test_resume_mid_epoch_reproduces_uninterrupted_run(tmp_path, monkeypatch, opt):
    name, *more = opt.split()
    extra = (f"optimizer.name={name}", "loss.name=gcl", "loss.drw_epoch=2", *more)
    full = fit(tiny_cfg(*extra), out=tmp_path / "full", progress=False)

    original = Trainer.train_step
    def interrupting(self, x, y):
        if self.state.global_step == 5:  # mid epoch 1 (3 steps per epoch)
            raise KeyboardInterrupt
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_cfg(*extra), out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = fit(tiny_cfg(*extra), out=tmp_path / "cut", resume=True, progress=False)
    for k in ("overall", "many", "medium", "few", "per_class", "epoch", "best_val"):
        assert resumed[k] == full[k], k
    a = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "cut/checkpoints/last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert len(load_run(tmp_path / "cut").metrics) == 3


def test_accumulation_in_a_run_equals_the_whole_batch(tmp_path):
    """accum_steps splits each step's batch (batch_size stays the step's batch): with a deterministic forward
    (no dropout, no augmentation, no GCL noise) the run's weights equal the unsplit run's (float32 rounding)."""
    det = ("optimizer.name=sam", "model.dropout=0.0", "data.augment=false", "loss.name=ce", "loss.drw_epoch=1",
           "epochs=2")
    fit(tiny_cfg(*det), out=tmp_path / "one", progress=False)
    fit(tiny_cfg(*det, "accum_steps=4"), out=tmp_path / "four", progress=False)
    a = torch.load(tmp_path / "one/checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "four/checkpoints/last.pt", weights_only=False)["model"]
    assert all(torch.allclose(a[n], b[n], rtol=1e-4, atol=1e-5) for n in a)
    assert load_run(tmp_path / "four").config["accum_steps"] == 4


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    original = Trainer.batch_loss
    def nan_later(self, logits, y):
        loss = original(self, logits, y)
        return loss * float("nan") if self.state.global_step >= 6 else loss

    monkeypatch.setattr(Trainer, "batch_loss", nan_later)
    with pytest.raises(TrainingDiverged, match="step 6"):
        fit(tiny_cfg(), out=tmp_path / "run", progress=False)
    ck = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)
    assert ck["epoch"] == 1 and all(torch.isfinite(v).all() for v in ck["model"].values())


def test_cli_bad_key_exits_2_without_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ltlab", "train", "optimizer.lrr=0.1", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "optimizer.lr" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("override,text", [("data.imbalance_ratio=0", "imbalance_ratio"),
                                           ("optimizer.lr=-0.1", "optimizer.lr"),
                                           ("model.prompt_length=-1", "prompt_length")])
def test_cli_bad_values_exit_2(override, text, capsys, tmp_path):
    assert main(["train", override, "--out", str(tmp_path)]) == 2
    assert text in capsys.readouterr().err


def test_cli_overrides_on_both_sides_of_an_option(capsys, tmp_path):
    # the override after --out reaches the config: its refusal proves it
    assert main(["train", "epochs=1", "--out", str(tmp_path / "r"), "epochs=0"]) == 2
    assert "epochs=0 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    for argv in (["train", "--out", str(tmp_path / "r"), "epochs=1", "--bogus"], ["report", str(tmp_path), "x=1"]):
        assert main(argv) == 2  # what is neither an option nor an override is still refused by name
        assert f"unrecognized arguments: {argv[-1]}" in capsys.readouterr().err


def test_cli_missing_data_exits_2(capsys, tmp_path):
    assert main(["train", "data.name=cifar100_lt", f"data.root={tmp_path}", "--out", str(tmp_path / "r")]) == 2
    assert "download=true" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.full)])
def test_cli_compare_writes_table_csv_and_figures(tmp_path, capsys, workers):
    # workers=2: two processes train, then two probe
    rc = main(["compare", "--optimizers", "sgd,gnm", "--out", str(tmp_path / "cmp"), "--no-progress", "--probe",
               "--images", "16", "-j", str(workers), *TINY, "epochs=1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| sgd |" in out and "| gnm |" in out and "lambda_max" in out and "lambda_min" in out
    rows = (tmp_path / "cmp/summary.csv").read_text().splitlines()
    assert len(rows) == 3 and "lambda_max" in rows[0] and "trace" in rows[0]
    assert float(rows[1].split(",")[rows[0].split(",").index("lambda_max")]) > 0
    for g in ("many", "medium", "few"):  # per-group curvature on equal image counts, paired like accuracy
        assert f"lambda_max_{g}" in rows[0]
    scalars = json.loads((tmp_path / "cmp/sgd-s0/probes/scalars.json").read_text())
    assert scalars["group_images"] >= 1 and scalars["lambda_max_few"] > 0
    from ltlab.results.probing import flatness_scalars  # the same numbers when probed again in this process
    assert scalars["images_requested"] == 16 and scalars["images"] == 16
    again = flatness_scalars(tmp_path / "cmp/sgd-s0", 16, reuse=False)
    assert again["lambda_max"] == pytest.approx(scalars["lambda_max"], rel=1e-4)
    coarse = flatness_scalars(tmp_path / "cmp/sgd-s0", 16, trace_hvps=6)  # another trace budget is not reused
    assert coarse["trace_hvps"] == 6 and coarse["trace"] != again["trace"]
    assert coarse["lambda_max"] == pytest.approx(again["lambda_max"], rel=1e-4)
    assert flatness_scalars(tmp_path / "cmp/sgd-s0", 16, trace_hvps=6)["trace"] == coarse["trace"]  # reused
    report = (tmp_path / "cmp/report.md").read_text()
    assert "## Flatness probes" in report and "lambda_max_few" in report
    fig = tmp_path / "cmp/figures"
    assert (fig / "headtail_synthetic.png").exists() and (fig / "perclass_synthetic.pdf").exists()


def test_resume_without_checkpoint_is_clear(tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_gnm_noise_schedule_option(tmp_path):
    t = Trainer(tiny_cfg("optimizer.name=gnm", "loss.drw_epoch=2", "optimizer.method.halve_at_drw=true",
                         "optimizer.method.epoch0_doubling=true"), out=tmp_path, progress=False)
    rho = t.optimizer.param_groups[0]["initial_rho"]
    got = []
    for e in range(3):  # what the trainer calls before every step, with the run's DRW epoch
        t.optimizer.schedule(step=e, total_steps=t.total_steps, epoch=e, reweight_epoch=t.cfg.loss.drw_epoch)
        got.append(t.optimizer.param_groups[0]["rho"] / rho)
    assert got == [2.0, 1.0, 0.5]


def test_summary_json_is_valid_json(tmp_path):
    fit(tiny_cfg("epochs=1"), out=tmp_path, progress=False)
    data = json.loads((tmp_path / "summary.json").read_text())
    assert 0 <= data["overall"] <= 100


@pytest.mark.parametrize("precision,opt", [("bf16", "gnm"), ("fp16", "sam"), ("fp16", "adamw")])
def test_mixed_precision_paths_on_cpu(tmp_path, precision, opt):
    s = fit(tiny_cfg("epochs=1", f"precision={precision}", f"optimizer.name={opt}"), out=tmp_path, progress=False)
    assert 0 <= s["overall"] <= 100
    ck = torch.load(tmp_path / "checkpoints/last.pt", weights_only=False)
    assert all(torch.isfinite(v).all() and v.dtype == torch.float32 for v in ck["model"].values())
    assert (ck["scaler"] is not None) == (precision == "fp16")
