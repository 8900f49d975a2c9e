"""`ltlab sweep`: the grid's cells and labels, one base run per shared cell, resumable, refuses to replace runs."""
import os

import pytest

from ltlab.cli import main
from ltlab.config import load_config
from ltlab.errors import ConfigError
from ltlab.experiments.sweep import parse_grid, plan

QUICK = ["epochs=1", "data.num_classes=6", "data.n_max=20", "data.imbalance_ratio=5", "data.val_per_class=3",
         "data.test_per_class=4", "data.many=15", "data.few=5"]


def test_grid_is_parsed_into_shared_and_own_keys():
    shared, own = parse_grid(["sam:optimizer.method.rho=0.05,0.5", "data.imbalance_ratio=10,50"], ["sgd", "sam"])
    assert shared == [("data.imbalance_ratio", ["10", "50"])] and own == {"sam": [("optimizer.method.rho", ["0.05", "0.5"])]}
    for bad, msg in [(["gnm:optimizer.method.rho=1"], "not in --optimizers"), (["sam:epochs=3"], r"starts with optimizer\. .*leave out .sam:"),
                     (["optimizer.method.rho=1"], "prefix it with the method"), (["data.imbalance_ratio"], "key=v1,v2")]:
        with pytest.raises(ConfigError, match=msg):
            parse_grid(bad, ["sgd", "sam"])


def test_plan_has_one_base_per_shared_cell_and_labelled_variants(tmp_path):
    cells = plan(load_config("synthetic", QUICK), ["sgd", "sam", "gnm"],
                 ["sam:optimizer.method.rho=0.05,0.5", "data.imbalance_ratio=5,10"], tmp_path)
    assert [c.name for c in cells] == ["imbalance_ratio5", "imbalance_ratio10"]
    for c in cells:
        assert c.base.label == "sgd" and c.base.cfg.optimizer.method == {}  # the base has no method options
        assert [v.label for v in c.variants] == ["sam_rho0.05", "sam_rho0.5", "gnm"]
        assert [v.cfg.optimizer.method.get("rho") for v in c.variants[:2]] == [0.05, 0.5]
        assert {v.cfg.data.imbalance_ratio for v in (c.base, *c.variants)} == {int(c.name[-2:].lstrip("o"))}
    with pytest.raises(ConfigError, match="--grid"):
        plan(load_config("synthetic", QUICK), ["sgd", "sam"], ["sam:optimizer.method.rho=-1"], tmp_path)
    # a method named by import path: its variants' labels (run directories) use its label, never the ':'
    (c,) = plan(load_config("synthetic", QUICK), ["sgd", "ltlab.optim:GNM"],
                ["ltlab.optim:GNM:optimizer.method.rho=0.005,0.05"], tmp_path)
    assert [v.label for v in c.variants] == ["gnm_rho0.005", "gnm_rho0.05"]


def test_sweep_trains_the_grid_reports_it_and_resumes_without_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    args = ["sweep", *QUICK, "--optimizers", "sgd,gnm", "--seeds", "2", "--grid", "gnm:optimizer.method.rho=0.005,0.05",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    text = (out / "sweep.md").read_text()
    assert "| all | gnm_rho0.005 |" in text and "| all | gnm_rho0.05 |" in text and "(Holm p" in text
    assert (out / "sweep_effects.png").exists() and (out / "report.md").exists()
    assert sorted(p.name for p in out.glob("*-s*")) == ["gnm_rho0.005-s0", "gnm_rho0.005-s1", "gnm_rho0.05-s0",
                                                       "gnm_rho0.05-s1", "sgd-s0", "sgd-s1"]
    stamps = {p: os.stat(p).st_mtime_ns for p in out.glob("*/summary.json")}
    capsys.readouterr()
    assert main(args) == 2  # the re-run rule: OUT holds runs, so say which of --resume / --overwrite
    assert "--resume" in capsys.readouterr().err
    import ltlab.results.probing as probing  # --probe's budget reaches the probes (what they measure: test_compare)

    asked = []
    monkeypatch.setattr(probing, "add_flatness_columns", lambda rows, images, **kw: asked.append((images, kw)) or rows)
    probe = ["--probe", "--images", "8", "--trace-hvps", "4"]
    assert main(args + ["--resume", *probe]) == 0  # a rerun trains nothing
    assert [(images, kw["trace_hvps"]) for images, kw in asked] == [(8, 4)]
    assert {p: os.stat(p).st_mtime_ns for p in out.glob("*/summary.json")} == stamps
    again = (out / "sweep.md").read_text().replace(" --resume " + " ".join(probe) + "`", "`")  # only the command differs
    assert again.split("## Grid")[0].split("Made by")[1] == text.split("## Grid")[0].split("Made by")[1]
    # a finished run of another config in the way: refused (exit 2), nothing replaced, unless --overwrite
    capsys.readouterr()
    assert main(["sweep", *QUICK, "epochs=2", *args[1 + len(QUICK):], "--resume"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p: os.stat(p).st_mtime_ns for p in out.glob("*/summary.json")} == stamps


# -- sweeps that would silently do something else refuse, naming the fix (issue 33) --------------------------
@pytest.mark.parametrize("grid, words", [
    (["sgd:optimizer.lr=0.01,0.5"], ["sgd is the base", "ltlab tune"]),
    (["seed=0,1"], ["seed cannot be swept", "--seeds"]),
    (["sam:optimizer.method.rho=0.1,0.1"], ["repeated"]),
    (["sam:optimizer.name=gnm,asam"], ["optimizer.name cannot be swept"]),
    (["sam:optimizer.method.rho=0.1", "sam:optimizer.method.rho=0.2"], ["given twice"]),
])
def test_sweep_grids_that_would_mislead_are_refused(tmp_path, capsys, grid, words):
    from ltlab.cli import main

    assert main(["sweep", *QUICK, "--seeds", "1", "--optimizers", "sgd,sam", "--out", str(tmp_path / "o"),
                 "--grid", *grid]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not (tmp_path / "o").exists()


def test_sweep_of_the_base_alone_is_refused(tmp_path, capsys):
    from ltlab.cli import main

    assert main(["sweep", *QUICK, "--seeds", "1", "--optimizers", "sgd", "--out", str(tmp_path / "o")]) == 2
    assert "besides it" in capsys.readouterr().err


def test_a_changed_grid_does_not_leave_old_variants_in_a_cell(tmp_path, capsys):
    from ltlab.cli import main

    base = ["sweep", *QUICK, "save_every=0", "log=jsonl", "--seeds", "1", "--optimizers", "sgd,sam", "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(base + ["--grid", "sam:optimizer.method.rho=0.1,0.2"]) == 0
    assert main(base + ["--grid", "sam:optimizer.method.rho=0.2", "--resume"]) == 2
    assert "not in this grid" in capsys.readouterr().err
    assert main(base + ["--grid", "sam:optimizer.method.rho=0.2", "--overwrite"]) == 0
    report = (tmp_path / "o" / "report.md").read_text()
    assert "sam_rho0.2" in report and "sam_rho0.1" not in report
