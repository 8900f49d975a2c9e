"""A new method is one file: a toy method named by import path goes through train, compare -j 2,
report and figures without an edit anywhere in ltlab (the method lives in tests/own_method.py)."""
import json

import pytest
import torch

from ltlab.cli import main
from ltlab.config import load_config

NAME = "own_method:HalvedSAM"
TINY = ["epochs=2", "batch_size=16", "data.num_classes=6", "data.n_max=30", "data.imbalance_ratio=10",
        "data.val_per_class=3", "data.test_per_class=4", "data.many=20", "data.few=6", "model.prompt_length=2",
        "optimizer.lr=0.05"]


def test_options_and_defaults_come_from_the_class_signature():
    cfg = load_config("synthetic", TINY + [f"optimizer.name={NAME}", "optimizer.method.halve_every=2"])
    assert cfg.optimizer.method == {"rho": 0.05, "halve_every": 2, "rho_schedule": "constant", "rho_min": 0.0}


@pytest.mark.parametrize("bad, words", [(["optimizer.method.gamma=1"], ["no option 'gamma'", "halve_every"]),
                                        (["optimizer.method.halve_every=0"], ["halve_every=0", "must be >= 1"])])
def test_a_bad_option_exits_2_naming_the_valid_ones(tmp_path, capsys, bad, words):
    code = main(["train", *TINY, f"optimizer.name={NAME}", *bad, "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and all(w in err for w in words), err


@pytest.mark.slow
def test_a_method_from_outside_goes_through_train_compare_report_figures(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    code = main(["compare", *TINY, "--optimizers", f"sgd,{NAME}", "--seeds", "2", "-j", "2",
                 "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    for s in (0, 1):  # the run directories use the class's name as the label
        summary = json.loads((out / f"halvedsam-s{s}" / "summary.json").read_text())
        assert summary["optimizer"] == NAME and summary["label"] == "halvedsam" and summary["closures_per_step"] == 2
        # its own epoch schedule ran: at the last epoch (epoch 1) rho = 0.05 / 2
        groups = torch.load(out / f"halvedsam-s{s}/checkpoints/last.pt", weights_only=False)["optimizer"]["param_groups"]
        assert groups[0]["initial_rho"] == 0.05 and groups[0]["rho"] == pytest.approx(0.025)
    assert "| halvedsam | 2 |" in printed  # the headline table, paired with sgd
    report = (out / "report.md").read_text()
    assert "**halvedsam** vs sgd (n = 2 paired seeds)" in report
    assert (out / "figures" / "perclass_synthetic.png").exists() and (out / "figures" / "headtail_synthetic.png").exists()
    monkeypatch.chdir(tmp_path)  # no runs/lpt_vs_vpt here: the optional LPT / VPT figure is skipped
    assert main(["figures", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "cost_synthetic.png").exists()
