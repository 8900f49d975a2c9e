"""`python -m ltlab sweep`: a grid of paired comparisons, resumable, on the comparison protocol.

    python -m ltlab sweep --optimizers sgd,sam,gnm --seeds 3 \
        --grid sam:optimizer.method.rho=0.05,0.5 gnm:optimizer.method.rho=0.005,0.05 data.imbalance_ratio=10,50 \
        --out runs/sweep [--probe] [-j 2] [--resume | --overwrite]

A key with a method prefix (`sam:...`) is that method's own (it must be an `optimizer.` key, so the
task stays the base run's); a key without one is shared by every run. Each combination of the shared
values is a *cell*: a directory OUT/<key><value>_... (OUT itself when nothing shared is swept) holding one
base run per seed (the preset's base optimizer, which has no method options) and every method variant
on the same seeds. A variant's label names its own values (`sam_rho0.5`); a method the grid does not
name runs once per cell with its class defaults. Every grid cell (a variant in a cell) is a paired
comparison with that cell's base runs: its table is the cell's report.md, and OUT/sweep.md holds one
row per grid cell, with overall accuracy Holm-corrected over all of them (every other column exploratory),
plus a figure of each variant's paired effect on overall accuracy with its 95 % interval against the
swept value (OUT/sweep_effects.png).

A rerun keeps every finished run of the same config and trains only what is missing (an interrupted
run starts over); a finished run of another config is refused unless --overwrite, which trains the grid
again. One progress bar covers the whole grid.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, apply_overrides, with_optimizer
from ..errors import ConfigError, counted
from ..probes.budget import BUDGET
from ..optim import optimizer_info


@dataclasses.dataclass
class Variant:
    label: str
    method: str
    own: tuple[tuple[str, str], ...]  # (key, value) of the method's own swept keys
    cfg: ExperimentConfig


@dataclasses.dataclass
class Cell:
    name: str  # "" when no shared key is swept
    shared: tuple[tuple[str, str], ...]
    path: Path
    base: Variant
    variants: list[Variant]


def parse_grid(tokens: list[str], optimizers: list[str], base: str = "") -> tuple[list[tuple[str, list[str]]],
                                                                   dict[str, list[tuple[str, list[str]]]]]:
    """['sam:optimizer.method.rho=0.05,0.5', 'data.imbalance_ratio=10,50'] -> (shared, {method: own})."""
    shared: list[tuple[str, list[str]]] = []
    own: dict[str, list[tuple[str, list[str]]]] = {}
    for tok in tokens:
        method, _, assign = tok.rpartition(":") if ":" in tok.split("=", 1)[0] else ("", "", tok)
        if "=" not in assign:
            raise ConfigError(f"--grid {tok!r}: write key=v1,v2 (or method:key=v1,v2), e.g. sam:optimizer.method.rho=0.05,0.5")
        key, raw = assign.split("=", 1)
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--grid {tok!r}: no values after '='")
        if len(set(values)) != len(values):
            raise ConfigError(f"--grid {tok!r}: a value is repeated; give each value once (a repeat would train the "
                              "same runs twice and count them twice in Holm)")
        if key in ("seed", "label") or key.endswith(".name") and key.startswith("optimizer"):
            fix = {"seed": "use --seeds N (every variant runs on the same seeds)",
                   "label": "labels are made from the swept values"}.get(key, "name the methods in --optimizers")
            raise ConfigError(f"--grid {tok!r}: {key} cannot be swept; {fix}")
        if method and method == base and key.startswith("optimizer."):
            raise ConfigError(f"--grid {tok!r}: {method} is the base every variant of a cell is paired with, so it "
                              f"has no variants; sweep {key} for every method (leave out '{method}:'), or choose the "
                              "base's own options on validation with `python -m ltlab tune`")
        seen = [k for k, _ in (own.get(method, []) if method else shared)]
        if key in seen:
            raise ConfigError(f"--grid: {method + ':' if method else ''}{key} is given twice; list all its values in "
                              "one entry, e.g. key=v1,v2")
        if method:
            if method not in optimizers:
                raise ConfigError(f"--grid {tok!r}: {method} is not in --optimizers ({','.join(optimizers)})")
            if key in optimizer_info(method).options():  # a bare option name, e.g. sam:rho=0.1
                raise ConfigError(f"--grid {tok!r}: write the option's full key, e.g. {method}:optimizer.method.{key}="
                                  f"{','.join(values)}")
            if not key.startswith("optimizer."):
                raise ConfigError(f"--grid {tok!r}: a method's own key starts with optimizer. (the task stays the base "
                                  f"run's); to sweep {key} for every method, leave out '{method}:'")
            own.setdefault(method, []).append((key, values))
        else:
            if key.startswith("optimizer.method.") or key == "optimizer.name":
                raise ConfigError(f"--grid {tok!r}: {key} belongs to one method; prefix it with the method, e.g. "
                                  f"sam:{key}=...")
            shared.append((key, values))
    return shared, own


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def plan(cfg: ExperimentConfig, optimizers: list[str], grid: list[str], out: str | Path) -> list[Cell]:
    """The cells of the grid, each with its base variant and method variants (configs validated up front)."""
    optimizers = list(dict.fromkeys(optimizers))
    base_name = cfg.optimizer.base
    if not [m for m in optimizers if m != base_name]:
        raise ConfigError(f"--optimizers {','.join(optimizers)}: a sweep pairs methods with the base {base_name}; "
                          f"name at least one method besides it, e.g. --optimizers {base_name},sam")
    shared, own = parse_grid(grid, optimizers, base_name)
    cells = []
    for combo in itertools.product(*[[(k, v) for v in vs] for k, vs in shared]):
        name = "_".join(f"{_short(k)}{v}" for k, v in combo)
        try:
            cell_cfg = apply_overrides(cfg, [f"{k}={v}" for k, v in combo])
        except ConfigError as e:
            raise ConfigError(f"--grid: {e}") from None
        base = Variant(base_name, base_name, (), with_optimizer(cell_cfg, base_name, label=""))
        variants = []
        for method in optimizers:
            if method == base_name:
                continue
            keys = own.get(method, [])
            for values in itertools.product(*[[(k, v) for v in vs] for k, vs in keys]):
                label = "_".join([optimizer_info(method).label] + [f"{_short(k)}{v}" for k, v in values])
                start = cell_cfg if method == cell_cfg.optimizer.name else with_optimizer(cell_cfg, method)
                try:
                    vcfg = apply_overrides(start, [f"{k}={v}" for k, v in values] + [f"label={label if keys else ''}"])
                except ConfigError as e:
                    raise ConfigError(f"--grid {method}: {e}") from None
                variants.append(Variant(label, method, tuple(values), vcfg))
        cells.append(Cell(name, combo, Path(out) / name if name else Path(out), base, variants))
    return cells


def run_sweep(cfg: ExperimentConfig, optimizers: list[str], grid: list[str], seeds: int | list[int], out: str | Path,
              workers: int = 1, probe: int | None = None, overwrite: bool = False, progress: bool = True,
              command: str = "", trace_hvps: int = BUDGET.scalar_trace_hvps) -> dict[str, Any]:
    """Train (what is missing of) the grid, probe it on request (probe = the number of probe images, 256 in the
    CLI; None: no probes; each trace from `trace_hvps` Hutch++ products), write each cell's report and
    OUT/sweep.md. seeds: a count from cfg.seed, or the seeds."""
    from ..reports import write_report
    from .compare import run_jobs
    from ..results import run_name

    if isinstance(seeds, int) and seeds < 1 or not isinstance(seeds, int) and not seeds:
        raise ConfigError(f"--seeds {seeds}: need at least one seed")
    seeds = [cfg.seed + k for k in range(seeds)] if isinstance(seeds, int) else list(seeds)
    cells = plan(cfg, optimizers, grid, out)
    jobs = []
    for cell in cells:
        for v in (cell.base, *cell.variants):
            for seed in seeds:
                run_cfg = dataclasses.replace(v.cfg, seed=seed)
                jobs.append((run_cfg, str(cell.path / run_name(v.label, run_cfg.seed))))
    _stale_runs(cells, {path for _, path in jobs}, overwrite)
    rows = run_jobs(jobs, progress=progress, overwrite=overwrite, workers=workers, keep=True)
    if probe:
        from ..results.probing import add_flatness_columns

        add_flatness_columns(rows, probe, progress=progress, workers=workers, trace_hvps=trace_hvps)
    for cell in cells:
        write_report(cell.path, figures=False, command=command,
                     title=f"ltlab sweep cell: {cell.name or 'all runs'}")
    summary = write_summary(cells, rows, out, command)
    return summary


def _stale_runs(cells: list[Cell], planned: set[str], overwrite: bool) -> None:
    """Finished runs in a cell that the grid no longer names (the grid changed) would enter the cell's report:
    refused with the fix, or removed with --overwrite."""
    import shutil

    stale = [p.parent for c in cells for p in sorted(c.path.glob("*/summary.json")) if str(p.parent) not in planned]
    if stale and not overwrite:
        raise ConfigError(f"not in this grid (it changed): {counted(len(stale), 'finished run')} in the sweep's "
                          f"cells, e.g. {stale[0]}; they would enter the cell's report. Pass --overwrite to remove them, or "
                          "choose another --out")
    for p in stale:
        shutil.rmtree(p)


def write_summary(cells: list[Cell], rows: list[dict[str, Any]], out: str | Path, command: str = "") -> dict[str, Any]:
    """OUT/sweep.md (one row per grid cell, paired to its cell's base; overall Holm over all) and the figure."""
    from ..plots import effect_lines, save
    from ..stats import NO_VERDICT, with_holm
    from ..results.tables import multiplicity_sentence, rule_sentence
    from ..results import ACCURACY, FLATNESS, PRIMARY, aggregate, paired_table

    probed = [c for c in FLATNESS[:4] if any(r.get(c) is not None for r in rows)]
    metrics = ("overall", "many", "few", *probed)
    grid: list[tuple[Cell, Variant, dict]] = []
    for cell in cells:
        paired = paired_table([r for r in rows if Path(r["run"]).parent == cell.path], cell.base.label, metrics=metrics)
        grid += [(cell, v, paired[v.label]) for v in cell.variants]
    for (_, _, paired), d in zip(grid, with_holm([p[PRIMARY] for _, _, p in grid])):
        paired[PRIMARY] = d
    base = cells[0].base.label
    seeds = sorted({r["seed"] for r in rows})
    lines = ["# ltlab sweep", ""]
    if command:
        lines += [f"Made by `{command}`.", ""]
    first = [r for r in rows if Path(r["run"]).parent == cells[0].path]
    lines += [rule_sentence(aggregate(first)), "",
              f"Each grid cell is paired by seed ({counted(len(seeds), 'seed')}) with its cell's {base} runs; "
              f"paired difference (cell − {base}): mean [95 % CI] verdict. Per-cell tables: each cell's report.md.", "",
              "| cell | method | " + " | ".join(m + (" (primary)" if m == PRIMARY else "") for m in metrics) + " |",
              "|" + "---|" * (len(metrics) + 2)]
    found = []
    for cell, v, paired in grid:
        where = cell.name or "all"
        lines.append(f"| {where} | {v.label} | " + " | ".join(
            paired[m].format(2 if m in ACCURACY else None) for m in metrics) + " |")
        resolved = [m for m in metrics if paired[m].verdict and paired[m].verdict != NO_VERDICT]
        if resolved:
            found.append(f"{where} / {v.label}: {', '.join(f'{m} {paired[m].verdict}' for m in resolved)}")
    lines += ["", multiplicity_sentence({f"{c.name}/{v.label}": p for c, v, p in grid}, metrics), "",
              "## Grid cells where a measured quantity differs resolvably", ""]
    lines += [f"- {f}" for f in found] or [f"- none: no grid cell differs resolvably from {base} in any measure."]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    # the figure: each method's effect on overall accuracy against its own swept values, a line per shared cell
    points = [(v.method, cell.name or "all", ", ".join(f"{_short(k)} {val}" for k, val in v.own) or "defaults",
               paired[PRIMARY]) for cell, v, paired in grid]
    caption = (f"Paired difference in test overall accuracy to the cell's {base} runs (last epoch; "
               f"{counted(len(seeds), 'seed')} {', '.join(map(str, seeds))}); bars: 95 % t-intervals (not Holm-adjusted).")
    figures = save(effect_lines(points, ylabel=f"overall − {base} (points)", caption=caption), "sweep_effects", out)
    return {"markdown": "\n".join(lines), "path": out / "sweep.md", "figures": figures, "cells": cells}
