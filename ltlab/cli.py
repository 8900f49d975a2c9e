"""ltlab's command line: train, compare, sweep, tune, study, report, probe, figures, pretrain.

Every subcommand takes dotted config overrides (key=value) where it trains; bad input prints what is wrong and
how to fix it, and exits with code 2."""
from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path


from .probes.budget import BUDGET  # noqa: E402  (a dataclass of numbers: cheap)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None,
                   help="preset name (see --list-presets) or YAML path (default: synthetic; with --resume: the run's own)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optimizer.lr=0.01 epochs=5")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_runs_args(p: argparse.ArgumentParser, seeds: int, out: str) -> None:
    """What compare and sweep share: seeds, output, workers and the flatness probes of every run."""
    p.add_argument("--seeds", type=int, default=seeds, metavar="N",
                   help=f"number of paired seeds: seed, seed + 1, ..., seed + N - 1 (default {seeds}; the first is the "
                        "config's seed=, 0 unless overridden)")
    p.add_argument("--out", default=out, help=f"directory of the runs and the report (default {out})")
    p.add_argument("--workers", type=int, default=1,
                   help="runs trained (and probed) at once, each in its own process (not data-loader workers: those "
                        "are data.num_workers)")
    p.add_argument("--probe", action="store_true",
                   help="add lambda_max, lambda_min, trace and Gaussian sharpness of every run (paired like accuracy)")
    p.add_argument("--probe-images", type=int, default=BUDGET.images, metavar="N",
                   help=f"training images (evaluation transforms, seeded subset) the probes use (default {BUDGET.images})")


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
    print(f"test ({rule}, epoch {s['epoch']}): overall {s['overall']:.2f} ± {s['stderr']['overall']:.2f} (s.e.)  "
          f"many {s['many']:.2f}  medium {s['medium']:.2f}  few {s['few']:.2f}  ECE {s['ece']:.2f}  "
          f"({s['sec_per_step']:.3f} s/step, {time.time() - t0:.0f} s)")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .config import load_config
    from .reports.comparison import write_report
    from .experiments.compare import compare

    cfg = load_config(a.config or "synthetic", a.overrides)
    from .optim import PAPER_COMPARISON

    spec = a.optimizers or ",".join((cfg.optimizer.base, *PAPER_COMPARISON))
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if names:  # an empty list: compare itself names the fix
        _check_optimizers(names)
    _check_runs_args(a)
    from .config import method_configs

    configs = method_configs(a.config or "synthetic", names, a.overrides) if names else {}
    references = _references(a.reference)
    t0 = time.time()
    rows = compare(cfg, names, a.seeds, a.out, progress=not a.no_progress, overwrite=a.overwrite,
                   workers=a.workers, reuse=a.reuse, reference=references, configs=configs)
    if a.probe:
        from .results.probing import add_flatness_columns

        add_flatness_columns(rows, a.probe_images, progress=not a.no_progress, workers=a.workers)
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
    from .optim import PAPER_COMPARISON

    spec = a.optimizers or ",".join((cfg.optimizer.base, *PAPER_COMPARISON))
    names = [n.strip() for n in spec.split(",") if n.strip()]
    _check_runs_args(a)
    _check_optimizers(names)
    t0 = time.time()
    out = run_sweep(cfg, names, a.grid, a.seeds, a.out, workers=a.workers, overwrite=a.overwrite,
                    probe=a.probe_images if a.probe else None,
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

    if a.workers < 1:
        raise ConfigError(f"--workers {a.workers}: need at least 1")
    if probe and a.probe_images < 1:
        raise ConfigError(f"--probe-images {a.probe_images}: need at least 1 image")


def _check_optimizers(names: list[str]) -> None:
    from .errors import ConfigError
    from .optim import optimizer_info

    if not names:
        raise ConfigError("--optimizers: name at least one optimizer")
    for n in names:
        try:
            optimizer_info(n)
        except ConfigError as e:
            raise ConfigError(f"--optimizers: {e}") from None


def cmd_tune(a: argparse.Namespace) -> int:
    import shlex

    from .experiments.study import load_study, tune

    _check_runs_args(a, probe=False)
    study = load_study(a.study)
    t0 = time.time()
    tune(study, a.out, workers=a.workers, progress=not a.no_progress,
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
    command = "python -m ltlab " + " ".join(shlex.quote(x) for x in a.argv)
    t0 = time.time()
    tune(study, a.out, workers=a.workers, progress=not a.no_progress, command=command)
    t1 = time.time()
    evaluate(study, Path(a.out) / "tune" / "tuned.yaml", a.out, workers=a.workers, progress=not a.no_progress)
    t2 = time.time()
    report = write_study_report(study, a.out, command=command,
                                timing={"tune": t1 - t0, "evaluate": t2 - t1})
    print(report)
    print(f"\nwall time {time.time() - t0:.0f} s (tuning {t1 - t0:.0f} s, evaluation and probes {t2 - t1:.0f} s); "
          f"report: {Path(a.out) / 'study.md'}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .reports.comparison import write_report

    report = write_report(a.runs_dir, out=a.out, base=a.base, figures=not a.no_figures, method=a.interval)
    print(report.markdown)
    print(f"\nreport: {report.path}")
    return 0


def cmd_pretrain(a: argparse.Namespace) -> int:
    from .train.pretrain import pretrain_backbone

    if a.out is None and not a.replace_bundled:
        from .errors import ConfigError

        raise ConfigError("pretrain writes a backbone: give --out PATH, or --replace-bundled to overwrite the "
                          "bundled ltlab-tiny weights in the package")
    rec = pretrain_backbone(out=a.out, epochs=a.epochs, n_per_class=a.n_per_class, seed=a.seed,
                            texture_weight=a.texture_weight)
    print(f"source-task test accuracy {100 * rec['source_test_accuracy']:.1f}% in {rec['seconds']:.0f} s")
    return 0


def cmd_probe(a: argparse.Namespace) -> int:
    from .results.probing import probe_run

    from .errors import ConfigError

    what = [w.strip() for w in a.what.split(",") if w.strip()]
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

    for p in all_figures(a.runs, a.out, setups_dir=a.setups):
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
    t.add_argument("--out", default=None, help="run directory")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    t.add_argument("--overwrite", action="store_true", help="delete the run already in OUT and start over")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("compare", help="train several optimizers with the same seeds and data")
    _add_config_args(c)
    c.add_argument("--optimizers", default=None,
                   help="comma-separated registry names or import paths package.module:Class (default: the "
                        "config's base optimizer, sam, rsam, gnm)")
    _add_runs_args(c, seeds=1, out="runs/compare")
    c.add_argument("--overwrite", action="store_true", help="start over runs that already exist in OUT")
    c.add_argument("--reuse", action="store_true", help="keep finished runs in OUT, train only the missing ones")
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
    w.add_argument("--overwrite", action="store_true", help="train every run of the grid again")
    w.set_defaults(func=cmd_sweep)

    for name, fn, text in (("tune", cmd_tune, "select every method's options on validation (a study file's grids)"),
                           ("study", cmd_study, "the fair study: tune on validation, evaluate on fresh seeds, probe, "
                                                "report (resumable)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("study", help="study file (YAML), e.g. studies/synthetic.yaml")
        s.add_argument("--out", default="runs/study", help="where the runs and the report go (default runs/study)")
        s.add_argument("--workers", type=int, default=1, help="runs trained at once, in separate processes")
        s.add_argument("--no-progress", action="store_true", help="no progress bar")
        s.set_defaults(func=fn)

    rp = sub.add_parser("report", help="report.md from a directory of runs: mean ± std, paired CIs, verdicts")
    rp.add_argument("runs_dir")
    rp.add_argument("--out", default=None, help="report path (default RUNS_DIR/report.md)")
    rp.add_argument("--base", default=None, help="optimizer to pair against (default: the config's base)")
    rp.add_argument("--interval", choices=("t", "bootstrap"), default="t")
    rp.add_argument("--no-figures", action="store_true")
    rp.set_defaults(func=cmd_report)

    r = sub.add_parser("pretrain", help="rebuild the bundled backbone on the synthetic source task")
    r.add_argument("--out", default=None, help="where the weights go (.pt; a .yaml record is written beside)")
    r.add_argument("--replace-bundled", action="store_true", help="overwrite the bundled ltlab-tiny weights")
    r.add_argument("--epochs", type=int, default=8)
    r.add_argument("--n-per-class", type=int, default=400)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--texture-weight", type=float, default=1.0,
                   help="weight of the dense texture objective on the mean patch token (the bundled backbone: 1; "
                        "0 = the [CLS] objective only)")
    r.set_defaults(func=cmd_pretrain)

    q = sub.add_parser("probe", help="flatness probes of a trained run (results under RUN_DIR/probes)")
    q.add_argument("run_dir")
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
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--loss", choices=("ce", "train"), default="ce",
                   help="probe plain CE (default) or the loss the run was trained with (deterministic form)")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_probe)

    f = sub.add_parser("figures", help="regenerate figures from run directories, without Jupyter")
    f.add_argument("--runs", default="runs/demo")
    f.add_argument("--out", default="figures")
    f.add_argument("--setups", default="runs/lpt_vs_vpt",
                   help="VPT / LPT setup runs of bench/lpt_vs_vpt.py (figure lpt_vs_vpt_*; skipped when absent)")
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


def main(argv: list[str] | None = None) -> int:
    from .errors import LtlabError

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parser.parse_args(argv)
    a.argv = argv
    if a.list_presets:
        from .config import list_presets

        print("\n".join(list_presets()))
        return 0
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    _init_distributed()
    try:
        return a.func(a)
    except LtlabError as e:
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
