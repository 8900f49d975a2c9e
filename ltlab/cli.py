"""`python -m ltlab {train,compare,pretrain,probe,figures}`: parse, build, call. Bad input -> exit 2."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="synthetic", help="preset name (see --list-presets) or YAML path")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optimizer.lr=0.01 epochs=5")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_train(a: argparse.Namespace) -> int:
    from .config import load_config
    from .train import fit

    cfg = load_config(a.config, a.overrides)
    t0 = time.time()
    s = fit(cfg, out=a.out, resume=a.resume, progress=not a.no_progress)
    print(f"test: overall {s['overall']:.2f}  many {s['many']:.2f}  medium {s['medium']:.2f}  "
          f"few {s['few']:.2f}  ECE {s['ece']:.2f}  ({s['sec_per_step']:.3f} s/step, {time.time() - t0:.0f} s)")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .config import load_config
    from .train.compare import aggregate, compare, format_table, write_csv

    cfg = load_config(a.config, a.overrides)
    spec = a.optimizers or f"{cfg.optimizer.base},sam,rsam,gnm"
    names = [n.strip() for n in spec.split(",") if n.strip()]
    from .optim import list_optimizers

    bad = [n for n in names if n not in list_optimizers()]
    if bad:
        from .errors import ConfigError

        raise ConfigError(f"--optimizers: unknown {', '.join(bad)}; choose from {', '.join(list_optimizers())}")
    t0 = time.time()
    rows = compare(cfg, names, a.seeds, a.out, progress=not a.no_progress)
    extra: tuple[str, ...] = ()
    if a.probe:
        from .reports import add_flatness_columns

        rows = add_flatness_columns(rows)
        extra = ("lambda_max", "gaussian_sharpness")
    agg = aggregate(rows, extra)
    write_csv(rows, Path(a.out) / "summary.csv")
    print(f"\n{cfg.data.name}: {cfg.epochs} epochs, {a.seeds} seed(s), test accuracy (%) of the best-on-val epoch\n")
    print(format_table(agg, extra))
    print(f"\nwall time {time.time() - t0:.0f} s; runs and summary.csv in {a.out}")
    if not a.no_figures:
        from .figures import compare_figures

        for p in compare_figures(a.out, a.figures):
            print(f"figure: {p}")
    return 0


def cmd_pretrain(a: argparse.Namespace) -> int:
    from .train.pretrain import pretrain_backbone

    rec = pretrain_backbone(out=a.out, epochs=a.epochs, n_per_class=a.n_per_class, seed=a.seed)
    print(f"source-task test accuracy {100 * rec['source_test_accuracy']:.1f}% in {rec['seconds']:.0f} s")
    return 0


def cmd_probe(a: argparse.Namespace) -> int:
    from .reports import probe_run

    what = [w.strip() for w in a.what.split(",") if w.strip()]
    for line in probe_run(a.run_dir, what, num_images=a.images, steps=a.steps, seed=a.seed,
                          progress=not a.no_progress):
        print(line)
    return 0


def cmd_figures(a: argparse.Namespace) -> int:
    from .figures import all_figures

    for p in all_figures(a.runs, a.out):
        print(f"figure: {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ltlab", description=__doc__)
    p.add_argument("--list-presets", action="store_true", help="print the packaged config presets")
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train one run")
    _add_config_args(t)
    t.add_argument("--out", default=None, help="run directory")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("compare", help="train several optimizers with the same seeds and data")
    _add_config_args(c)
    c.add_argument("--optimizers", default=None,
                   help="comma-separated (default: the config's base optimizer, sam, rsam, gnm)")
    c.add_argument("--seeds", type=int, default=1)
    c.add_argument("--out", default="runs/compare")
    c.add_argument("--figures", default="figures", help="where figures go")
    c.add_argument("--no-figures", action="store_true")
    c.add_argument("--probe", action="store_true", help="add lambda_max and Gaussian-sharpness columns")
    c.set_defaults(func=cmd_compare)

    r = sub.add_parser("pretrain", help="rebuild the bundled backbone on the synthetic source task")
    r.add_argument("--out", default=None)
    r.add_argument("--epochs", type=int, default=8)
    r.add_argument("--n-per-class", type=int, default=400)
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=cmd_pretrain)

    q = sub.add_parser("probe", help="flatness probes of a trained run (results under RUN_DIR/probes)")
    q.add_argument("run_dir")
    q.add_argument("--what", default="eig,trace,sharpness")
    q.add_argument("--images", type=int, default=256, help="held-out images the probes use")
    q.add_argument("--steps", type=int, default=21, help="grid points per axis for surfaces")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_probe)

    f = sub.add_parser("figures", help="regenerate figures from run directories, without Jupyter")
    f.add_argument("--runs", default="runs/demo")
    f.add_argument("--out", default="figures")
    f.set_defaults(func=cmd_figures)
    return p


def _init_distributed() -> None:
    """Under torchrun (WORLD_SIZE > 1): one process per GPU (NCCL), or gloo on CPUs."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def main(argv: list[str] | None = None) -> int:
    from .errors import LtlabError

    parser = build_parser()
    a = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
