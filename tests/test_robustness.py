"""Bad input and faults: every class gets a clear message, exit code 2, no traceback, nothing lost."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ltlab.cli import main
from ltlab.config import load_config
from ltlab.data import longtail_counts
from ltlab.errors import ConfigError
from ltlab.train import Trainer, TrainingDiverged, fit, load_run

TINY = ["epochs=3", "batch_size=16", "data.num_classes=6", "data.n_max=30", "data.imbalance_ratio=10",
        "data.val_per_class=3", "data.test_per_class=4", "data.many=20", "data.few=6", "model.prompt_length=2",
        "optimizer.lr=0.05", "eval_every=1"]


def tiny_cfg(*extra):
    return load_config("synthetic", TINY + list(extra))


# -- config values ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["1e-3", "1E-3", "0.001", "1.0e-3", ".001"])
def test_every_float_spelling_is_a_number(spelling, tmp_path):
    assert load_config("synthetic", [f"optimizer.lr={spelling}"]).optimizer.lr == pytest.approx(1e-3)
    y = tmp_path / "c.yaml"
    y.write_text(f"base: synthetic\noptimizer:\n  lr: {spelling}\n")
    assert load_config(str(y)).optimizer.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("override,text", [
    ("optimizer.lr=.nan", "finite"), ("data.imbalance_ratio=.nan", "finite"), ("optimizer.lr=.inf", "finite"),
    ("data.num_classes=1000", "at most 384"), ("data.image_size=64", "32 px"), ("data.val_per_class=0", ">= 1"),
    ("device=tpu", "not a device"), ("data.name=[", "not valid YAML"), ("data.many=5", "many >= few"),
    ("optimizer=x", "mapping"), ("optimizer.lrr=1", "did you mean"), ("qqqqqqqqqq.xyzzy=1", "valid keys here"),
])
def test_impossible_values_are_refused_up_front(override, text):
    with pytest.raises(ConfigError, match=text.replace("(", r"\(")):
        load_config("synthetic", [override])


def test_section_overridden_by_a_value_then_a_key():
    with pytest.raises(ConfigError, match="a section takes sub-keys"):
        load_config("synthetic", ["optimizer=x", "optimizer.lr=1"])


def test_cuda_on_a_cpu_machine():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        load_config("synthetic", ["device=cuda"])


def test_top_k_above_pool_size():
    with pytest.raises(ConfigError, match="top_k"):
        load_config("synthetic", ["model.pool_size=2", "model.top_k=3"])


def test_yaml_files_malformed_not_a_mapping_binary_or_a_directory(tmp_path):
    bad = {"malformed.yaml": "a: [1, 2\n", "list.yaml": "- 1\n- 2\n", "base.yaml": "base: [1, 2]\n"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError):
            load_config(str(tmp_path / name))
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError):
        load_config(str(tmp_path / "bin.yaml"))
    with pytest.raises(ConfigError, match="directory"):
        load_config(str(tmp_path))


@pytest.mark.parametrize("text, section", [("optimizer: 0.1\n", "optimizer"), ("data: [1]\n", "data"),
                                           ("base: synthetic\nmodel: vit\n", "model")])
def test_a_section_that_is_not_a_mapping_is_refused_even_when_overrides_cover_it(tmp_path, text, section):
    """`optimizer: 0.1` crashed (AttributeError); `data: [1]` was silently replaced by the overrides' data keys."""
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=rf"c.yaml: {section} must be a mapping of sub-keys.*'{section}:' then"):
        load_config(str(tmp_path / "c.yaml"), [f"{section}.seed=1" if section == "data" else "epochs=1"])


def test_base_paths_resolve_next_to_the_file_and_cycles_are_caught(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/parent.yaml").write_text("base: synthetic\nepochs: 4\n")
    (tmp_path / "sub/child.yaml").write_text("base: parent.yaml\nseed: 3\n")
    monkeypatch.chdir(tmp_path)  # not the directory of the YAML files
    cfg = load_config(str(tmp_path / "sub/child.yaml"))
    assert (cfg.epochs, cfg.seed) == (4, 3)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(tmp_path / "a.yaml"))


def test_deep_base_chains_keep_every_level(tmp_path):
    (tmp_path / "c0.yaml").write_text("base: synthetic\nseed: 0\nepochs: 2\n")
    for i in range(1, 7):
        (tmp_path / f"c{i}.yaml").write_text(f"base: c{i - 1}.yaml\nseed: {i}\n")
    cfg = load_config(str(tmp_path / "c6.yaml"))
    assert (cfg.seed, cfg.epochs) == (6, 2)  # the deepest base (epochs) is not dropped


def test_invalid_long_tail_profiles():
    with pytest.raises(ValueError, match="one class cannot be imbalanced"):
        longtail_counts(1, 500, 10)
    assert longtail_counts(1, 500, 1) == [500]
    with pytest.raises(ValueError, match="no image"):
        longtail_counts(10, 5, 100)


# -- damaged files --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 10, None])
def test_damaged_checkpoint_gives_a_clear_error(tmp_path, capsys, content):
    fit(tiny_cfg("epochs=1"), out=tmp_path / "run", progress=False)
    ck = tmp_path / "run/checkpoints/last.pt"
    data = ck.read_bytes()
    ck.write_bytes(content if content is not None else data[: len(data) // 2])
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "Traceback" not in err


def test_partial_last_metrics_line_is_skipped(tmp_path):
    fit(tiny_cfg("epochs=2"), out=tmp_path / "run", progress=False)
    with open(tmp_path / "run/metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "st')
    assert [r["epoch"] for r in load_run(tmp_path / "run").metrics] == [1, 2]


def test_checkpoint_path_that_is_not_weights(tmp_path, capsys):
    junk = tmp_path / "w.pth"
    junk.write_bytes(b"not weights")
    rc = main(["train", "model.backbone=vit_tiny_patch16_224", f"model.checkpoint_path={junk}", "data.image_size=224",
               *TINY, "--out", str(tmp_path / "r"), "--no-progress"])
    assert rc == 2 and "Traceback" not in capsys.readouterr().err


# -- resume ----------------------------------------------------------------------------------------------------
def test_resume_with_a_changed_config_is_refused_with_the_diff(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        _interrupt_at(tmp_path / "run", tiny_cfg(), step=4)
    rc = main(["train", *TINY, "optimizer.lr=0.1", "seed=5", "--out", str(tmp_path / "run"), "--resume",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "optimizer.lr: 0.05 -> 0.1" in err and "seed: 0 -> 5" in err
    # with no --config, --resume uses the run's own config.yaml
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--no-progress"]) == 0


def _interrupt_at(out, cfg, step=None, evaluation=None):
    """Send ourselves SIGINT after a given global step, or during the n-th evaluation of a split
    (evaluation=("val", n) or ("test", n)), as Ctrl-C would."""
    original_step, original_eval = Trainer.train_step, Trainer.evaluate
    calls: dict[str, int] = {}

    def step_hook(self, x, y):
        loss = original_step(self, x, y)
        if step is not None and self.state.global_step == step - 1:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    def eval_hook(self, split="val"):
        calls[split] = calls.get(split, 0) + 1
        if evaluation == (split, calls[split]):
            os.kill(os.getpid(), signal.SIGINT)
        return original_eval(self, split)

    Trainer.train_step, Trainer.evaluate = step_hook, eval_hook
    try:
        return fit(cfg, out=out, progress=False)
    finally:
        Trainer.train_step, Trainer.evaluate = original_step, original_eval


def _same_run(a: Path, b: Path):
    from ltlab.train.runs import TIMING_FIELDS as skip

    sa, sb = load_run(a), load_run(b)
    assert [{k: v for k, v in r.items() if k not in skip} for r in sa.metrics] == \
        [{k: v for k, v in r.items() if k not in skip} for r in sb.metrics]
    assert {k: v for k, v in sa.summary.items() if k not in skip} == {k: v for k, v in sb.summary.items() if k not in skip}
    ta = torch.load(a / "checkpoints/last.pt", weights_only=False)["model"]
    tb = torch.load(b / "checkpoints/last.pt", weights_only=False)["model"]
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


# every step boundary but the last (8) and the validation of epochs 1 and 2: 10 points
EVERY_POINT = [{"step": s} for s in range(1, 9)] + [{"evaluation": ("val", 1)}, {"evaluation": ("val", 2)}]
# the fast version's 3: the first step, a step inside the second epoch and a validation
FAST_POINTS = [{"step": 1}, {"step": 5}, {"evaluation": ("val", 1)}]


@pytest.mark.parametrize("opt,points", [(o, FAST_POINTS) for o in ("sgd", "sam", "imbsam")] + [
    pytest.param(o, EVERY_POINT, marks=pytest.mark.full)
    for o in ("sgd", "adamw", "sam", "asam", "rsam", "gnm", "imbsam", "ccsam", "focalsam")], ids=lambda v: (
        v if isinstance(v, str) else f"{len(v)}points"))
def test_interrupt_anywhere_then_resume_equals_the_uninterrupted_run(tmp_path, opt, points):
    """make test: a plain, a two-pass and a class-aware optimizer at 3 points; make test-long: all nine at 10."""
    extra = (f"optimizer.name={opt}", "loss.name=gcl", "loss.drw_epoch=1", "model.dropout=0.1", "eval_every=1")
    fit(tiny_cfg(*extra), out=tmp_path / "full", progress=False)
    for i, point in enumerate(points):
        out = tmp_path / f"cut{i}"
        with pytest.raises(KeyboardInterrupt):
            _interrupt_at(out, tiny_cfg(*extra), **point)
        fit(tiny_cfg(*extra), out=out, progress=False, resume=True)
        _same_run(tmp_path / "full", out)
    # during the last epoch's validation only the test evaluation is left: the run finishes, unchanged
    _interrupt_at(tmp_path / "last", tiny_cfg(*extra), evaluation=("val", 3))
    _same_run(tmp_path / "full", tmp_path / "last")


def test_resume_and_overwrite_remove_what_a_killed_atomic_write_left(tmp_path):
    from ltlab.train.runs import RunDir

    fit(tiny_cfg("epochs=1"), out=tmp_path / "run", progress=False)
    run = RunDir(tmp_path / "run")
    mine = run.path / "notes.tmp"  # not an atomic write's temp (not hidden): kept
    mine.write_text("mine")

    def plant():
        stale = [run.path / ".summary.json.k2j3ab.tmp", run.ckpt_dir / ".last.pt.9x8yqz.tmp"]
        for p in stale:
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(b"partial")
        return stale

    stale = plant()
    run.prepare(resume=True)
    assert not any(p.exists() for p in stale) and mine.exists() and (run.ckpt_dir / "last.pt").exists()
    stale = plant()
    run.prepare(overwrite=True)
    assert not any(p.exists() for p in stale) and mine.exists() and not run.holds_run()


def test_kill_9_after_the_first_checkpoint_leaves_it_loadable(tmp_path):
    """The fast version (make test) of the 10-moment test below: one run killed once its first checkpoint exists."""
    import time

    out = tmp_path / "k"
    p = subprocess.Popen([sys.executable, "-m", "ltlab", "train", *TINY, "epochs=20", "save_every=1", "--out", str(out),
                          "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    while not (out / "checkpoints" / "last.pt").exists() and p.poll() is None and time.monotonic() - start < 300:
        time.sleep(0.05)
    time.sleep(0.3)
    p.kill()
    p.wait()
    for ck in (out / "checkpoints").glob("*.pt"):
        torch.load(ck, weights_only=False)
    assert (out / "checkpoints" / "last.pt").exists() and all(t.name.startswith(".") for t in out.rglob("*.tmp"))


@pytest.mark.full
def test_kill_9_never_leaves_an_unloadable_checkpoint(tmp_path):
    """10 moments: two waves of 5 runs, each killed at its own time (start-up, first epoch, checkpoint writes);
    the last run of each wave is killed only once its first checkpoint exists, so some kills land mid-training
    however loaded the machine is."""
    import time

    delays = [1.5, 2.4, 3.1, 3.7, 4.3, 4.9, 5.6, 6.4, 7.3, 8.5]
    for wave in (delays[0::2], delays[1::2]):
        start = time.monotonic()
        procs = {d: subprocess.Popen([sys.executable, "-m", "ltlab", "train", *TINY, "epochs=20", "save_every=1",
                                      "--out", str(tmp_path / f"k{d}"), "--no-progress"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for d in wave}
        for d, p in procs.items():
            time.sleep(max(0.0, start + d - time.monotonic()))
            if d == wave[-1]:
                saved = tmp_path / f"k{d}" / "checkpoints" / "last.pt"
                while not saved.exists() and p.poll() is None and time.monotonic() - start < 300:
                    time.sleep(0.05)
                time.sleep(0.3)
            p.kill()
            p.wait()
    for d in delays:
        out = tmp_path / f"k{d}"
        for ck in (out / "checkpoints").glob("*.pt") if (out / "checkpoints").exists() else []:
            torch.load(ck, weights_only=False)
        # a kill landing inside an atomic write leaves that write's hidden temp file (no process survives to remove
        # it; seen once in a fresh-clone run when the 8.5 s kill hit a save): allowed only as a hidden '.NAME.*.tmp'
        # beside the final names, which must all load (checked above)
        assert all(t.name.startswith(".") for t in out.rglob("*.tmp"))
    assert (tmp_path / f"k{delays[-1]}" / "checkpoints" / "last.pt").exists()


def test_a_full_disk_exits_2_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import errno
    import os

    import ltlab.train.runs as runs

    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the disk fills up after a few files have been written
        calls.append(fd)
        if len(calls) > 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(runs.os, "fsync", fsync)
    out = tmp_path / "run"
    rc = main(["train", *TINY, "epochs=4", "save_every=1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "No space left on device" in err and "--resume" in err and "Traceback" not in err
    assert not list(out.rglob("*.tmp"))
    saved = list((out / "checkpoints").glob("*.pt"))
    assert saved, "some checkpoint was written before the disk filled"
    for ck in saved:
        torch.load(ck, weights_only=False)
    monkeypatch.setattr(runs.os, "fsync", real_fsync)  # space freed: the run resumes and finishes
    assert main(["train", *TINY, "epochs=4", "save_every=1", "--out", str(out), "--no-progress", "--resume"]) == 0


# -- divergence -------------------------------------------------------------------------------------------------
def test_divergence_at_the_last_step_of_an_epoch_never_saves_non_finite_weights(tmp_path, capsys):
    rc = main(["train", "epochs=3", "batch_size=1000", "optimizer.name=sgd", "optimizer.lr=1.0e+30",
               "data.num_classes=6", "data.n_max=30", "data.imbalance_ratio=10", "data.val_per_class=3",
               "data.test_per_class=4", "data.many=20", "data.few=6", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "no checkpoint had been saved yet" in err
    for ck in (tmp_path / "run/checkpoints").glob("*.pt"):
        state = torch.load(ck, weights_only=False)
        assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_divergence_later_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = Trainer.train_step

    def blow_up(self, x, y):
        loss = original(self, x, y)
        if self.state.global_step == 5:  # weights become inf after a finite loss
            with torch.no_grad():
                self.model.trainable_parameters()[0].fill_(float("inf"))
        return loss

    monkeypatch.setattr(Trainer, "train_step", blow_up)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        fit(tiny_cfg(), out=tmp_path / "run", progress=False)
    st = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in st["model"].values())


# -- commands given nonsense -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,text", [(["--images", "0"], "at least 1 image"), (["--images", "-5"], "at least 1"),
                                       (["--steps", "0"], "at least 3"), (["--steps", "-3"], "at least 3"),
                                       (["--what", ""], "--what is empty"), (["--what", "nope"], "unknown probe")])
def test_probe_rejects_nonsense(tmp_path, capsys, args, text):
    fit(tiny_cfg("epochs=1"), out=tmp_path / "run", progress=False)
    assert main(["probe", str(tmp_path / "run"), *args, "--no-progress"]) == 2
    assert text in capsys.readouterr().err
    assert not (tmp_path / "run/probes").exists()


def test_probe_on_a_run_without_checkpoints(tmp_path, capsys):
    fit(tiny_cfg("epochs=1"), out=tmp_path / "run", progress=False)
    for ck in (tmp_path / "run/checkpoints").glob("*.pt"):
        ck.unlink()
    assert main(["probe", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train it again" in err and "--overwrite" in err and "resume" not in err


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_figures_on_nothing_says_so(tmp_path, capsys, make):
    if make == "empty":
        (tmp_path / "runs").mkdir()
    assert main(["figures", str(tmp_path / "runs"), "--out", str(tmp_path / "fig")]) == 2
    assert "no finished runs" in capsys.readouterr().err or make == "missing"
    assert not (tmp_path / "fig").exists()  # refused before anything was written


def test_pretrain_refuses_an_output_in_the_way_before_training(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for argv, text in ((["pretrain", "--out", str(afile / "w.pt")], f"folder of --out {afile} is a file"),
                       (["pretrain", "--out", str(tmp_path)], "is a directory; give a file, e.g.")):
        assert main(argv) == 2
        assert text in capsys.readouterr().err
    assert afile.read_text() == "keep me"


@pytest.mark.parametrize("args,text", [(["--epochs", "-1"], "--epochs"), (["--epochs", "0"], "--epochs"),
                                       (["--n-per-class", "0"], "--n-per-class")])
def test_pretrain_rejects_nonsense_and_never_touches_the_bundled_weights(tmp_path, capsys, args, text):
    from ltlab.models.backbones import WEIGHTS_DIR

    before = (WEIGHTS_DIR / "ltlab_tiny_vit.pt").read_bytes()
    assert main(["pretrain", *args, "--out", str(tmp_path / "w.pt")]) == 2
    assert text in capsys.readouterr().err
    assert main(["pretrain", "--epochs", "1"]) == 2  # no --out: refuses to replace the bundled backbone
    assert "--replace-bundled" in capsys.readouterr().err
    assert (WEIGHTS_DIR / "ltlab_tiny_vit.pt").read_bytes() == before


def test_resume_message_is_shell_quoted(tmp_path):
    out = tmp_path / "with space"
    p = subprocess.run([sys.executable, "-c", (
        "import os, signal; from ltlab.train import Trainer, fit; from ltlab.config import load_config\n"
        "orig = Trainer.train_step\n"
        "def hook(self, x, y):\n"
        "    l = orig(self, x, y)\n"
        "    os.kill(os.getpid(), signal.SIGINT) if self.state.global_step == 2 else None\n"
        "    return l\n"
        "Trainer.train_step = hook\n"
        f"fit(load_config('synthetic', {TINY!r}), out={str(out)!r}, progress=False)")],
        capture_output=True, text=True)
    assert p.returncode != 0
    assert f"--out '{out}' --resume" in p.stderr


def test_run_files_are_readable_as_the_umask_allows(tmp_path):
    """Atomic writes go through mkstemp (0600); run files must get the mode open() gives: 0644 under umask 022."""
    import stat

    old = os.umask(0o022)
    try:
        fit(tiny_cfg("epochs=1"), out=tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {"config.yaml", "summary.json", "metrics.jsonl", "last.pt"} <= {p.name for p in files}
    modes = {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o644"}, modes


def test_a_missing_file_names_the_key_the_user_typed(tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    assert main(["train", *TINY, f"model.checkpoint_path={missing}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "model.checkpoint_path" in err and str(missing) in err and "does not exist" in err
    assert "pretrain" not in err  # pretrain rebuilds the bundled weights only; the user named another file
    (tmp_path / "test.txt").write_text("a.png 0\n")
    code = main(["train", "data.name=places_lt", f"data.root={tmp_path}", "data.train_list=nope.txt",
                 "data.test_list=test.txt", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and "data.train_list" in err and "nope.txt" in err and "does not exist" in err


def test_data_loader_workers_change_nothing_and_resume_is_exact_with_any_count(tmp_path):
    """Every random choice of the data stream is a function of (seed, step): num_workers 0, 1 and 2 give the same
    run, and a run interrupted at num_workers=2 resumes exactly, with the same or another worker count (a step
    boundary and a validation point for a plain optimizer, a step boundary for a two-pass one)."""
    extra = ("epochs=2", "data.augment=true", "model.dropout=0.1")
    for w in (0, 1, 2):
        fit(tiny_cfg(*extra, f"data.num_workers={w}"), out=tmp_path / f"w{w}", progress=False)
    _same_run(tmp_path / "w0", tmp_path / "w1")
    _same_run(tmp_path / "w0", tmp_path / "w2")
    fit(tiny_cfg(*extra, "optimizer.name=sam"), out=tmp_path / "sam", progress=False)
    cuts = [("sgd", {"step": 3}, 1), ("sgd", {"evaluation": ("val", 1)}, 0), ("sam", {"step": 2}, 2)]
    for i, (opt, point, after) in enumerate(cuts):
        out = tmp_path / f"cut{i}"
        with pytest.raises(KeyboardInterrupt):
            _interrupt_at(out, tiny_cfg(*extra, f"optimizer.name={opt}", "data.num_workers=2"), **point)
        fit(tiny_cfg(*extra, f"optimizer.name={opt}", f"data.num_workers={after}"), out=out, progress=False,
            resume=True)
        _same_run(tmp_path / ("w0" if opt == "sgd" else "sam"), out)


@pytest.mark.full
def test_ctrl_c_on_a_parallel_compare_ends_every_worker_and_a_rerun_trains_only_what_is_missing(tmp_path):
    """Ctrl-C (SIGINT to the parent only, as `timeout -s INT` sends it) during `compare -j 2`: the parent
    exits 130 within the grace period, no worker survives it, finished runs are kept, and --resume trains the rest."""
    import time

    psutil = pytest.importorskip("psutil")
    out = tmp_path / "X"
    # 8 runs, the first done well before the last: when the first finishes, most of the work is still queued
    ti = ["epochs=12", "data.num_classes=5", "data.n_max=120", "data.imbalance_ratio=5", "data.val_per_class=4",
          "data.test_per_class=4", "eval.train_images=16", "batch_size=16", "save_every=0", "log=jsonl"]
    cmd = [sys.executable, "-m", "ltlab", "compare", *ti, "--optimizers", "sgd,sam,gnm,rsam", "--seeds", "2",
           "-j", "2", "--out", str(out), "--no-progress", "--no-figures"]
    # SIGINT as in a terminal: a shell that starts a job in the background (CI may) leaves SIGINT ignored in its
    # children, and Python then never raises KeyboardInterrupt; the user's Ctrl-C case has the default disposition
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("*/summary.json")):
        time.sleep(0.5)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert list(out.glob("*/summary.json")) and workers
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=180) == 130
    time.sleep(1)
    alive = [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert not alive, alive
    assert subprocess.run(cmd + ["--resume"], capture_output=True, text=True).returncode == 0
    assert len(list(out.glob("*/summary.json"))) == 8
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # kept, not trained again
