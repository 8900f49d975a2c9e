"""The bench scripts run (tiny sizes) and print their tables; they are measurements, not tests of speed."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_every_bench_script_parses_its_arguments(capsys, monkeypatch):
    """The fast version (make test) of the bench runs that make test-full makes: every script imports and its
    argument parser answers --help (the scripts guard main() behind __main__)."""
    for script in sorted(BENCH.glob("*.py")):
        if script.name == "common.py":
            continue
        code, out = run_here(script, "--help", monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0 and "usage:" in out, script.name


def run(*args, cwd):
    p = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def run_here(script, *args, monkeypatch, capsys) -> tuple[int, str]:
    """A bench script in this process (as `python script args`, without a new interpreter's imports): its exit
    code and what it printed."""
    import runpy

    monkeypatch.setattr(sys, "argv", [str(script), *map(str, args)])
    monkeypatch.syspath_prepend(str(BENCH))
    capsys.readouterr()
    try:
        runpy.run_path(str(script), run_name="__main__")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return code, capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.full
def test_optimizer_cost_prints_ratios(tmp_path):
    out = run(BENCH / "optimizer_cost.py", "--steps", "4", "--rounds", "2", cwd=tmp_path)
    for name in ("sgd", "sam", "asam", "rsam", "gnm"):
        assert f"| {name} |" in out


@pytest.mark.slow
@pytest.mark.full
def test_gpu_throughput_runs_tiny_on_cpu(tmp_path):
    out = run(BENCH / "gpu_throughput.py", "--steps", "2", cwd=tmp_path)
    assert "tiny ViT" in out and "| gnm | bf16 |" in out


@pytest.mark.slow
@pytest.mark.full
def test_probes_vs_peers_quick(tmp_path):
    out = run(BENCH / "probes_vs_peers.py", "--quick", "--run", tmp_path / "none", cwd=tmp_path)
    assert "ltlab lanczos" in out and "surface" in out


@pytest.mark.slow
@pytest.mark.full
def test_lpt_vs_vpt_quick(tmp_path):
    out = run(BENCH / "lpt_vs_vpt.py", "--quick", "--seeds", "1", "--out", tmp_path / "runs", "--figures",
              tmp_path / "fig", cwd=tmp_path)
    assert "| lpt+sgd − vpt+sgd |" in out and "▶" in out and (tmp_path / "fig" / "lpt_vs_vpt_quick.png").exists()
    assert "last epoch" in out
    pools = {s: yaml.safe_load((tmp_path / "runs" / f"{s}+sgd-s0" / "config.yaml").read_text())["model"]["pool_size"]
             for s in ("vpt", "lpt")}
    assert pools == {"vpt": 0, "lpt": 3}  # the quick sizes gave VPT a group-prompt pool once


def test_lr_control_quick(tmp_path, monkeypatch, capsys):
    """The 2 x 2 of method x lr: four cells, the swapped ones trained, the study's reused only when identical."""
    tuned = Path(__file__).resolve().parents[1] / "studies" / "synthetic_gcl_confirm" / "tuned.yaml"
    rc, out = run_here(BENCH / "lr_control.py", "--quick", "--seeds", "2", "--tuned", tuned, "--out", tmp_path / "runs",
                       "--study-runs", tmp_path / "none", "--probe", "--images", "16", "-j", "1",
                       monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0
    for row in ("| sgd | 0.01 (selected) |", "| sgd | 0.005 |", "| gnm | 0.01 |", "| gnm | 0.005 (selected) |",
                "| gnm − sgd, both at lr 0.005 |", "| sgd: lr 0.005 − lr 0.01 |", "0 of 8 runs are the study's own",
                "| few | lambda_max | lambda_max_few |", "hold 24 exploratory intervals"):
        assert row in out
    assert len(list((tmp_path / "runs").glob("*-s*/summary.json"))) == 8
    assert len(list((tmp_path / "runs").glob("*-s*/probes/scalars.json"))) == 8  # every cell probed alike


def test_flatness_by_loss_measures_the_training_loss_beside_plain_ce(tmp_path, monkeypatch, capsys):
    """Probed GCL + DRW runs: the script measures each under its own loss (scalars_train.json, same images) and
    leaves the plain-CE scalars.json the tables read untouched."""
    tiny = ["epochs=2", "data.num_classes=5", "data.n_max=20", "data.imbalance_ratio=5", "data.val_per_class=4",
            "data.test_per_class=4", "eval.train_images=16", "batch_size=16", "save_every=0", "loss.drw_epoch=1"]
    from ltlab.cli import main

    assert main(["compare", "--config", "synthetic_gcl", *tiny, "--optimizers", "sgd,gnm", "--seeds", "0-1", "--probe",
                 "--images", "16", "--trace-hvps", "6", "--no-figures", "--no-progress", "--out", str(tmp_path / "runs")]) == 0
    ce = {p: p.read_text() for p in (tmp_path / "runs").glob("*/probes/scalars.json")}
    rc, out = run_here(BENCH / "flatness_by_loss.py", "--runs", tmp_path / "runs", "-j", "1",
                       monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0
    assert len(ce) == 4 and all(p.read_text() == text for p, text in ce.items())
    for p in ce:
        saved, train = json.loads(p.read_text()), json.loads((p.parent / "scalars_train.json").read_text())
        assert train["loss"] == "train" and train["images"] == saved["images"] == 16
        assert train["trace_hvps"] == saved["trace_hvps"] == 6  # the budget the plain-CE column was measured with
        assert train["lambda_max"] != saved["lambda_max"]  # another function's Hessian
    for line in ("## Under the run's own training loss", "| gnm | 2 |", "gcl + DRW from epoch 1", "| lambda_max_few |",
                 "the trace from 6 Hutch++ products"):
        assert line in out, line
    assert (tmp_path / "flatness_by_loss.md").read_text().strip() == out.strip()


@pytest.mark.slow
@pytest.mark.full
def test_trace_estimators_prints_the_side_by_side_table(tmp_path):
    out = run(BENCH / "trace_estimators.py", "--images", "8", "--budget", "8", "--repeats", "3", "--run",
              tmp_path / "none", cwd=tmp_path)
    for name in ("hutchinson", "hutch++", "xtrace"):
        assert f"| {name} | 8 |" in out


@pytest.mark.slow
@pytest.mark.full
def test_batched_hvp_prints_the_side_by_side_table(tmp_path):
    out = run(BENCH / "batched_hvp.py", "--images", "16", "--hvps", "4", "--rounds", "1", "--blocks", "2",
              "--trace-hvps", "9", cwd=tmp_path)
    rows = [line for line in out.splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 2 and float(rows[0].split("|")[4]) < 1e-4  # the batched products equal the single ones


def test_same_runs_finds_identical_retraining_and_a_changed_tensor(tmp_path, monkeypatch, capsys):
    from ltlab.config import load_config
    from ltlab.train import fit

    cfg = load_config("synthetic", ["epochs=1", "batch_size=16", "data.num_classes=4", "data.n_max=12",
                                    "data.imbalance_ratio=3", "data.val_per_class=2", "data.test_per_class=2",
                                    "data.many=10", "data.few=5", "model.prompt_length=2"])
    for d in ("a", "b"):
        fit(cfg, out=tmp_path / d / "sgd-s0", progress=False)
    from ltlab.results.probing import flatness_scalars

    flatness_scalars(tmp_path / "a/sgd-s0", 8)  # probe/... scalars in a's tb/ only (make probes after make demo)
    out = run(BENCH / "same_runs.py", tmp_path / "a", tmp_path / "b", cwd=tmp_path)
    assert "sgd-s0: identical" in out and "1 of 1 runs identical" in out
    # a newer ltlab adds a config key and logs one more metrics field: named, not a difference
    conf, metrics = tmp_path / "b/sgd-s0/config.yaml", tmp_path / "b/sgd-s0/metrics.jsonl"
    conf.write_text(conf.read_text() + "new_option: 1\n")
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    metrics.write_text("".join(json.dumps({**r, "extra": 0.5}) + "\n" for r in rows))
    rc, out = run_here(BENCH / "same_runs.py", tmp_path / "a", tmp_path / "b", monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0 and "config keys only B has: new_option" in out and "metrics fields only B logs: extra" in out
    assert "sgd-s0: identical" in out
    conf.write_text(conf.read_text().replace("\nepochs: 1\n", "\nepochs: 2\n"))  # a changed value is a difference
    rc, out = run_here(BENCH / "same_runs.py", tmp_path / "a", tmp_path / "b", monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 1 and "DIFFERS in config.yaml (epochs: 1 -> 2)" in out
    conf.write_text(conf.read_text().replace("\nepochs: 2\n", "\nepochs: 1\n"))
    metrics.write_text("".join(json.dumps({**r, "extra": 0.5, "epoch": r["epoch"] + 1}) + "\n" for r in rows))
    rc, out = run_here(BENCH / "same_runs.py", tmp_path / "a", tmp_path / "b", monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 1 and "DIFFERS in metrics.jsonl" in out
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ck = tmp_path / "b/sgd-s0/checkpoints/last.pt"
    import torch

    state = torch.load(ck, weights_only=False)
    state["model"]["prompts"] = state["model"]["prompts"] + 1e-6
    torch.save(state, ck)
    rc, out = run_here(BENCH / "same_runs.py", tmp_path / "a", tmp_path / "b", monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 1 and "DIFFERS in checkpoints/last.pt" in out
    assert "different CPU kernels" not in out
    summary = tmp_path / "b/sgd-s0/summary.json"  # as if b had been trained on a machine with other vector kernels
    s = json.loads(summary.read_text())
    s["provenance"]["cpu_capability"] = "OTHER"
    summary.write_text(json.dumps(s))
    rc, out = run_here(BENCH / "same_runs.py", tmp_path / "a", tmp_path / "b", monkeypatch=monkeypatch, capsys=capsys)
    assert "sgd-s0: trained with different CPU kernels" in out and "OTHER" in out
