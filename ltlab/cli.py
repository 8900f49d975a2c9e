"""ltlab's command line: train, compare, sweep, tune, study, report, probe, figures, pretrain.

Every subcommand takes dotted config overrides (key=value) where it trains; bad input prints what is wrong and
how to fix it, and exits with code 2."""
from __future__ import annotations

import argparse
import errno
import re
import sys
import time
import warnings
from pathlib import Path


from .probes.budget import BUDGET  # noqa: E402  (a dataclass of numbers: cheap)
from .results.vocabulary import ACCURACY, PRIMARY  # noqa: E402  (the endpoint choices of report)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None,
                   help="preset name (see --list-presets) or YAML path (default: synthetic; with --resume: the run's own)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optimizer.lr=0.01 epochs=5")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


class _Refused(argparse.Action):
    """A flag people bring from elsewhere (or an old one): refused by name (exit 2), with what to write instead."""

    def __init__(self, option_strings, dest, message: str = "", **kw):
        kw.setdefault("nargs", 0)
        super().__init__(option_strings, dest=argparse.SUPPRESS, help=argparse.SUPPRESS, **kw)
        self.message = message

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} {self.message}")


def _renamed(p: argparse.ArgumentParser, old: str, new: str, why: str = "", takes_value: bool = True) -> None:
    p.add_argument(old, action=_Refused, message=f"was renamed {new}{why}", nargs="?" if takes_value else 0)


def _positional(p: argparse.ArgumentParser, flags: tuple[str, ...], usage: str) -> None:
    """`--runs X` where the command takes its directory as a positional argument (as `ltlab report RUNS`)."""
    p.add_argument(*flags, action=_Refused, nargs="?",
                   message=f"is not an option here: the directory is the positional argument, {usage}")


def seed_spec(text: str) -> int | list[int]:
    """--seeds: a count N (the config's seed and the N - 1 after it) or a list of seeds and ranges, e.g. 0-2,5."""
    text = text.strip()
    if text.isdigit():
        if int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text}: need at least one seed (a count, or a list such as 0-2,5)")
        return int(text)
    seeds: list[int] = []
    for part in (x.strip() for x in text.split(",")):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise argparse.ArgumentTypeError(f"{text!r}: give a count (3) or seeds and ranges such as 0-2,5")
        lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        seeds += [s for s in range(lo, hi + 1) if s not in seeds]
    return seeds


def _add_jobs_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="runs trained (and probed) at once, each in its own process with its share of the cores "
                        "(data-loader workers are the config key data.num_workers)")
    _renamed(p, "--workers", "-j/--jobs", " (runs trained at once; data-loader workers are data.num_workers)")


def _add_rerun_args(p: argparse.ArgumentParser, what: str = "runs") -> None:
    """The one re-run rule of every command that trains (train, compare, sweep, tune, study)."""
    p.add_argument("--resume", action="store_true",
                   help=f"OUT already holds {what}: keep those that finished with the same config and train the rest "
                        "(an interrupted run continues from its last checkpoint or starts over; both give the same run)")
    p.add_argument("--overwrite", action="store_true", help=f"OUT already holds {what}: train all of them again")


def _add_images_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=int, default=BUDGET.images, metavar="N",
                   help=f"with --probe: training images (evaluation transforms, seeded subset) the probes use "
                        f"(default {BUDGET.images})")
    _renamed(p, "--probe-images", "--images", " (as in ltlab probe)")
    p.add_argument("--trace-hvps", type=int, default=BUDGET.scalar_trace_hvps, metavar="N",
                   help=f"with --probe: Hessian-vector products of each run's Hutch++ trace "
                        f"(default {BUDGET.scalar_trace_hvps}; the study file's evaluation.trace_hvps)")


def _add_runs_args(p: argparse.ArgumentParser, seeds: int, out: str) -> None:
    """What compare and sweep share: seeds, output, jobs, re-runs and the flatness probes of every run."""
    p.add_argument("--seeds", type=seed_spec, default=seeds, metavar="N|LIST",
                   help=f"paired seeds: a count N (the config's seed=, 0 unless overridden, and the N - 1 after it) or "
                        f"a list of seeds and ranges, e.g. 0-2,5 (default {seeds})")
    p.add_argument("--out", default=out, help=f"directory of the runs and the report (default {out})")
    _add_jobs_arg(p)
    _add_rerun_args(p)
    p.add_argument("--probe", action="store_true",
                   help="add lambda_max, lambda_min, trace and Gaussian sharpness of every run (paired like accuracy)")
    _add_images_arg(p)


def _refuse_existing(a: argparse.Namespace, out: str | Path) -> None:
    """The re-run rule for commands that keep finished runs by themselves (sweep, tune, study): an OUT that holds
    runs needs --resume or --overwrite."""
    from .errors import ConfigError

    if a.resume or a.overwrite:
        return
    found = next(iter(sorted(Path(out).rglob("summary.json"))), None) if Path(out).is_dir() else None
    if found is not None:
        raise ConfigError(f"{out} already holds runs (e.g. {found.parent}); pass --resume to keep the finished ones "
                          "and train only what is missing, --overwrite to train everything again, or choose "
                          "another --out")


def _groups(acc: dict) -> str:
    """'many 81.20  medium 79.00  few 70.10', with '-' for a group that has no classes on this task."""
    from .results.tables import cell

    return "  ".join(f"{g} {cell(acc[g])}" for g in ("many", "medium", "few"))


def cmd_train(a: argparse.Namespace) -> int:
    from .config import load_config
    from .train import fit

    config = a.config
    if config is None:
        own = Path(a.out) / "config.yaml" if a.out else None
        config = str(own) if a.resume and own is not None and own.is_file() else "synthetic"
    cfg = load_config(config, a.overrides)
    t0 = time.time()
    s = fit(cfg, out=a.out, resume=a.resume, overwrite=a.overwrite, progress=not a.no_progress)
    rule = "last epoch" if s["select"] == "last" else "best-validation epoch"
    if s.get("test", "absent") is None:  # eval.test=false: the test split was withheld
        v = s["val"]
        print(f"validation ({rule}, epoch {s['epoch']}; test split withheld): overall {v['overall']:.2f}  "
              f"{_groups(v)}  ({s['sec_per_step']:.3f} s/step, {time.time() - t0:.0f} s)")
        return 0
    print(f"test ({rule}, epoch {s['epoch']}): overall {s['overall']:.2f} ± {s['stderr']['overall']:.2f} (s.e.)  "
          f"{_groups(s)}  ECE {s['ece']:.2f}  "
          f"({s['sec_per_step']:.3f} s/step, {time.time() - t0:.0f} s)")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .config import load_config
    from .reports.comparison import write_report
    from .experiments.compare import compare

    cfg = load_config(a.config or "synthetic", a.overrides)
    names = _optimizer_names(a.optimizers, cfg)
    _check_runs_args(a)
    from .config import method_configs

    configs = method_configs(a.config or "synthetic", names, a.overrides) if names else {}
    references = _references(a.reference)
    t0 = time.time()
    rows = compare(cfg, names, a.seeds, a.out, progress=not a.no_progress, overwrite=a.overwrite,
                   workers=a.jobs, reuse=a.resume, reference=references, configs=configs)
    if a.probe:
        from .results.probing import add_flatness_columns

        add_flatness_columns(rows, a.images, progress=not a.no_progress, workers=a.jobs, trace_hvps=a.trace_hvps)
    import shlex

    command = "python -m ltlab " + " ".join(shlex.quote(x) for x in a.argv)
    report = write_report(a.out, figures=not a.no_figures, command=command)
    print("\n" + report.brief())
    print(f"\nwall time {time.time() - t0:.0f} s; runs, summary.csv and report.md in {a.out}")
    if (a.config or "synthetic").startswith("synthetic"):
        print("A few seeds resolve only large effects: the project's result on this task is the fair study "
              "(make study: every method tuned on validation, 12 fresh seeds; report in studies/synthetic/study.md).")
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    import shlex

    from .config import load_config
    from .experiments.sweep import run_sweep

    cfg = load_config(a.config or "synthetic", a.overrides)
    names = _optimizer_names(a.optimizers, cfg)
    _check_runs_args(a)
    _refuse_existing(a, a.out)
    t0 = time.time()
    out = run_sweep(cfg, names, a.grid, a.seeds, a.out, workers=a.jobs, overwrite=a.overwrite,
                    probe=a.images if a.probe else None, trace_hvps=a.trace_hvps,
                    progress=not a.no_progress, command="python -m ltlab " + " ".join(shlex.quote(x) for x in a.argv))
    print(out["markdown"])
    print(f"\nwall time {time.time() - t0:.0f} s; {out['path']}, {out['figures'][-1]} and each cell's report.md")
    return 0


def _references(spec: str | None) -> list[str]:
    from .errors import ConfigError
    from .results import REFERENCES

    kinds = [k.strip() for k in (spec or "").split(",") if k.strip()]
    for k in kinds:
        if k not in REFERENCES:
            raise ConfigError(f"--reference {k}: unknown; choose from {', '.join(REFERENCES)} (comma-separated)")
    return kinds


def _check_runs_args(a: argparse.Namespace, probe: bool = True) -> None:
    from .errors import ConfigError

    if a.jobs < 1:
        raise ConfigError(f"--jobs {a.jobs}: need at least 1 (runs trained at once)")
    if probe and a.images < 1:
        raise ConfigError(f"--images {a.images}: need at least 1 image")
    if probe and a.trace_hvps < 1:
        raise ConfigError(f"--trace-hvps {a.trace_hvps}: need at least 1 Hessian-vector product (default "
                          f"{BUDGET.scalar_trace_hvps})")
    if a.resume and a.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other: keep finished runs (--resume) or train "
                          "everything again (--overwrite)")


def _optimizer_names(spec: str | None, cfg) -> list[str]:
    """--optimizers as a checked list; not given: the config's base and the paper's comparison. An empty list
    ('' or ',') is refused, not read as the default."""
    from .errors import ConfigError
    from .optim import PAPER_COMPARISON, optimizer_info

    default = ",".join((cfg.optimizer.base, *PAPER_COMPARISON))
    names = [n.strip() for n in (default if spec is None else spec).split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--optimizers {spec!r}: name at least one optimizer, e.g. {default}")
    for n in names:
        try:
            optimizer_info(n)
        except ConfigError as e:
            raise ConfigError(f"--optimizers: {e}") from None
    return names


def cmd_tune(a: argparse.Namespace) -> int:
    import shlex

    from .experiments.study import load_study, tune

    _check_runs_args(a, probe=False)
    study = load_study(a.study)
    _refuse_existing(a, Path(a.out) / "tune")
    t0 = time.time()
    tune(study, a.out, workers=a.jobs, progress=not a.no_progress, overwrite=a.overwrite,
         command="python -m ltlab " + " ".join(shlex.quote(x) for x in a.argv))
    print((Path(a.out) / "tune" / "tune.md").read_text())
    print(f"wall time {time.time() - t0:.0f} s; selected configurations: {Path(a.out) / 'tune' / 'tuned.yaml'}")
    return 0


def cmd_study(a: argparse.Namespace) -> int:
    import shlex

    from .experiments.study import evaluate, load_study, tune
    from .reports.study import write_study_report

    _check_runs_args(a, probe=False)
    study = load_study(a.study)
    _refuse_existing(a, a.out)
    command = "python -m ltlab " + " ".join(shlex.quote(x) for x in a.argv)
    t0 = time.time()
    tune(study, a.out, workers=a.jobs, progress=not a.no_progress, command=command, overwrite=a.overwrite)
    t1 = time.time()
    evaluate(study, Path(a.out) / "tune" / "tuned.yaml", a.out, workers=a.jobs, progress=not a.no_progress,
             overwrite=a.overwrite)
    t2 = time.time()
    import json

    record = Path(a.out) / "timing.json"  # wall time summed over the invocations (a resumed one adds what it ran)
    past = json.loads(record.read_text()) if record.is_file() and not a.overwrite else {}
    timing = {"tune": past.get("tune", 0.0) + t1 - t0, "evaluate": past.get("evaluate", 0.0) + t2 - t1,
              "invocations": past.get("invocations", 0) + 1}
    record.write_text(json.dumps(timing))
    report = write_study_report(study, a.out, command=command, timing=timing)
    print(report)
    print(f"\nwall time {time.time() - t0:.0f} s (tuning {t1 - t0:.0f} s, evaluation and probes {t2 - t1:.0f} s); "
          f"report: {Path(a.out) / 'study.md'}")
    return 0


def _file_out(path: str, example: str) -> None:
    """An --out that names a file: refused (exit 2) when it is a directory or its folder cannot take a file."""
    from .errors import ConfigError
    from .train.runs import writable_dir

    if Path(path).is_dir():
        raise ConfigError(f"--out {path} is a directory; give a file, e.g. {Path(path) / example}")
    writable_dir(Path(path).resolve().parent, "the folder of --out")


def cmd_report(a: argparse.Namespace) -> int:
    from .reports.comparison import write_report
    from .results.runs import finished_runs

    if a.out is not None:
        finished_runs(a.runs_dir)  # what is wrong with RUNS first, then what is wrong with --out
        _file_out(a.out, "report.md")

    report = write_report(a.runs_dir, out=a.out, base=a.base, figures=not a.no_figures, method=a.interval,
                          endpoint=a.endpoint)
    print(report.markdown)
    print(f"\nreport: {report.path}")
    return 0


def cmd_pretrain(a: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .train.pretrain import pretrain_backbone

    if a.out is None and not a.replace_bundled:
        raise ConfigError("pretrain writes a backbone: give --out PATH, or --replace-bundled to overwrite the "
                          "bundled ltlab-tiny weights in the package")
    if a.out is not None:  # before minutes of training
        _file_out(a.out, "weights.pt")
    rec = pretrain_backbone(out=a.out, epochs=a.epochs, n_per_class=a.n_per_class, seed=a.seed,
                            texture_weight=a.texture_weight)
    print(f"source-task test accuracy {100 * rec['source_test_accuracy']:.1f}% in {rec['seconds']:.0f} s")
    return 0


def cmd_probe(a: argparse.Namespace) -> int:
    from .results.probing import probe_run

    from .errors import ConfigError

    what = list(dict.fromkeys(w.strip() for w in a.what.split(",") if w.strip()))  # each probe once
    if not what:
        raise ConfigError("--what is empty; name probes, e.g. --what eig,trace,sharpness")
    images = None if a.images.strip().lower() == "all" else a.images
    if images is not None:
        try:
            images = int(images)
        except ValueError:
            raise ConfigError(f"--images {a.images!r}: give a number of images or 'all'") from None
        if images < 1:
            raise ConfigError(f"--images {a.images}: need at least 1 image (or 'all')")
    if a.batch_size < 1:
        raise ConfigError(f"--batch-size {a.batch_size}: need at least 1 image per batch")
    if a.steps < 3:
        raise ConfigError(f"--steps {a.steps}: a surface needs at least 3 grid points per axis")
    for line in probe_run(a.run_dir, what, num_images=images, steps=a.steps, seed=a.seed,
                          progress=not a.no_progress, loss=a.loss, batch_size=a.batch_size, split=a.split):
        print(line)
    return 0


def cmd_figures(a: argparse.Namespace) -> int:
    from .reports.figures import all_figures
    from .results.runs import finished_runs
    from .train.runs import writable_dir

    runs = a.runs_dir
    if runs is None:  # the study's evaluation runs (make study) when present, else the demo's
        study = Path("runs/study/eval")
        runs = str(study) if any(study.glob("*/summary.json")) else "runs/demo"
    finished_runs(runs)  # what is wrong with RUNS first, then what is wrong with --out
    setups = a.setups or "runs/lpt_vs_vpt"  # the default is optional; a directory the user names is not
    if a.setups is not None and not any(Path(a.setups).glob("*-s*/summary.json")):
        from .errors import DataError

        raise DataError(f"--setups {a.setups} holds no finished VPT / LPT setup runs; make them with python "
                        "bench/lpt_vs_vpt.py, or leave --setups out")
    writable_dir(a.out, "the figures' folder")
    for p in all_figures(runs, a.out, setups_dir=setups):
        print(f"figure: {p}")
    return 0


def _probe_names() -> list[str]:
    from .results.probing import PROBES

    return list(PROBES)


def build_parser() -> argparse.ArgumentParser:
    prog = "ltlab" if Path(sys.argv[0]).name == "ltlab" else "python -m ltlab"
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    from . import __version__

    p.add_argument("--version", action="version", version=f"ltlab {__version__}")
    p.add_argument("--list-presets", action="store_true", help="print the packaged config presets")
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train one run")
    _add_config_args(t)
    t.add_argument("--out", default=None, help="run directory (default: a new directory under runs/)")
    t.add_argument("--resume", action="store_true",
                   help="OUT holds this run: continue it from OUT/checkpoints/last.pt (a finished run is kept)")
    t.add_argument("--overwrite", action="store_true", help="OUT holds a run: delete it and train again")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("compare", help="train several optimizers with the same seeds and data")
    _add_config_args(c)
    c.add_argument("--optimizers", default=None,
                   help="comma-separated registry names or import paths package.module:Class (default: the "
                        "config's base optimizer, sam, rsam, gnm)")
    _add_runs_args(c, seeds=1, out="runs/compare")
    _renamed(c, "--reuse", "--resume", " (the re-run rule of every command)", takes_value=False)
    c.add_argument("--no-figures", action="store_true", help="report without figures (they go to OUT/figures)")
    c.add_argument("--reference", default=None, metavar="linear,compute",
                   help="also train reference rows on the same seeds: linear = the linear probe (the base run with "
                        "model.prompt_length=0), reported beside the methods with VPT's paired difference to it; "
                        "compute = the base run for twice the epochs (a two-pass method's cost)")
    c.set_defaults(func=cmd_compare)

    w = sub.add_parser("sweep", help="a grid of paired comparisons (a method's own options and shared keys)")
    _add_config_args(w)
    w.add_argument("--optimizers", default=None,
                   help="comma-separated methods (default: the config's base and ltlab.optim.PAPER_COMPARISON)")
    w.add_argument("--grid", nargs="+", default=[], metavar="[METHOD:]KEY=V1,V2",
                   help="swept keys: METHOD:optimizer.method.rho=0.05,0.5 for one method's own option, KEY=V1,V2 "
                        "(e.g. data.imbalance_ratio=10,50) for every run; overrides go before --grid")
    _add_runs_args(w, seeds=3, out="runs/sweep")
    w.set_defaults(func=cmd_sweep)

    for name, fn, text in (("tune", cmd_tune, "select every method's options on validation (a study file's grids)"),
                           ("study", cmd_study, "the fair study: tune on validation, evaluate on fresh seeds, probe, "
                                                "report (resumable)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("study", help="study file (YAML), e.g. studies/synthetic.yaml")
        s.add_argument("--out", default="runs/study", help="where the runs and the report go (default runs/study)")
        _add_jobs_arg(s)
        _add_rerun_args(s)
        s.add_argument("--no-progress", action="store_true", help="no progress bar")
        s.set_defaults(func=fn)

    rp = sub.add_parser("report", help="report.md from a directory of runs: mean ± std, paired CIs, verdicts")
    rp.add_argument("runs_dir", metavar="RUNS", help="directory of finished runs (compare's --out)")
    _positional(rp, ("--runs",), "ltlab report RUNS")
    rp.add_argument("--out", default=None, help="report path (default RUNS_DIR/report.md)")
    rp.add_argument("--base", default=None, help="optimizer to pair against (default: the config's base)")
    rp.add_argument("--interval", choices=("t", "bootstrap"), default="t",
                    help="paired 95%% interval: Student t (default) or a percentile bootstrap of the paired differences")
    rp.add_argument("--endpoint", choices=ACCURACY, default=PRIMARY,
                    help="the primary endpoint, whose verdicts are Holm-corrected over the methods (default overall; "
                         "a study that declared another: its study file's endpoint)")
    rp.add_argument("--no-figures", action="store_true", help="write the report without its figures")
    rp.set_defaults(func=cmd_report)

    r = sub.add_parser("pretrain", help="rebuild the bundled backbone on the synthetic source task")
    r.add_argument("--out", default=None, help="where the weights go (.pt; a .yaml record is written beside)")
    r.add_argument("--replace-bundled", action="store_true", help="overwrite the bundled ltlab-tiny weights")
    r.add_argument("--epochs", type=int, default=8, help="epochs on the source task (default 8)")
    r.add_argument("--n-per-class", type=int, default=400, help="source-task images per class (default 400)")
    r.add_argument("--seed", type=int, default=0, help="seed of the source task and the weights (default 0)")
    r.add_argument("--texture-weight", type=float, default=1.0,
                   help="weight of the dense texture objective on the mean patch token (the bundled backbone: 1; "
                        "0 = the [CLS] objective only)")
    r.set_defaults(func=cmd_pretrain)

    q = sub.add_parser("probe", help="flatness probes of a trained run (results under RUN_DIR/probes)")
    q.add_argument("run_dir", metavar="RUN", help="one finished run's directory")
    _positional(q, ("--run", "--runs"), "ltlab probe RUN")
    q.add_argument("--what", default="eig,trace,sharpness", metavar="LIST",
                   help="comma-separated probes (default eig,trace,sharpness) from: " + ", ".join(_probe_names()))
    q.add_argument("--images", default=str(BUDGET.images),
                   help="images of the split the probes use (a seeded subset), or 'all' for the whole split")
    q.add_argument("--batch-size", type=int, default=BUDGET.batch_size,
                   help="images per batch; more images than this are streamed batch by batch on every pass, so "
                        "memory does not grow with --images (under torchrun, each rank streams its share)")
    q.add_argument("--split", choices=("train", "val", "test"), default="train",
                   help="which split to probe (train: the training images with evaluation transforms)")
    q.add_argument("--steps", type=int, default=BUDGET.surface_steps, help="grid points per axis for surfaces")
    q.add_argument("--seed", type=int, default=0, help="seed of the image subset and the random directions")
    q.add_argument("--loss", choices=("ce", "train"), default="ce",
                   help="probe plain CE (default) or the loss the run was trained with (deterministic form)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_probe)

    f = sub.add_parser("figures", help="regenerate figures from run directories, without Jupyter")
    f.add_argument("runs_dir", metavar="RUNS", nargs="?", default=None,
                   help="directory of finished runs (default: runs/study/eval when make study made it, else runs/demo)")
    f.add_argument("--out", default="figures", help="where the figures go (default figures)")
    _renamed(f, "--runs", "the positional RUNS", " (as in ltlab report RUNS): ltlab figures RUNS")
    f.add_argument("--setups", default=None,
                   help="VPT / LPT setup runs of bench/lpt_vs_vpt.py for figure lpt_vs_vpt_* (default runs/lpt_vs_vpt, "
                        "skipped when absent; a directory named here must hold them)")
    f.set_defaults(func=cmd_figures)
    return p


def _init_distributed() -> None:
    """Under torchrun (WORLD_SIZE > 1): one process per GPU (NCCL), or gloo on CPUs."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.EIO}


def _warning_printer(quiet: bool):
    """warnings.showwarning for the command line: ltlab's own as one 'warning: ...' line, once per message (rank 0
    only; a comparison loads one config per method), others as Python prints them."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        own = Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent)
        if quiet or (own and str(message) in shown):
            return
        shown.add(str(message))
        print(f"warning: {message}" if own else warnings.formatwarning(message, category, filename, lineno, line),
              file=sys.stderr, end="\n" if own else "")
    return show


def main(argv: list[str] | None = None) -> int:
    from .errors import LtlabError

    import contextlib
    import io
    import os

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # under torchrun every rank runs this; only rank 0 reports bad input (the others exit 2 silently)
    quiet = int(os.environ.get("RANK", "0")) > 0
    try:
        with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
            a, extra = parser.parse_known_args(argv)
            # overrides may sit on both sides of an option (`train a=1 --out x b=2`); argparse's nargs="*"
            # positional takes only the first run of them
            stray = [t for t in extra if t.startswith("-") or "=" not in t or not hasattr(a, "overrides")]
            if stray:
                parser.error(f"unrecognized arguments: {' '.join(stray)}")
            if extra:
                a.overrides = [*a.overrides, *extra]
    except SystemExit as e:  # argparse's own errors (exit 2, usage printed) and --help / --version (exit 0)
        return int(e.code or 0)
    a.argv = argv
    if a.list_presets:
        from .config import list_presets

        print("\n".join(list_presets()))
        return 0
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    _init_distributed()
    with warnings.catch_warnings():
        warnings.showwarning = _warning_printer(quiet)
        try:
            return a.func(a)
        except LtlabError as e:
            if not quiet:
                print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        except OSError as e:  # a full disk, a read-only or vanished output: the atomic writers kept the last good files
            if e.errno not in _WRITE_ERRORS:
                raise
            where = f" {e.filename}" if e.filename else ""
            print(f"error: cannot write{where}: {e.strerror or e}. Files written before this point (the last good "
                  "checkpoint, metrics) are intact and no partial file was left; free some space or choose another "
                  "--out, then rerun (add --resume to continue a training run).", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
