"""The command line follows its ecosystem's conventions: -j/--jobs for runs in parallel, --seeds as a count or a
list, one re-run rule (--resume / --overwrite) for every command that trains, one way to name a runs directory,
old flags refused by name (exit 2), and help texts for every option."""
from __future__ import annotations

import argparse

import pytest

from ltlab.cli import seed_spec, build_parser, main

T = ["epochs=1", "data.num_classes=5", "data.n_max=20", "data.imbalance_ratio=5", "data.val_per_class=4",
     "data.test_per_class=4", "eval.train_images=16", "batch_size=16", "save_every=0", "log=jsonl"]


@pytest.mark.parametrize("text, seeds", [("3", 3), ("0-2,5", [0, 1, 2, 5]), ("7", 7), ("4-4", [4]), ("1,1,2", [1, 2]),
                                         (" 2-3 ", [2, 3])])
def test_seed_specs(text, seeds):
    assert seed_spec(text) == seeds


@pytest.mark.parametrize("text", ["0", "a", "3-1", "1-", "-2", "1,,2", "1.5"])
def test_bad_seed_specs_name_the_form(text):
    with pytest.raises(argparse.ArgumentTypeError, match="0-2,5|at least one seed"):
        seed_spec(text)


@pytest.mark.parametrize("argv, new", [
    (["compare", "--workers", "2"], "-j/--jobs"),
    (["sweep", "--workers", "2"], "-j/--jobs"),
    (["study", "s.yaml", "--workers", "2"], "-j/--jobs"),
    (["tune", "s.yaml", "--workers", "2"], "-j/--jobs"),
    (["compare", "--reuse"], "--resume"),
    (["compare", "--probe-images", "16"], "--images"),
    (["figures", "--runs", "runs/demo"], "the positional RUNS"),
])
def test_old_flags_are_refused_by_name(argv, new, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{argv[-2] if argv[-1][0] != '-' else argv[-1]} was renamed {new}" in err, err


@pytest.mark.parametrize("argv, usage", [
    (["report", "--runs", "runs/demo"], "ltlab report RUNS"),
    (["probe", "--run", "runs/demo/sgd-s0"], "ltlab probe RUN"),
    (["probe", "--runs", "runs/demo/sgd-s0"], "ltlab probe RUN"),
])
def test_a_directory_given_as_a_flag_names_the_positional_argument(argv, usage, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{argv[1]} is not an option here" in err and usage in err, err


def test_a_study_path_that_is_a_directory_says_so(tmp_path, capsys):
    assert main(["tune", str(tmp_path)]) == 2
    assert "is a directory, not a study file" in capsys.readouterr().err


def test_every_option_has_help():
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"ltlab {name} {action.option_strings or action.dest}: no help text"
    assert "eig" in subs.choices["probe"].format_help()  # --what lists its choices


def test_the_rerun_rule_is_one_rule(tmp_path, capsys):
    """compare and sweep refuse an OUT that holds runs unless --resume (keeps them: trains nothing) or --overwrite."""
    out = str(tmp_path / "o")
    args = ["compare", *T, "--optimizers", "sgd", "--seeds", "0-1", "--out", out, "--no-progress", "--no-figures"]
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "o").glob("*-s*")) == ["sgd-s0", "sgd-s1"]
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("*/summary.json")}
    capsys.readouterr()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("*/summary.json")}
    assert main(args + ["--resume", "--overwrite"]) == 2
    assert "contradict" in capsys.readouterr().err
    sweep = ["sweep", *T, "--optimizers", "sgd,sam", "--seeds", "0-1", "--out", out, "--no-progress"]
    assert main(sweep) == 2
    err = capsys.readouterr().err
    assert "already holds runs" in err and "--resume" in err and "--overwrite" in err
    assert main(sweep + ["--overwrite"]) == 0  # a list of seeds reaches the sweep
    assert sorted(p.name for p in (tmp_path / "o").glob("*-s*")) == ["sam-s0", "sam-s1", "sgd-s0", "sgd-s1"]


def test_a_class_group_with_no_classes_prints_a_dash_not_nan(tmp_path, capsys):
    """T's largest class has 20 images, so 'many' has no classes: the printed line and the report say '-'."""
    assert main(["train", *T, "--out", str(tmp_path / "runs" / "sgd-s0"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "many -  medium " in out and "nan" not in out, out
    assert main(["report", str(tmp_path / "runs"), "--no-figures"]) == 0
    report = (tmp_path / "runs" / "report.md").read_text()
    power = next(line for line in report.splitlines() if line.startswith("Standard error of one run"))
    assert "many -," in power and "a class group with no classes" in power and "nan" not in report, power
    capsys.readouterr()
    assert main(["probe", str(tmp_path / "runs" / "sgd-s0"), "--what", "per-class,eig,per-class", "--images", "8",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("per-class:") == 1 and out.count("eig:") == 1, out  # a repeated probe runs once
    assert "many -, medium " in out and "nan" not in out, out
