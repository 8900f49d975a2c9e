"""Bad input on the newest surfaces (issue 33): each case exits 2 (or raises the library's error) naming the problem
and the fix, before any work is lost, and leaves nothing behind that would block the corrected rerun."""
import json
import shutil
import sys

import pytest

from ltlab.cli import main
from ltlab.config import load_config
from ltlab.errors import ConfigError, DataError

T = ["epochs=1", "data.num_classes=5", "data.n_max=20", "data.imbalance_ratio=5", "data.val_per_class=4",
     "data.test_per_class=4", "eval.train_images=16", "batch_size=16", "save_every=0"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny run (sgd) and a comparison directory with sgd and sam."""
    root = tmp_path_factory.mktemp("bad")
    assert main(["compare", *T, "log=jsonl,tensorboard", "--optimizers", "sgd,sam", "--out", str(root / "cmp"),
                 "--no-progress", "--no-figures"]) == 0
    return root / "cmp"


def test_two_methods_with_one_label_are_refused_before_training(tmp_path, capsys):
    assert main(["compare", *T, "--optimizers", "sgd,sam,ltlab.optim:SAM", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "sam and ltlab.optim:SAM" in err and "collide" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("source, words", [
    ("def broken(:\n", ["SyntaxError"]),
    ("raise RuntimeError('no GPU here')\n", ["RuntimeError", "no GPU here"]),
    ("from ltlab.optim import SAM\nclass Bad(SAM):\n    def __init__(self, params, base_optimizer=None, rho: float = 0.1,"
     " **kw):\n        raise TypeError('boom')\n", ["TypeError", "boom", "__init__"]),
])
def test_import_path_methods_that_fail_are_config_errors(tmp_path, monkeypatch, capsys, source, words):
    (tmp_path / "badmethods.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("badmethods", None)
    assert main(["train", *T, "optimizer.name=badmethods:Bad", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


@pytest.mark.parametrize("name", [":Foo", "mod:1Bad", "a b:C"])
def test_malformed_import_paths(name, capsys):
    assert main(["train", *T, f"optimizer.name={name}", "--out", "/nonexistent/x"]) == 2
    assert "package.module:Class" in capsys.readouterr().err


def test_report_and_figures_on_a_summary_that_is_not_a_mapping(tmp_path, finished, capsys):
    d = tmp_path / "copy"
    shutil.copytree(finished, d)
    (d / "sam-s0" / "summary.json").write_text("[]")
    assert main(["report", str(d), "--no-figures"]) == 2
    assert "summary.json does not hold" in capsys.readouterr().err
    assert main(["figures", str(d), "--out", str(tmp_path / "f")]) == 2


def test_figures_into_a_file_and_reports_of_one_run(tmp_path, finished, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["figures", str(finished), "--out", str(afile)]) == 2
    assert f"figures' folder {afile} is a file, not a directory" in capsys.readouterr().err
    for out, text in ((afile / "r.md", f"folder of --out {afile} is a file"), (tmp_path, "is a directory; give a file")):
        assert main(["report", str(finished), "--no-figures", "--out", str(out)]) == 2
        assert text in capsys.readouterr().err
    assert afile.read_text() == "keep me"
    one = finished / "sam-s0"
    for argv in (["report", str(one), "--no-figures"], ["figures", str(one), "--out", str(tmp_path / "f")]):
        assert main(argv) == 2  # one run where a directory of runs belongs: the error names the one that holds it
        assert f"{one} is one run, not a directory of runs; give the directory that holds it ({finished})" \
            in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_report_base_that_does_not_exist(finished, capsys):
    assert main(["report", str(finished), "--base", "nosuch", "--no-figures", "--out", "/tmp/ltlab-r.md"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "sgd" in err and "sam" in err


def test_a_key_in_the_wrong_section_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'accum_steps'"):
        load_config("synthetic", ["optimizer.accum_steps=2"])


def test_a_tb_path_that_is_a_file(tmp_path, finished, capsys):
    d = tmp_path / "run"
    shutil.copytree(finished / "sgd-s0", d)
    shutil.rmtree(d / "tb")
    (d / "tb").write_text("not a directory")
    assert main(["train", "--out", str(d), "--resume"]) == 2
    assert "tb is a file" in capsys.readouterr().err


def test_a_refused_mlflow_log_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    out = tmp_path / "r"
    assert main(["train", *T, "log=jsonl,tensorboard,mlflow", "--out", str(out)]) == 2
    assert "ltlab[mlflow]" in capsys.readouterr().err
    assert not (out / "tb").exists()
    monkeypatch.delitem(sys.modules, "mlflow")
    assert main(["train", *T, "log=jsonl,tensorboard", "--out", str(out), "--no-progress"]) == 0  # not blocked


def test_probing_an_unfinished_run_warns_records_and_a_resume_drops_it(tmp_path, finished, capsys):
    from ltlab.probes.results import ProbeResult

    d = tmp_path / "run"
    shutil.copytree(finished / "sgd-s0", d)
    (d / "summary.json").unlink()  # as if interrupted after its last checkpoint
    assert main(["probe", str(d), "--what", "sharpness", "--images", "100000", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "has not finished" in out and "probing all of them" in out
    prov = ProbeResult.provenance_of(d / "probes" / "sharpness.npz")
    assert prov["finished"] is False and prov["images"] < 100000 and prov["checkpoint"] == "last"
    assert main(["train", "--out", str(d), "--resume", "--no-progress"]) == 0
    assert not (d / "probes" / "sharpness.npz").exists()  # described the old checkpoint


def test_notebook_runs_refuses_a_file_and_a_named_missing_directory(tmp_path):
    from ltlab.notebook import notebook_runs

    cfg = load_config("synthetic", T)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        notebook_runs(tmp_path / "file", cfg, ["sgd"])
    with pytest.raises(DataError, match="does not exist"):
        notebook_runs(tmp_path / "typo", cfg, ["sgd"], create=False)
    assert not (tmp_path / "typo").exists()


def test_summary_json_mapping_check_is_the_loaders(finished):
    from ltlab.results import load_rows

    rows = load_rows(finished)
    assert {r["label"] for r in rows} == {"sgd", "sam"}
    assert json.loads((finished / "sgd-s0" / "summary.json").read_text())["seed"] == 0


@pytest.mark.parametrize("argv", [["probe", "x", "--whatt", "eig"], ["probe", "/nonexistent/run"]])
def test_under_torchrun_only_rank_0_reports_bad_input(argv, monkeypatch, capsys):
    """torchrun starts every rank with the same command line: one message, not one per rank."""
    from ltlab.cli import main

    monkeypatch.setenv("RANK", "1")
    assert main(argv) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_a_value_with_a_colon_is_text_and_a_missing_checkpoint_names_a_command_that_works(tmp_path, capsys):
    from ltlab.cli import main
    from ltlab.config import parse_overrides

    assert parse_overrides(["optimizer.name=mod:"]) == {"optimizer": {"name": "mod:"}}
    assert parse_overrides(["model.x={a: 1}"]) == {"model": {"x": {"a": 1}}}
    assert main(["train", *T, "optimizer.name=mod:", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "import path is package.module:Class" in capsys.readouterr().err
    run = tmp_path / "done"
    assert main(["train", *T, "--out", str(run), "--no-progress"]) == 0
    (run / "checkpoints" / "last.pt").unlink()
    capsys.readouterr()
    assert main(["probe", str(run), "--what", "eig", "--no-progress"]) == 2
    hint = capsys.readouterr().err.split("; ", 1)[1].split("python -m ltlab ", 1)[1].split()
    assert main([*hint, "--no-progress"]) == 0  # the command the message names works
    assert (run / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("command", ["compare", "sweep"])
@pytest.mark.parametrize("spec", ["", " , "])
def test_an_empty_optimizer_list_is_refused_not_read_as_the_default(tmp_path, capsys, command, spec):
    assert main([command, *T, "--optimizers", spec, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "name at least one optimizer, e.g. sgd," in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("entry, fix", [
    ("sam:rho=0.1,0.2", "sam:optimizer.method.rho=0.1,0.2"),  # a bare option name: the full key, values kept
    ("sam:data.n_max=10", "leave out 'sam:'"),  # a task key belongs to every method
])
def test_a_method_grid_entry_names_its_fix(tmp_path, capsys, entry, fix):
    assert main(["sweep", *T, "--optimizers", "sgd,sam", "--grid", entry, "--out", str(tmp_path / "s")]) == 2
    assert fix in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_figures_setups_named_but_missing_is_refused(tmp_path, finished, capsys):
    """--setups /nonexistent drew the figures without the LPT / VPT one, without a word."""
    assert main(["figures", str(finished), "--setups", str(tmp_path / "nosuch"), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "--setups" in err and "holds no finished VPT / LPT setup runs" in err and "bench/lpt_vs_vpt.py" in err, err
    assert not (tmp_path / "f").exists()
