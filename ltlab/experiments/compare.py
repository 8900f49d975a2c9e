"""Paired comparisons: every method trained on the same seeds, tabulated with paired 95 % intervals.

Seed s gives every method the same data, data order, initialisation and per-step augmentation /
dropout seeds; only the optimizer's own randomness differs (GNM/RSAM noise is seeded from s too).
Rows come from each run's summary.json (`ltlab.results`), so a table can always be rebuilt from the run
directories.

>>> rows = compare(load_config("synthetic"), ["sgd", "gnm"], seeds=3, out="runs/cmp", reference="linear")  # doctest: +SKIP
>>> print(format_table(aggregate(rows), paired_table(rows, "sgd")))  # ltlab.results    # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, run_label, with_optimizer
from ..errors import ConfigError, counted
from ..optim import PAPER_COMPARISON, optimizer_info
from ..results.runs import summary_row
from ..results.vocabulary import REFERENCES, run_name
from ..train import fit

def reference_config(cfg: ExperimentConfig, kind: str = "linear") -> ExperimentConfig:
    """A reference run of a comparison, built from the base run `cfg` (VPT with the base optimizer):
    `linear` = the linear probe, the base run with `model.prompt_length=0` and nothing else changed (same head,
    loss, schedule, optimizer); `compute` = the equal-compute base, the base run for twice the epochs (the
    forward-backward passes of a two-pass method such as SAM on the normal schedule). The whole schedule
    stretches with it: the warm-up and the epoch DRW switches on at double too, so each starts at the same
    fraction of training as in the base run."""
    if kind not in REFERENCES:
        raise ConfigError(f"--reference {kind}: unknown; choose one of {', '.join(REFERENCES)}")
    if kind == "compute":
        drw = cfg.loss.drw_epoch
        stretched = dataclasses.replace(
            cfg, epochs=2 * cfg.epochs, loss=dataclasses.replace(cfg.loss, drw_epoch=None if drw is None else 2 * drw),
            optimizer=dataclasses.replace(cfg.optimizer, warmup_epochs=2 * cfg.optimizer.warmup_epochs))
        return with_optimizer(stretched, cfg.optimizer.name, cfg.optimizer.method, label=REFERENCES[kind])
    return with_optimizer(cfg, cfg.optimizer.base, label=REFERENCES[kind],
                          model=dataclasses.replace(cfg.model, prompt_length=0))


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
    return run_jobs(comparison_jobs(cfg, optimizers, seeds, out, reference, configs, redraw_data), progress=progress,
                    overwrite=overwrite, workers=workers, reuse=reuse)


def comparison_jobs(cfg: ExperimentConfig, optimizers: Sequence[str], seeds: int | Sequence[int], out: str | Path,
                    reference: str | Sequence[str] | None = None, configs: dict[str, ExperimentConfig] | None = None,
                    redraw_data: bool = False) -> list[tuple[ExperimentConfig, str]]:
    """(config, run directory) of every run of a comparison: each method with its own options (`configs`' for
    the methods it names, the config's for the method it names, the class defaults for the others) on the
    seeds (a count from cfg.seed, or a list); the reference rows last, built from the base's config."""
    seed_list = [cfg.seed + k for k in range(seeds)] if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ConfigError(f"seeds={seeds!r}: need at least one seed (a count, or a list of seeds)")
    if not list(optimizers):
        raise ConfigError("optimizers: name at least one, e.g. " + ",".join((cfg.optimizer.base, *PAPER_COMPARISON)))
    configs = configs or {}
    variants = [configs.get(n) or (cfg if n == cfg.optimizer.name else with_optimizer(cfg, n))
                for n in dict.fromkeys(optimizers)]
    labels: dict[str, str] = {}
    for n, v in zip(dict.fromkeys(optimizers), variants):
        other = labels.setdefault(run_label(v), n)
        if other != n:
            raise ConfigError(f"--optimizers: {other} and {n} both get the label {run_label(v)!r}, so their run "
                              "directories and table rows would collide; name each method once")
    base = configs.get(cfg.optimizer.base) or (cfg if cfg.optimizer.name == cfg.optimizer.base
                                               else with_optimizer(cfg, cfg.optimizer.base))
    for kind in dict.fromkeys([reference] if isinstance(reference, str) else list(reference or ())):  # each once
        variants.append(reference_config(base, kind))
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
        raise ConfigError(f"in the way: {counted(len(conflicts), 'finished run')} of another config, e.g. "
                          f"{conflicts[0]}; pass --overwrite to train them again, or choose another --out")
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

    from ..train.checkpoint import changed_since

    p = Path(path)
    if not (p / "summary.json").exists() or not (p / "config.yaml").exists():
        return False
    if cfg.method == "lpt":  # an LPT run directory holds phase 2's config (phase 1 finished before it)
        from ..train.lpt import lpt_phases

        cfg = lpt_phases(cfg)[1]
    try:
        return not changed_since(yaml.safe_load((p / "config.yaml").read_text()) or {}, cfg)
    except yaml.YAMLError:
        return False


def _parallel(jobs, overwrite: bool, progress: bool, workers: int) -> dict[str, dict[str, Any]]:
    from concurrent.futures import as_completed

    from tqdm.auto import tqdm

    from ..utils import WorkerPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    out = {}
    with WorkerPool(workers) as pool:  # Ctrl-C: queued runs cancelled, running ones stop and save, workers end
        # the two-pass methods first, so the pool does not end on one long run
        jobs = sorted(jobs, key=lambda j: -optimizer_info(j[0].optimizer.name).closures_per_step)
        futures = {pool.submit(_one_run, c, p, overwrite, False, threads): p for c, p in jobs}
        with tqdm(total=len(jobs), desc=f"runs ({workers} at a time)", unit="run", disable=not progress) as bar:
            for f in as_completed(futures):
                out[futures[f]] = f.result()
                bar.update()
                bar.set_postfix_str(Path(futures[f]).name)
    return out
