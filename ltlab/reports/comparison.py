"""`python -m ltlab report RUNS_DIR`: report.md (tables, paired intervals, verdicts, rule, seeds, times) + figures.

The README's results are copies of reports made by commands it names, so numbers and claims
cannot drift from the code. Everything here is computed from the run directories.

>>> path = write_report("runs/demo")          # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .figures import compare_figures
from ..errors import ConfigError, counted
from ..stats import NO_VERDICT, mean_std
from ..results.tables import cell, format_table, lr_sentence, rule_sentence, write_csv
from ..results import (ACCURACY, FLATNESS, PRIMARY, aggregate, finished_runs, is_reference, learning_rates,
                       method_order, paired_table, pick_base, reference_difference, summary_row)


def conclusions(paired: dict[str, dict[str, Any]], base: str, endpoint: str = PRIMARY) -> list[str]:
    """One sentence per method, computed from the intervals: the primary endpoint (Holm-corrected) first,
    then what the exploratory cells resolve and what they do not."""
    lines = []
    for name, diffs in paired.items():
        n = max(d.n for d in diffs.values())
        if n < 2:
            lines.append(f"- **{name}** vs {base}: one seed only, so no interval and no verdict.")
            continue
        text = f"- **{name}** vs {base} (n = {n} paired seeds): "
        if endpoint in diffs:
            text += f"primary endpoint {endpoint} {diffs[endpoint].format(2)}. "
        rest = {m: d for m, d in diffs.items() if m != endpoint}
        resolved = [f"{m} {d.format(None if m in FLATNESS else 2)}" for m, d in rest.items()
                    if d.verdict and d.verdict != NO_VERDICT]
        unresolved = [m for m, d in rest.items() if d.verdict == NO_VERDICT]
        if rest:
            text += ("Exploratory, resolved: " + "; ".join(resolved) + ". " if resolved
                     else "No exploratory measure resolved. ")
            if resolved and unresolved:
                text += "Not resolved: " + ", ".join(unresolved) + "."
        lines.append(text.strip())
    return lines


def reference_lines(rows: list[dict[str, Any]], base: str, method: str = "t") -> list[str]:
    """Does the base method (VPT with the base optimizer) beat the linear probe? Paired by seed."""
    diff = reference_difference(rows, base, method=method)
    if diff is None:
        return []
    n = max(d.n for d in diff.values())
    return [f"**Does prompt tuning help here?** {base} (VPT) − linear-probe, paired by seed (n = {n}), mean "
            "[95 % CI] verdict: " + "; ".join(f"{m} {d.format(2)}" for m, d in diff.items())
            + ". The probe is the base run with `model.prompt_length=0` and nothing else changed; it is a reference "
            "row, not a method, so it is neither in the paired table nor in the Holm family.", ""]


@dataclass
class Report:
    """A written report: its path and its sections ({heading: markdown}; "" is the preamble)."""

    path: Path
    sections: dict[str, str]

    @property
    def markdown(self) -> str:
        return "\n".join((f"## {h}\n\n" if h else "") + text for h, text in self.sections.items())

    def brief(self) -> str:
        """What `compare` prints: the task and rule, the headline, and the flatness table when there is one."""
        preamble = self.sections[""].split("\n", 2)[-1].strip()  # without the title line
        keep = [preamble, "## Headline\n\n" + self.sections["Headline"].strip()]
        if "Flatness probes" in self.sections:
            keep.append("## Flatness probes\n\n" + self.sections["Flatness probes"].strip())
        return "\n\n".join(keep)


def write_report(runs_dir: str | Path, out: str | Path | None = None, base: str | None = None,
                 figures: bool = True, method: str = "t", title: str | None = None, command: str = "",
                 endpoint: str = PRIMARY) -> Report:
    """Write RUNS_DIR/report.md (or `out`) and its figures (RUNS_DIR/figures); returns the `Report`. `endpoint`:
    the primary endpoint, the accuracy column Holm covers (overall unless a study declared another)."""
    runs_dir = Path(runs_dir)
    runs = finished_runs(runs_dir)
    rows = [summary_row(r.summary, r.path) for r in runs]
    order = method_order(r["label"] for r in rows)
    cfg = runs[0].config
    methods_found = [o for o in order if not is_reference(o)] or order
    if base is not None and base not in methods_found:
        raise ConfigError(f"--base {base}: no runs of {base!r} in {runs_dir}; the methods there are "
                          f"{', '.join(methods_found)}")
    base = pick_base(methods_found, base or (cfg.get("optimizer") or {}).get("base"))
    rows.sort(key=lambda r: ((order.index(r["label"]) if r["label"] != base else -1), r["seed"]))
    agg = aggregate(rows)
    methods = [r for r in rows if not is_reference(r["label"])]
    paired = (paired_table(rows, base, method=method, endpoint=endpoint) if len({r['label'] for r in methods}) > 1
              else {})
    epochs = cfg.get("epochs")
    d = cfg.get("data", {})
    out = Path(out) if out else runs_dir / "report.md"
    write_csv(rows, runs_dir / "summary.csv")
    sec: dict[str, list[str]] = {}

    md = sec[""] = [f"# {title or 'ltlab comparison: ' + str(d.get('name'))}", ""]
    if command:
        md += [f"Made by `{command}`; regenerate with `python -m ltlab report {runs_dir}`.", ""]
    md += [f"Task: `{d.get('name')}`, {len(runs[0].summary['class_counts'])} classes, training images per class "
           f"{max(runs[0].summary['class_counts'])} → {min(runs[0].summary['class_counts'])}, many / medium / few = "
           + " / ".join(str(len(runs[0].summary['splits'].get(g, []))) for g in ("many", "medium", "few"))
           + f" classes; {counted(epochs, 'epoch')}; optimizer base `{base}`.", "",
           rule_sentence(agg, epochs) + f" Differences are paired by seed against `{base}`; the 95 % interval is a "
           + ("t-interval with n − 1 degrees of freedom" if method == "t" else "percentile bootstrap")
           + "; the word follows the interval (better / worse / no resolved difference; higher / lower for "
           "curvature, which has no good direction).", ""]
    sec["Headline"] = [format_table(agg, paired, columns=ACCURACY + ("ece",), endpoint=endpoint), "",
                       *reference_lines(rows, base, method)]
    if paired:
        sec["What the intervals say"] = [*conclusions(paired, base, endpoint), ""]

    # the other rule, beside (never the headline unless the config asks for it)
    md = sec["Best-on-validation, beside (opt-in rule, not the headline)" if rows[0]["select"] == "last"
             else "Last epoch, beside"] = ["| method | n | epochs chosen | overall | few |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["label"] for r in rows):
        rs = [r for r in rows if r["label"] == name]
        chosen = ", ".join(str(r["best_val_epoch"]) for r in rs)
        cells = []
        for c in ("overall", "few"):
            m, s, n = mean_std([r.get(f"best_val_{c}") for r in rs])
            cells.append(f"{m:.2f}" + (f" ± {s:.2f}" if n > 1 else ""))
        md.append(f"| {name} | {len(rs)} | {chosen} | " + " | ".join(cells) + " |")
    md += ["", "The validation split is balanced and separate from the test set; it chooses the epoch, the test "
           "set is only read.", ""]

    # evaluation power and cost
    se = {c: mean_std([r.get(f"se_{c}") for r in rows])[0] for c in ACCURACY}
    walls = [r["wall_seconds"] for r in rows]
    sec["Evaluation power and cost"] = [
        "Standard error of one run's test accuracy (binomial, per class for the groups), mean over runs: "
        + ", ".join(f"{c} {cell(se[c])}" for c in ACCURACY) + " points"
        + (" (-: a class group with no classes on this task)." if any(v != v for v in se.values()) else "."), "",
        f"Wall time: {sum(walls):.0f} s of training over {len(rows)} runs ({min(walls):.0f}–{max(walls):.0f} s "
        "each); cost per step is the median over a run's steps.", ""]
    flat = [c for c in FLATNESS if any(r.get(c) is not None for r in methods)]
    if flat:
        group_images = {r.get("group_images") for r in rows} - {None}
        sec["Flatness probes"] = [
            "Probed at the checkpoint the headline reports, on the same seeded training images for every "
            "method (plain CE; see each run's probes/): λ_max and λ_min by Lanczos, the Hessian trace by "
            "Hutch++, the Gaussian sharpness E[L(w + e)] − L(w) (σ 0.01 per element)"
            + (f", and λ_max of each class group on {', '.join(map(str, sorted(group_images)))} training "
               "images per group (the same number for many, medium and few)" if group_images else "")
            + ". A point with λ_min < 0 is an end point, not a minimum; curvature has no good direction, so "
            "the words are higher / lower."
            + (" The linear probe is left out: its Hessian is over the head alone, not over prompts + head, so "
               "its curvature is not comparable." if len(methods) < len(rows) else ""), "",
            format_table(aggregate(methods), paired, columns=flat, endpoint=endpoint), ""]
        note = lr_sentence(learning_rates(runs), base)
        sec["Flatness probes"] += [note, ""] if note else []
    if figures:
        md = sec["Figures"] = []
        for p in compare_figures(runs_dir, runs_dir / "figures", base=base, method=method):
            if p.suffix == ".png":
                md.append(f"![{p.stem}]({p.relative_to(out.parent) if p.is_relative_to(out.parent) else p})")
        md += ["", "Bars and bands: " + rule_sentence(agg, epochs), ""]
    report = Report(out, {h: "\n".join(lines) for h, lines in sec.items()})
    out.write_text(report.markdown)
    return report
