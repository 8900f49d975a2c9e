"""Paired comparisons: every method trained on the same seeds, tabulated with paired 95 % intervals.

Seed s gives every method the same data, data order, initialisation and per-step augmentation /
dropout seeds; only the optimizer's own randomness differs (GNM/RSAM noise is seeded from s too).
Rows come from each run's summary.json, so a table can always be rebuilt from the run directories.

>>> rows = compare(load_config("synthetic"), ["sgd", "gnm"], seeds=3, out="runs/cmp", reference="linear")  # doctest: +SKIP
>>> print(format_table(aggregate(rows), paired_table(rows, "sgd")))  # ltlab.tables    # doctest: +SKIP

The runs of a directory are read one way: `finished_runs` (checked to be of one task, in the registry's
order), and `load_rows` makes them table rows.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, run_label, with_optimizer
from ..errors import ConfigError, DataError
from ..optim import OPTIMIZERS, PAPER_COMPARISON, optimizer_info
from ..stats import PairedDiff, mean_std, paired_difference, with_holm
from .runs import Run, load_run
from .trainer import fit

ACCURACY = ("overall", "many", "medium", "few")
COLUMNS = ACCURACY + ("ece", "sec_per_step", "peak_memory_mb")
FLATNESS = ("lambda_max", "lambda_min", "trace", "gaussian_sharpness", "lambda_max_many", "lambda_max_medium",
            "lambda_max_few")
# which direction is good, for the verdict word (None: no good direction, the words are higher / lower)
HIGHER_IS_BETTER: dict[str, bool | None] = {**{c: True for c in ACCURACY}, "ece": False,
                                            **{c: None for c in FLATNESS}}
PRIMARY = "overall"  # the primary endpoint: its verdicts are Holm-corrected over the methods of a table
# reference rows: printed beside the methods where accuracy is compared, never paired as a method
REFERENCES = {"linear": "linear-probe", "compute": "equal-compute"}


def run_name(label: str, seed: int) -> str:
    return f"{label}-s{seed}"


def summary_label(summary: dict[str, Any]) -> str:
    """A finished run's label from its summary.json (runs made before labels existed: the optimizer's name)."""
    return summary.get("label") or summary["optimizer"]


def reference_config(cfg: ExperimentConfig, kind: str = "linear") -> ExperimentConfig:
    """A reference run of a comparison, built from the base run `cfg` (VPT with the base optimizer):
    `linear` = the linear probe, the base run with `model.prompt_length=0` and nothing else changed (same head,
    loss, schedule, optimizer); `compute` = the equal-compute base, the base run for twice the epochs (the
    forward-backward passes of a two-pass method such as SAM on the normal schedule)."""
    if kind not in REFERENCES:
        raise ConfigError(f"--reference {kind}: unknown; choose one of {', '.join(REFERENCES)}")
    if kind == "compute":
        return with_optimizer(cfg, cfg.optimizer.name, cfg.optimizer.method, label=REFERENCES[kind],
                              epochs=2 * cfg.epochs)
    return with_optimizer(cfg, cfg.optimizer.base, label=REFERENCES[kind],
                          model=dataclasses.replace(cfg.model, prompt_length=0))


def is_reference(label: str) -> bool:
    return label in REFERENCES.values()


def _one_run(cfg: ExperimentConfig, path: str, overwrite: bool, progress: bool, threads: int) -> dict[str, Any]:
    if threads:
        import torch

        torch.set_num_threads(threads)
    return summary_row(fit(cfg, out=path, progress=progress, overwrite=overwrite), path)


def compare(cfg: ExperimentConfig, optimizers: Sequence[str], seeds: int | Sequence[int] = 1,
            out: str | Path = "runs/compare", progress: bool = True, overwrite: bool = False, workers: int = 1,
            reuse: bool = False, reference: str | Sequence[str] | None = None,
            configs: dict[str, ExperimentConfig] | None = None, redraw_data: bool = False) -> list[dict[str, Any]]:
    """Train every (optimizer, seed) pair into out/<label>-s<seed>; one row per run.

    workers > 1 trains that many runs at once in separate processes (one torch thread each share of
    the cores). reuse=True keeps runs that already finished with this very config and trains the
    others over (a stale run of another config is replaced, never mixed in); without reuse an
    existing run is refused unless overwrite=True. reference="linear" also trains the linear probe
    (`reference_config`) on the same seeds, as the row `linear-probe` (several: a list, e.g. linear, compute).
    configs: each method's own config (a preset's per-method blocks, `ltlab.config.method_configs`); a method
    it does not name gets cfg with its class defaults. seeds: a count (cfg.seed, cfg.seed + 1, ...) or the seeds
    themselves. redraw_data=True: seed s also draws its own task sample (data.seed = s, the same for every
    method on that seed).
    """
    if isinstance(seeds, int) and seeds < 1:
        raise ConfigError(f"--seeds {seeds}: need at least one seed")
    optimizers = list(dict.fromkeys(optimizers))
    if not optimizers:
        raise ConfigError("--optimizers: name at least one optimizer, e.g. "
                          + ",".join((cfg.optimizer.base, *PAPER_COMPARISON)))
    return run_jobs(comparison_jobs(cfg, optimizers, seeds, out, reference, configs, redraw_data), progress=progress,
                    overwrite=overwrite, workers=workers, reuse=reuse)


def comparison_jobs(cfg: ExperimentConfig, optimizers: Sequence[str], seeds: int | Sequence[int], out: str | Path,
                    reference: str | Sequence[str] | None = None, configs: dict[str, ExperimentConfig] | None = None,
                    redraw_data: bool = False) -> list[tuple[ExperimentConfig, str]]:
    """(config, run directory) of every run of a comparison: each method with its own options (`configs`' for
    the methods it names, the config's for the method it names, the class defaults for the others) on the
    seeds (a count from cfg.seed, or a list); the reference rows last, built from the base's config."""
    configs = configs or {}
    variants = [configs.get(n) or (cfg if n == cfg.optimizer.name else with_optimizer(cfg, n))
                for n in dict.fromkeys(optimizers)]
    base = configs.get(cfg.optimizer.base) or (cfg if cfg.optimizer.name == cfg.optimizer.base
                                               else with_optimizer(cfg, cfg.optimizer.base))
    for kind in ([reference] if isinstance(reference, str) else list(reference or ())):
        variants.append(reference_config(base, kind))
    seed_list = [cfg.seed + k for k in range(seeds)] if isinstance(seeds, int) else list(seeds)
    jobs = []
    for variant in variants:
        for s in seed_list:
            run_cfg = dataclasses.replace(variant, seed=s)
            if redraw_data:
                run_cfg = dataclasses.replace(run_cfg, data=dataclasses.replace(run_cfg.data, seed=s))
            jobs.append((run_cfg, str(Path(out) / run_name(run_label(run_cfg), run_cfg.seed))))
    return jobs


def run_jobs(jobs: list[tuple[ExperimentConfig, str]], progress: bool = True, overwrite: bool = False,
             workers: int = 1, reuse: bool = False, keep: bool = False) -> list[dict[str, Any]]:
    """Train (config, run directory) jobs; one row per job, in the jobs' order.

    reuse=True keeps runs that finished with this very config and trains the others over (a stale run is
    replaced). keep=True (`ltlab sweep`) keeps those too, starts unfinished ones over, and refuses to
    replace a finished run of another config unless overwrite=True. Neither: an existing run is refused
    unless overwrite=True. keep=True shows one progress bar over all jobs.
    """
    rows: dict[str, dict[str, Any]] = {}
    todo, conflicts = [], []
    for run_cfg, path in jobs:
        if (reuse or keep) and not (keep and overwrite) and finished_with(path, run_cfg):
            rows[path] = summary_row(json.loads((Path(path) / "summary.json").read_text()), path)
        elif keep and not overwrite and (Path(path) / "summary.json").exists():
            conflicts.append(path)
        else:
            todo.append((run_cfg, path))
    if conflicts:
        raise ConfigError(f"{len(conflicts)} finished run(s) of another config are in the way, e.g. {conflicts[0]}; "
                          "pass --overwrite to train them again, or choose another --out")
    overwrite = overwrite or reuse or keep  # an unfinished run is started over
    if workers <= 1 or len(todo) <= 1:
        from tqdm.auto import tqdm

        for run_cfg, path in tqdm(todo, desc="runs", unit="run", disable=not (progress and keep)):
            rows[path] = _one_run(run_cfg, path, overwrite, progress and not keep, 0)
    else:
        rows.update(_parallel(todo, overwrite, progress, workers))
    return [rows[p] for _, p in jobs]


def finished_with(path: str | Path, cfg: ExperimentConfig) -> bool:
    """A finished run of exactly this config (a run of another config is trained again, never mixed in)."""
    import yaml

    from .checkpoint import changed_since

    p = Path(path)
    if not (p / "summary.json").exists() or not (p / "config.yaml").exists():
        return False
    if cfg.method == "lpt":  # an LPT run directory holds phase 2's config (phase 1 finished before it)
        from .lpt import lpt_phases

        cfg = lpt_phases(cfg)[1]
    try:
        return not changed_since(yaml.safe_load((p / "config.yaml").read_text()) or {}, cfg)
    except yaml.YAMLError:
        return False


def _parallel(jobs, overwrite: bool, progress: bool, workers: int) -> dict[str, dict[str, Any]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    threads = max(1, (os.cpu_count() or 1) // workers)
    out = {}
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        # the two-pass methods first, so the pool does not end on one long run
        jobs = sorted(jobs, key=lambda j: -optimizer_info(j[0].optimizer.name).closures_per_step)
        futures = {pool.submit(_one_run, c, p, overwrite, False, threads): p for c, p in jobs}
        with tqdm(total=len(jobs), desc=f"runs ({workers} at a time)", unit="run", disable=not progress) as bar:
            for f in as_completed(futures):
                out[futures[f]] = f.result()
                bar.update()
                bar.set_postfix_str(Path(futures[f]).name)
    return out


def summary_row(summary: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """One flat table row from a run's summary.json dict: the headline (its rule and epoch), the other rule, costs."""
    best = summary.get("best_val") or {}
    row = {"label": summary_label(summary), "optimizer": summary["optimizer"],
           "seed": summary["seed"], "run": str(path),
           "select": summary.get("select", "last"), "epoch": summary.get("epoch"),
           **{c: summary.get(c) for c in COLUMNS},
           **{f"se_{k}": v for k, v in (summary.get("stderr") or {}).items()},
           "best_val_epoch": best.get("epoch"), **{f"best_val_{c}": best.get(c) for c in ACCURACY},
           "closures_per_step": summary.get("closures_per_step"), "wall_seconds": summary["wall_seconds"]}
    scalars = Path(path) / "probes" / "scalars.json"
    probes = json.loads(scalars.read_text()) if scalars.exists() else {}
    row.update({c: probes.get(c) for c in FLATNESS if c in probes})
    if "group_images" in probes:
        row["group_images"] = probes["group_images"]
    return row


def aggregate(rows: list[dict[str, Any]], extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Mean, std and n (over seeds) per label, in first-seen order; NaN-safe (CPU peak memory is NaN)."""
    extra = tuple(extra) or tuple(c for c in FLATNESS if any(r.get(c) is not None for r in rows))
    out = []
    for name in dict.fromkeys(r["label"] for r in rows):
        rs = [r for r in rows if r["label"] == name]
        agg: dict[str, Any] = {"label": name, "optimizer": rs[0]["optimizer"], "n": len(rs),
                               "seeds": [r["seed"] for r in rs],
                               "select": rs[0].get("select", "last"), "epoch": rs[0].get("epoch")}
        for c in COLUMNS + extra + ("wall_seconds",):
            agg[c], agg[c + "_std"], _ = mean_std([r.get(c) for r in rs])
        out.append(agg)
    return out


def paired_table(rows: list[dict[str, Any]], base: str, metrics: Sequence[str] = (), method: str = "t"
                 ) -> dict[str, dict[str, PairedDiff]]:
    """{label: {metric: PairedDiff(label - base)}} paired by seed, for every method but the base and the
    reference rows. The primary endpoint (overall accuracy) carries Holm-adjusted p-values and verdicts over
    the methods of the table; every other cell is exploratory (its word follows its own interval)."""
    metrics = tuple(metrics) or ACCURACY + tuple(c for c in FLATNESS if any(r.get(c) is not None for r in rows))
    by = {(r["label"], r["seed"]): r for r in rows}
    base_seeds = sorted(s for (o, s) in by if o == base)
    if not base_seeds:
        raise ConfigError(f"no runs of the base optimizer {base!r} to pair with; include it in --optimizers")
    out: dict[str, dict[str, PairedDiff]] = {}
    for name in dict.fromkeys(r["label"] for r in rows):
        if name == base or is_reference(name):
            continue
        out[name] = _paired(by, base, name, base_seeds, metrics, method)
    if out and PRIMARY in metrics:
        for name, d in zip(out, with_holm([out[n][PRIMARY] for n in out])):
            out[name][PRIMARY] = d
    return out


def _paired(by, base: str, name: str, base_seeds, metrics, method: str) -> dict[str, PairedDiff]:
    seeds = [s for s in base_seeds if (name, s) in by]
    return {m: paired_difference([by[(base, s)].get(m) for s in seeds], [by[(name, s)].get(m) for s in seeds],
                                 method=method, higher_is_better=HIGHER_IS_BETTER.get(m, True)) for m in metrics}


def reference_difference(rows: list[dict[str, Any]], base: str, reference: str = REFERENCES["linear"],
                         method: str = "t") -> dict[str, PairedDiff] | None:
    """{metric: PairedDiff(base - reference)} over accuracy, paired by seed (None when either is missing):
    does the base method (VPT with the base optimizer) beat the linear probe?"""
    by = {(r["label"], r["seed"]): r for r in rows}
    seeds = sorted(s for (o, s) in by if o == reference and (base, s) in by)
    if not seeds:
        return None
    return _paired(by, reference, base, seeds, ACCURACY, method)


NOTEBOOK_MARK = ".ltlab-notebook"  # a runs directory a notebook made (and may add runs and probes to)


@dataclasses.dataclass
class NotebookRuns:
    """The runs a notebook works on: rows (one per run), the runs, the base (pairing) label, the methods found
    (reference rows left out), and whether the directory is the notebook's own (only then may it write there)."""

    path: Path
    rows: list[dict[str, Any]]
    runs: list[Run]
    base: str
    methods: list[str]
    own: bool


def notebook_config(runs_dir: str | Path, cfg: ExperimentConfig) -> ExperimentConfig:
    """The task a notebook shows: that of the runs in runs_dir when it holds finished runs (its first prompted
    run's config), else cfg (what the notebook would train into its own directory)."""
    from ..config import config_from_dict

    path = Path(runs_dir)
    if (path / NOTEBOOK_MARK).exists() or not path.is_dir() or not any(path.glob("*/summary.json")):
        return cfg
    runs = finished_runs(path)
    run = next((r for r in runs if not is_reference(label(r))), runs[0])
    return config_from_dict({**run.config, "device": "auto"})


def notebook_runs(runs_dir: str | Path, cfg: ExperimentConfig, optimizers: Sequence[str], seeds: int = 1,
                  workers: int = 1, reference: str | None = None, progress: bool = True) -> NotebookRuns:
    """What a notebook (or a script) works on, without ever changing someone else's runs.

    A directory that holds finished runs (made by `make demo`, `compare`, one cell of a `sweep`) is read as it
    is: the methods, the task and the base come from its runs; nothing in it is written, deleted or trained.
    A missing or empty directory becomes the notebook's own (marked with .ltlab-notebook): the comparison
    cfg x optimizers x seeds is trained there, and a later call trains only what is missing. A finished run
    of another config in the notebook's own directory is refused with the fix (another RUNS), never replaced.
    """
    path = Path(runs_dir)
    holds = path.exists() and any(path.iterdir())
    own = (path / NOTEBOOK_MARK).exists() or not holds
    if not own and not any(path.glob("*/summary.json")):
        raise DataError(f"{path} holds no finished runs and is not a notebook's own directory; point RUNS at a "
                        "directory of finished runs, or at a new (empty) one for the notebook to train into")
    if own:
        path.mkdir(parents=True, exist_ok=True)
        (path / NOTEBOOK_MARK).touch()
        run_jobs(comparison_jobs(cfg, optimizers, seeds, path, reference), progress=progress, workers=workers,
                 keep=True)
    runs = finished_runs(path)
    rows = load_rows(path)
    labels = method_order(r["label"] for r in rows)
    base = (runs[0].config.get("optimizer") or {}).get("base", labels[0])
    base = base if base in labels else next(n for n in labels if not is_reference(n))
    return NotebookRuns(path, rows, runs, base, [n for n in labels if not is_reference(n)], own)


# -- loading the runs of a directory (the one loader: report, figures, probing, notebooks) ---------------------
def method_order(names) -> list[str]:
    """Registered methods in the registry's order (the base optimizers first), others (methods named by
    import path, labels) after in first-seen order, reference rows last."""
    known = (*OPTIMIZERS, *REFERENCES.values())
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (known.index(n) if n in OPTIMIZERS else len(known) + is_reference(n)))


def label(run: Run) -> str:
    """The run's name in tables and figures (its method's name unless the run has its own label)."""
    return summary_label(run.summary)


def task_of(run: Run, reference: bool = False) -> dict[str, Any]:
    """What makes two runs comparable: the data set and the schedule (not the optimizer, not the seed, not
    the task sample a seed draws: runs are paired by seed, and `finished_runs` checks that a seed's runs share
    it). reference=True leaves out what a reference row changes (the probe's prompt length, the
    equal-compute row's epochs)."""
    c = run.config
    model = {k: v for k, v in (c.get("model") or {}).items() if not reference or k != "prompt_length"}
    data = {k: v for k, v in (c.get("data") or {}).items() if k != "seed"}
    return {"data": data, "epochs": None if reference else c.get("epochs"), "model": model, "loss": c.get("loss"),
            "select": (c.get("eval") or {}).get("select", "last")}


def finished_runs(root: str | Path) -> list[Run]:
    """Every finished run directly under root, checked to be of one task; sorted by method, then seed."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory of runs; train some first, e.g. python -m ltlab compare "
                        f"--out {root}")
    runs = [load_run(p.parent) for p in sorted(root.glob("*/summary.json"))]
    if not runs:
        raise DataError(f"{root} holds no finished runs (no */summary.json); run python -m ltlab compare --out {root}")
    first = next((r for r in runs if not is_reference(label(r))), runs[0])
    draws: dict[int, tuple[Any, str]] = {}
    for r in runs:
        ref = is_reference(label(r))
        if task_of(r, reference=ref) != task_of(first, reference=ref):
            raise DataError(f"{root} mixes runs of different tasks ({first.name} and {r.name} differ in data, "
                            "model, loss, epochs or selection rule); put each task's runs in its own directory")
        drawn = (r.config.get("data") or {}).get("seed")
        other = draws.setdefault(r.summary["seed"], (drawn, r.name))
        if other[0] != drawn:
            raise DataError(f"{root}: {other[1]} and {r.name} share seed {r.summary['seed']} but were trained on "
                            f"different task samples (data.seed {other[0]} and {drawn}), so they cannot be paired; "
                            "put each draw's runs in its own directory")
    order = method_order(label(r) for r in runs)
    return sorted(runs, key=lambda r: (order.index(label(r)), r.summary["seed"]))


def runs_by_method(runs: list[Run]) -> dict[str, list[Run]]:
    """{label: its runs (one per seed)} in the fixed method order (reference rows last)."""
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(label(r), []).append(r)
    return out


def load_rows(runs_dir: str | Path) -> list[dict[str, Any]]:
    """One table row per finished run under runs_dir (`finished_runs`: checked to be of one task, ordered)."""
    rows = []
    for r in finished_runs(runs_dir):
        try:
            rows.append(summary_row(r.summary, r.path))
        except KeyError as e:
            raise DataError(f"{r.path}/summary.json is damaged (no {e}); rerun that run with --overwrite") from None
    return rows
