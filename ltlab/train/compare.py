"""Paired comparisons: every method trained on the same seeds, tabulated with paired 95 % intervals.

Seed s gives every method the same data, data order, initialisation and per-step augmentation /
dropout seeds; only the optimizer's own randomness differs (GNM/RSAM noise is seeded from s too).
Rows come from each run's summary.json, so a table can always be rebuilt from the run directories.

>>> rows = compare(load_config("synthetic"), ["sgd", "gnm"], seeds=3, out="runs/cmp", reference="linear")  # doctest: +SKIP
>>> print(format_table(aggregate(rows), paired_table(rows, "sgd")))                  # doctest: +SKIP
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, run_label, with_optimizer
from ..errors import ConfigError
from ..optim import optimizer_info
from ..stats import PairedDiff, chance_resolved, mean_std, paired_difference, with_holm
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
REFERENCES = {"linear": "linear-probe"}


def run_name(label: str, seed: int) -> str:
    return f"{label}-s{seed}"


def summary_label(summary: dict[str, Any]) -> str:
    """A finished run's label from its summary.json (runs made before labels existed: the optimizer's name)."""
    return summary.get("label") or summary["optimizer"]


def reference_config(cfg: ExperimentConfig, kind: str = "linear") -> ExperimentConfig:
    """The reference run of a comparison: `linear` = the linear probe, i.e. the base run (VPT with the base
    optimizer) with `model.prompt_length=0` and nothing else changed (same head, loss, schedule, optimizer)."""
    if kind not in REFERENCES:
        raise ConfigError(f"--reference {kind}: unknown; choose one of {', '.join(REFERENCES)}")
    return with_optimizer(cfg, cfg.optimizer.base, label=REFERENCES[kind],
                          model=dataclasses.replace(cfg.model, prompt_length=0))


def is_reference(label: str) -> bool:
    return label in REFERENCES.values()


def _one_run(cfg: ExperimentConfig, path: str, overwrite: bool, progress: bool, threads: int) -> dict[str, Any]:
    if threads:
        import torch

        torch.set_num_threads(threads)
    return summary_row(fit(cfg, out=path, progress=progress, overwrite=overwrite), path)


def compare(cfg: ExperimentConfig, optimizers: Sequence[str], seeds: int = 1, out: str | Path = "runs/compare",
            progress: bool = True, overwrite: bool = False, workers: int = 1, reuse: bool = False,
            reference: str | None = None) -> list[dict[str, Any]]:
    """Train every (optimizer, seed) pair into out/<label>-s<seed>; one row per run.

    workers > 1 trains that many runs at once in separate processes (one torch thread each share of
    the cores). reuse=True keeps runs that already finished with this very config and trains the
    others over (a stale run of another config is replaced, never mixed in); without reuse an
    existing run is refused unless overwrite=True. reference="linear" also trains the linear probe
    (`reference_config`) on the same seeds, as the row `linear-probe`.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: need at least one seed")
    optimizers = list(dict.fromkeys(optimizers))
    if not optimizers:
        raise ConfigError("--optimizers: name at least one optimizer, e.g. sgd,sam,rsam,gnm")
    # each method with its own options: the config's for the method it names, the class defaults for the others
    variants = [cfg if n == cfg.optimizer.name else with_optimizer(cfg, n) for n in optimizers]
    if reference:
        variants.append(reference_config(cfg, reference))
    jobs, rows, order = [], {}, []
    for variant in variants:
        for k in range(seeds):
            run_cfg = dataclasses.replace(variant, seed=cfg.seed + k)
            path = str(Path(out) / run_name(run_label(run_cfg), run_cfg.seed))
            order.append(path)
            if reuse and finished_with(path, run_cfg):
                rows[path] = summary_row(json.loads((Path(path) / "summary.json").read_text()), path)
            else:
                jobs.append((run_cfg, path))
    overwrite = overwrite or reuse  # reuse: an unfinished run is started over
    if workers <= 1 or len(jobs) <= 1:
        for run_cfg, path in jobs:
            rows[path] = _one_run(run_cfg, path, overwrite, progress, 0)
    else:
        rows.update(_parallel(jobs, overwrite, progress, workers))
    return [rows[p] for p in order]


def finished_with(path: str | Path, cfg: ExperimentConfig) -> bool:
    """A finished run of exactly this config (a run of another config is trained again, never mixed in)."""
    import yaml

    from .checkpoint import changed_since

    p = Path(path)
    if not (p / "summary.json").exists() or not (p / "config.yaml").exists():
        return False
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


def interval_count(paired: dict[str, dict[str, PairedDiff]], columns: Sequence[str]) -> tuple[int, int]:
    """(primary, exploratory) intervals a paired table holds (cells with n >= 2)."""
    cells = [(m, d) for diffs in paired.values() for m, d in diffs.items() if m in columns and d.n >= 2]
    primary = sum(m == PRIMARY for m, _ in cells)
    return primary, len(cells) - primary


def multiplicity_sentence(paired: dict[str, dict[str, PairedDiff]], columns: Sequence[str]) -> str:
    """How many intervals a table holds and how many 'resolved' words chance alone would give."""
    primary, exploratory = interval_count(paired, columns)
    parts = []
    if primary:
        parts.append(f"{primary} primary interval(s) (overall accuracy; verdicts Holm-corrected over the "
                     f"{primary} method(s), family-wise error ≤ 5 %)")
    if exploratory:
        parts.append(f"{exploratory} exploratory interval(s) (every other column: each word follows its own "
                     f"95 % interval, so about {chance_resolved(exploratory):.1f} of them would read 'resolved' by "
                     "chance alone if no method differed)")
    return "This table holds " + " and ".join(parts) + "." if parts else ""


def _pm(mean: float, std: float, n: int, fmt: str) -> str:
    if mean != mean:
        return "-"
    return fmt.format(mean) + (f" ± {fmt.format(std)}" if n > 1 and std == std else "")


def format_table(agg: list[dict[str, Any]], paired: dict[str, dict[str, PairedDiff]] | None = None,
                 columns: Sequence[str] | None = None) -> str:
    """Markdown: mean ± std over seeds, cost per step; then (when given) paired differences to the base.

    columns: the measures shown (default: accuracy, ECE and every flatness column present)."""
    extra = tuple(c for c in FLATNESS if agg and c in agg[0])
    cols = tuple(columns) if columns is not None else ACCURACY + ("ece",) + extra
    base = agg[0]["label"] if agg else "-"
    lines = ["| method | n | " + " | ".join(cols) + f" | s/step | x {base} | peak MB (CUDA) |",
             "|" + "---|" * (len(cols) + 5)]
    ref = agg[0]["sec_per_step"] if agg else float("nan")
    for a in agg:
        cells = [_pm(a[c], a[c + "_std"], a["n"], "{:.4g}" if c in extra else "{:.2f}") for c in cols]
        ratio = a["sec_per_step"] / ref if ref and ref == ref else float("nan")
        mb = a["peak_memory_mb"]
        lines.append(f"| {a['label']} | {a['n']} | " + " | ".join(cells) +
                     f" | {a['sec_per_step']:.3f} | {ratio:.2f} | {'-' if mb != mb else f'{mb:.0f}'} |")
    if paired:
        metrics = [m for m in next(iter(paired.values())) if columns is None or m in cols]
        heads = [m + (" (primary)" if m == PRIMARY else " (exploratory)") for m in metrics]
        lines += ["", f"Paired difference to {base} (method - {base}, same seeds): mean [95 % CI] verdict", "",
                  "| method | n | " + " | ".join(heads) + " |", "|" + "---|" * (len(metrics) + 2)]
        for name, diffs in paired.items():
            n = max(d.n for d in diffs.values())
            lines.append(f"| {name} | {n} | " + " | ".join(
                diffs[m].format(None if m in FLATNESS else 2) for m in metrics) + " |")
        lines += ["", multiplicity_sentence(paired, metrics)]
    return "\n".join(lines)


def rule_sentence(agg: list[dict[str, Any]], epochs: int | None = None) -> str:
    """The selection rule and the seeds, in words (every table states them)."""
    if not agg:
        return ""
    a = agg[0]
    rule = ("test accuracy (%) at the last epoch of the fixed schedule" if a["select"] == "last"
            else "test accuracy (%) of the best-validation epoch (opt-in rule)")
    n = min(x["n"] for x in agg)
    seeds = ", ".join(str(s) for s in a["seeds"])
    what = f"mean ± std over {n} seed(s) ({seeds})" if n > 1 else f"one seed ({seeds}): no interval, no verdict"
    return f"Headline: {rule}{f' ({epochs} epochs)' if epochs else ''}; {what}."


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def ensure_runs(cfg: ExperimentConfig, optimizers: Sequence[str], out: str | Path, seeds: int = 1,
                progress: bool = True, workers: int = 1, reference: str | None = None) -> list[dict[str, Any]]:
    """Like `compare`, but keeps runs that already finished (what notebooks call)."""
    return compare(cfg, optimizers, seeds, out, progress, reuse=True, workers=workers, reference=reference)


def load_rows(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Rows for every finished run directly under runs_dir (sorted by name)."""
    from ..errors import DataError

    rows = []
    for p in sorted(Path(runs_dir).glob("*/summary.json")):
        try:
            rows.append(summary_row(json.loads(p.read_text()), p.parent))
        except (json.JSONDecodeError, KeyError) as e:
            raise DataError(f"{p} is damaged ({type(e).__name__}); rerun that run with --overwrite") from None
    return rows
