"""Aggregates (mean, std, n per label) and paired tables (method − base by seed, Holm on the primary endpoint)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..optim import OPTIMIZERS
from ..stats import PairedDiff, mean_std, paired_difference, with_holm
from .vocabulary import ACCURACY, COLUMNS, FLATNESS, HIGHER_IS_BETTER, PRIMARY, REFERENCES, is_reference

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


def pick_base(optimizers: list[str], preferred: str | None = None) -> str:
    """The base every method is paired with: `preferred` if run, else a plain base optimizer, else the first."""
    for name in (preferred, *(n for n, i in OPTIMIZERS.items() if i.base)):
        if name and name in optimizers:
            return name
    return optimizers[0]


def per_seed(rows: list[dict[str, Any]], metrics: Sequence[str] = ACCURACY) -> dict[str, dict[str, list]]:
    """{label: {metric: each seed's value}} in row order: the dots a figure draws beside a mean."""
    return {n: {m: [r.get(m) for r in rows if r["label"] == n] for m in metrics}
            for n in dict.fromkeys(r["label"] for r in rows)}


def paired_table(rows: list[dict[str, Any]], base: str, metrics: Sequence[str] = (), method: str = "t",
                 references: bool = False, endpoint: str = PRIMARY) -> dict[str, dict[str, PairedDiff]]:
    """{label: {metric: PairedDiff(label - base)}} paired by seed, for every method but the base (and the
    reference rows too when `references`, as figures draw them). The primary endpoint (`endpoint`, overall accuracy
    unless a study declares another) carries Holm-adjusted p-values and verdicts over the methods of the table,
    never the reference rows; every other cell is exploratory (its word follows its own interval)."""
    metrics = tuple(metrics) or ACCURACY + tuple(c for c in FLATNESS if any(r.get(c) is not None for r in rows))
    by = {(r["label"], r["seed"]): r for r in rows}
    base_seeds = sorted(s for (o, s) in by if o == base)
    if not base_seeds:
        raise ConfigError(f"no runs of the base optimizer {base!r} to pair with; include it in --optimizers")
    out: dict[str, dict[str, PairedDiff]] = {}
    for name in dict.fromkeys(r["label"] for r in rows):
        if name == base or (is_reference(name) and not references):
            continue
        out[name] = _paired(by, base, name, base_seeds, metrics, method)
    methods = [n for n in out if not is_reference(n)]
    if methods and endpoint in metrics:
        for name, d in zip(methods, with_holm([out[n][endpoint] for n in methods])):
            out[name][endpoint] = d
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
