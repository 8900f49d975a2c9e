"""Tables and sentences of a comparison, as text: markdown tables with paired intervals, the selection rule,
the multiplicity statement, CSV. What `report`, the CLI, the notebooks and the benches print."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import counted
from ..stats import PairedDiff, chance_resolved, paired_difference
from .vocabulary import ACCURACY, FLATNESS, PRIMARY, is_reference


def interval_count(paired: dict[str, dict[str, PairedDiff]], columns: Sequence[str],
                   endpoint: str = PRIMARY) -> tuple[int, int]:
    """(primary, exploratory) intervals a paired table holds (cells with n >= 2)."""
    cells = [(m, d) for diffs in paired.values() for m, d in diffs.items() if m in columns and d.n >= 2]
    primary = sum(m == endpoint for m, _ in cells)
    return primary, len(cells) - primary


def multiplicity_sentence(paired: dict[str, dict[str, PairedDiff]], columns: Sequence[str],
                          endpoint: str = PRIMARY) -> str:
    """How many intervals a table holds and how many 'resolved' words chance alone would give."""
    primary, exploratory = interval_count(paired, columns, endpoint)
    parts = []
    if primary:
        parts.append(f"{counted(primary, 'primary interval')} ({endpoint} accuracy; verdicts Holm-corrected over the "
                     f"{counted(primary, 'method')}, family-wise error ≤ 5 %)")
    if exploratory:
        parts.append(f"{counted(exploratory, 'exploratory interval')} (every other column: each word follows its own "
                     f"95 % interval, so about {chance_resolved(exploratory):.1f} of them would read 'resolved' by "
                     "chance alone if no method differed)")
    return "This table holds " + " and ".join(parts) + "." if parts else ""


def lr_sentence(lrs: dict[str, float | None], base: str) -> str:
    """Which methods ran at another learning rate than the base ('' when none did; reference rows are not
    methods and are left out). Where a run ends, and so its curvature, moves with the lr as well, so such a
    method's flatness difference mixes the method with its lr."""
    lrs = {m: lr for m, lr in lrs.items() if lr is not None and not is_reference(m)}
    other = [m for m, lr in lrs.items() if lr != lrs.get(base)]
    if not other or lrs.get(base) is None:
        return ""
    one = len(other) == 1
    return (f"Learning rates: {', '.join(f'{m} {lr:g}' for m, lr in lrs.items())}. "
            f"{', '.join(other)} ran at another lr than {base}, and where a run ends, so its curvature, moves with "
            f"the lr as well: {'its flatness difference mixes' if one else 'their flatness differences mix'} the "
            "method with its lr (`python bench/lr_control.py --probe` separates the two).")


def tuning_table(grid: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A tuning grid's scores (each row: id, mean, sd, scores in tuning-seed order), ▶ on each method's selected
    configuration (the highest mean; ties: the first in grid order), then how sure each choice is."""
    lines = ["| method | configuration | mean ± sd | per seed |", "|---|---|---|---|"]
    for m, rows in grid.items():
        best = max(rows, key=lambda r: r["mean"])
        for r in rows:
            lines.append(f"| {m} | {'▶ ' if r is best else ''}{r['id']} | {r['mean']:.2f} ± {r['sd']:.2f} | "
                         + ", ".join(f"{x:.2f}" for x in r["scores"]) + " |")
    return [*lines, "", *selection_margins(grid)]


def selection_margins(grid: dict[str, list[dict[str, Any]]]) -> list[str]:
    """How sure each validation choice is: per method, the selected configuration (the first of the highest mean
    score) − the runner-up, paired by tuning seed."""
    lines = ["How sure each choice is: the selected configuration − the runner-up, paired by tuning seed, mean "
             "[95 % t-interval]. An interval that holds zero is a near-tie the tuning seeds cannot separate.", "",
             "| method | selected | runner-up | margin |", "|---|---|---|---|"]
    for m, rows in grid.items():
        if len(rows) < 2:
            continue
        best = max(rows, key=lambda r: r["mean"])
        second = max((r for r in rows if r is not best), key=lambda r: r["mean"])
        d = paired_difference(second["scores"], best["scores"])
        lines.append(f"| {m} | {best['id']} | {second['id']} | {d.format(2)} |")
    return lines


def cell(x: float | None, fmt: str = "{:.2f}") -> str:
    """A number for a table or a printed line; "-" for a missing one (None, or nan: e.g. a class group with no
    classes, such as 'many' on a task whose largest class has too few images)."""
    return "-" if x is None or x != x else fmt.format(x)


def _pm(mean: float, std: float, n: int, fmt: str) -> str:
    if mean != mean:
        return "-"
    return fmt.format(mean) + (f" ± {fmt.format(std)}" if n > 1 and std == std else "")


def format_table(agg: list[dict[str, Any]], paired: dict[str, dict[str, PairedDiff]] | None = None,
                 columns: Sequence[str] | None = None, endpoint: str = PRIMARY) -> str:
    """Markdown: mean ± std over seeds, cost per step; then (when given) paired differences to the base.

    columns: the measures shown (default: accuracy, ECE and every flatness column present); endpoint: the
    column whose verdicts `paired` Holm-corrected."""
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
        heads = [m + (" (primary)" if m == endpoint else " (exploratory)") for m in metrics]
        lines += ["", f"Paired difference to {base} (method - {base}, same seeds): mean [95 % CI] verdict", "",
                  "| method | n | " + " | ".join(heads) + " |", "|" + "---|" * (len(metrics) + 2)]
        for name, diffs in paired.items():
            n = max(d.n for d in diffs.values())
            lines.append(f"| {name} | {n} | " + " | ".join(
                diffs[m].format(None if m in FLATNESS else 2) for m in metrics) + " |")
        lines += ["", multiplicity_sentence(paired, metrics, endpoint)]
    return "\n".join(lines)


def rule_sentence(agg: list[dict[str, Any]], epochs: int | None = None, spread: str = "mean ± std") -> str:
    """The selection rule and the seeds, in words (every table states them); `spread` names what is shown over
    the seeds (a figure whose whiskers are paired intervals: "mean")."""
    if not agg:
        return ""
    a = agg[0]
    rule = ("test accuracy (%) at the last epoch of the fixed schedule" if a["select"] == "last"
            else "test accuracy (%) of the best-validation epoch (opt-in rule)")
    n = min(x["n"] for x in agg)
    seeds = ", ".join(str(s) for s in a["seeds"])
    what = f"{spread} over {n} seeds ({seeds})" if n > 1 else f"one seed ({seeds}): no interval, no verdict"
    span = f" ({counted(epochs, 'epoch')})" if epochs else ""
    return f"Headline: {rule}{span}; {what}."


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
