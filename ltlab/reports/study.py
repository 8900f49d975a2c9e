"""The study's report (OUT/study.md), computed from its run directories alone: the tuning table, the test
table on the evaluation seeds with Holm, GNM vs SAM, the reference rows (linear probe, equal-compute base),
failure rates, the paper's mechanism (few-class curvature against few-class accuracy), the step diagnostics,
and the power statement. Regenerate with `python -m ltlab study STUDY --out OUT` (it trains nothing that is
already there).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..stats import NO_VERDICT, PairedDiff, chance_resolved, mean_std, paired_difference
from ..errors import counted
from ..results.tables import format_table, lr_sentence, rule_sentence, tuning_table
from ..results import (ACCURACY, PRIMARY, REFERENCES, aggregate, finished_runs, learning_rates, paired_table,
                       summary_row)

LAMBDA_MIN_EPS = 0.01  # a point counts as a minimum when lambda_min >= -LAMBDA_MIN_EPS * lambda_max
POWER = 0.8


def _by(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["label"], r["seed"]): r for r in rows}


def pair(rows: list[dict[str, Any]], base: str, other: str, metric: str) -> PairedDiff:
    """other − base on `metric`, paired by seed over the seeds both have."""
    by = _by(rows)
    seeds = sorted(s for (label, s) in by if label == base and (other, s) in by)
    return paired_difference([by[(base, s)].get(metric) for s in seeds], [by[(other, s)].get(metric) for s in seeds])


def failure_rates(rows: list[dict[str, Any]], base: str, methods: list[str], points: float
                  ) -> dict[str, tuple[int, int, float, float]]:
    """{method: (failures, seeds, lo, hi)}: a run fails when its few-class test accuracy is more than `points`
    below the base's on the same seed; [lo, hi] is the exact (Clopper-Pearson) 95 % interval of the rate."""
    from scipy.stats import beta

    by = _by(rows)
    out = {}
    for m in methods:
        seeds = sorted(s for (label, s) in by if label == m and (base, s) in by)
        k = sum(by[(m, s)]["few"] < by[(base, s)]["few"] - points for s in seeds)
        n = len(seeds)
        lo = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
        hi = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
        out[m] = (k, n, lo, hi)
    return out


def spearman(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Spearman's rank correlation with a 95 % interval (Fisher z with the Fieller et al. 1957 standard error
    sqrt(1.06 / (n - 3)))."""
    from scipy.stats import norm, spearmanr

    n = len(x)
    rho = float(spearmanr(x, y).statistic)
    if n < 5 or not math.isfinite(rho) or abs(rho) >= 1:
        return rho, float("nan"), float("nan")
    z, half = math.atanh(rho), float(norm.ppf(0.975)) * math.sqrt(1.06 / (n - 3))
    return rho, math.tanh(z - half), math.tanh(z + half)


def within_seed_spearman(x: list[float], y: list[float], seeds: list[int], reps: int = 2000,
                         rng_seed: int = 0) -> tuple[float, float, float]:
    """Spearman's ρ of x and y each centred on its seed's mean (what differs between the runs of one seed: the
    methods, on the same task draw; the draw, which moves both, drops out), with a 95 % percentile interval
    from `reps` resamples of whole seeds (the runs of a seed are not independent once centred)."""
    from scipy.stats import ConstantInputWarning, spearmanr

    groups: dict[int, list[int]] = {}
    for i, s in enumerate(seeds):
        groups.setdefault(s, []).append(i)
    X, Y = np.asarray(x, float), np.asarray(y, float)
    cx = {s: X[ix] - X[ix].mean() for s, ix in groups.items()}
    cy = {s: Y[ix] - Y[ix].mean() for s, ix in groups.items()}

    def rho_of(keys) -> float:  # nan where a resample's centred values are constant (e.g. one seed drawn 5 times)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConstantInputWarning)
            return float(spearmanr(np.concatenate([cx[k] for k in keys]),
                                   np.concatenate([cy[k] for k in keys])).statistic)

    keys = sorted(groups)
    rho = rho_of(keys)
    if len(keys) < 5 or not math.isfinite(rho):
        return rho, float("nan"), float("nan")
    rng = np.random.default_rng(rng_seed)
    boot = [rho_of(rng.choice(keys, size=len(keys), replace=True)) for _ in range(reps)]
    boot = [b for b in boot if math.isfinite(b)]
    if not boot:  # every resample constant (only one seed's runs differ): no interval
        return rho, float("nan"), float("nan")
    return rho, float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def smallest_resolvable(d: PairedDiff, alpha: float) -> float:
    """The paired effect a two-sided t-test at level alpha would detect with 80 % power, given the observed
    sd of the paired differences and their number: (t_{1-alpha/2} + t_{power}) * sd / sqrt(n)."""
    from scipy.stats import t

    if d.n < 2 or not math.isfinite(d.std):
        return float("nan")
    return float((t.ppf(1 - alpha / 2, d.n - 1) + t.ppf(POWER, d.n - 1)) * d.std / math.sqrt(d.n))


def diagnostics_table(runs, methods: list[str]) -> list[str]:
    """Mean over runs and epochs of each method's step diagnostics (metrics.jsonl "diag")."""
    keys = ("grad_norm", "rel_perturbation", "loss_rise")
    lines = ["| method | runs | ‖g(w)‖ | ‖e‖ / ‖w‖ | L(w + e) − L(w) |", "|---|---|---|---|---|"]
    for m in methods:
        per_run = {k: [] for k in keys}
        n = 0
        for r in runs:
            if r.summary.get("label", r.summary["optimizer"]) != m:
                continue
            diags = [row["diag"] for row in r.metrics if "diag" in row]  # metrics.jsonl, read with the run
            if not diags:
                continue
            n += 1
            for k in keys:
                vals = [d[k] for d in diags if k in d]
                if vals:
                    per_run[k].append(float(np.mean(vals)))
        if n:
            cells = []
            for k in keys:
                mean, sd, cnt = mean_std(per_run[k])
                cells.append("-" if not cnt else f"{mean:.3g} ± {sd:.2g}" if cnt > 1 else f"{mean:.3g}")
            lines.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
    return lines


def write_study_report(study, out: str | Path, command: str = "", timing: dict[str, float] | None = None) -> str:
    """Write OUT/study.md and its figures (OUT/figures); returns the markdown."""
    from ..plots import save
    from ..plots.headtail import flatness_vs_tail, paired_note, seed_dots
    from ..reports.comparison import write_report

    out = Path(out)
    tune = json.loads((out / "tune" / "tune.json").read_text())
    eval_dir = out / "eval"
    write_report(eval_dir, title="ltlab study: evaluation runs (tuned configurations, fresh seeds)", command=command,
                 endpoint=study.endpoint)
    runs = finished_runs(eval_dir)
    rows = [summary_row(r.summary, r.path) for r in runs]
    base, methods = study.base, [m for m in study.methods if m != study.base]
    rows.sort(key=lambda r: ((study.methods + list(REFERENCES.values())).index(r["label"])
                             if r["label"] in study.methods + list(REFERENCES.values()) else 99, r["seed"]))
    seeds = sorted({r["seed"] for r in rows})
    agg = aggregate(rows, extra=("lambda_max", "lambda_min", "trace", "gaussian_sharpness", "lambda_max_few"))
    endpoint = study.endpoint
    paired = paired_table(rows, base, metrics=ACCURACY, endpoint=endpoint)
    figs = out / "figures"
    L: list[str] = [f"# ltlab study: {', '.join(study.methods)} at their validation-selected settings", ""]
    if command:
        L += [f"Made by `{command}` from the study file `{study.path}` (declared before any run). "
              "Every number below is computed from the run directories under this folder.", ""]
    L += ["## Protocol", "",
          f"- **Tuning** (selection on validation only): every method gets {len(study.grid(base))} configurations "
          f"(the shared lr values {study.lr} crossed with its own options; the base `{base}`: lr alone, "
          f"{study.base_lr}), each trained on the tuning seeds {study.tuning_seeds} with the test split withheld "
          f"(any read raises), scored by mean validation {study.score} accuracy at the last epoch.",
          f"- **Evaluation**: each method at its selected configuration on {len(seeds)} fresh seeds "
          f"({seeds[0]}–{seeds[-1]}, disjoint from the tuning seeds)"
          + ("; each seed also draws its own task sample (data.seed = seed: which 50 of the 384 (shape, hue, "
             "texture) classes, which of them are head or tail, and every image), the same for every method on "
             "that seed" if study.redraw_data else "; every seed on the preset's task sample (data.seed fixed)")
          + ". Headline: test accuracy at the last epoch; differences paired by seed.",
          f"- **Primary endpoint**: {endpoint} test accuracy, each method − the base, "
          "Holm-corrected over the methods; every other interval is exploratory and says so.", ""]
    L += ["## Tuning (validation)", "", *_tune_lines(tune), "", "![tuning](tune/tune.png)", ""]
    L += ["## Test results on the evaluation seeds", "", rule_sentence(agg), "",
          format_table(agg, paired, columns=ACCURACY, endpoint=endpoint), ""]
    # GNM vs SAM, and the reference rows
    extra: dict[str, dict[str, PairedDiff]] = {}
    for a, b in study.contrasts:  # the study file's declared direct pairings, e.g. gnm − sam
        extra[f"{a} − {b}"] = {m: pair(rows, b, a, m) for m in ACCURACY}
    labels = {r["label"] for r in rows}
    if REFERENCES["compute"] in labels:
        extra[f"{REFERENCES['compute']} − {base}"] = {m: pair(rows, base, REFERENCES["compute"], m) for m in ACCURACY}
        for m in methods:
            extra[f"{m} − {REFERENCES['compute']}"] = {c: pair(rows, REFERENCES["compute"], m, c) for c in ACCURACY}
    if REFERENCES["linear"] in labels:
        extra[f"{base} − {REFERENCES['linear']}"] = {m: pair(rows, REFERENCES["linear"], base, m) for m in ACCURACY}
    if extra:
        L += ["### Direct pairings (exploratory)", "",
              "".join(f"{x} against {y} directly (declared in the study file); " for x, y in study.contrasts)
              + f"the equal-compute base (`{base}` for {2 * int(runs[0].config['epochs'])} "
              "epochs: as many forward-backward passes as a two-pass method such as SAM on the normal schedule) "
              f"against `{base}` and against each method; VPT (`{base}`) against the linear probe. Paired by "
              "seed, mean [95 % CI] verdict; not in the Holm family.", "",
              "| pairing | n | " + " | ".join(ACCURACY) + " |", "|" + "---|" * (len(ACCURACY) + 2)]
        for name, diffs in extra.items():
            L.append(f"| {name} | {diffs[endpoint].n} | " + " | ".join(diffs[m].format(2) for m in ACCURACY) + " |")
        count = sum(d.n >= 2 for diffs in extra.values() for d in diffs.values())
        L += ["", f"These {count} intervals are exploratory: each word follows its own 95 % interval, so about "
              f"{chance_resolved(count):.1f} of them would read 'resolved' by chance alone if nothing differed.", ""]
    # failure rates
    fails = failure_rates(rows, base, methods, study.failure_points)
    L += ["### Failure rate", "",
          f"Rule (declared in the study file): a run fails when its few-class test accuracy is more than "
          f"{study.failure_points:g} points below `{base}`'s on the same seed. Exact 95 % interval of the rate.", "",
          "| method | failures / seeds | rate [95 % CI] |", "|---|---|---|"]
    L += [f"| {m} | {k} / {n} | {k / n:.2f} [{lo:.2f}, {hi:.2f}] |" for m, (k, n, lo, hi) in fails.items() if n]
    L += [""]
    refs = [x for x in REFERENCES.values() if x in labels]
    save(seed_dots(rows, [base, *methods, *refs],
                   caption=f"Test accuracy at the last epoch, one dot per evaluation seed ({len(seeds)} seeds); "
                           "bar: mean. " + ("The reference rows (grey) are not methods. " if refs else "")
                           + paired_note(base),
                   effects=paired_table(rows, base, metrics=ACCURACY, references=True), base=base),
         "study_seeds", figs)
    L += ["![per-seed accuracy](figures/study_seeds.png)", ""]
    # the mechanism
    L += _mechanism(rows, [base, *methods], figs, save, flatness_vs_tail, learning_rates(runs))
    # diagnostics
    L += ["## Step diagnostics (what each method penalises)", "",
          f"Every {runs[0].config.get('eval', {}).get('diagnostics_every', 50)} optimizer steps: ‖g‖ at w, the "
          "perturbation's size relative to the weights, and the loss rise L(w + e) − L(w) on the step's batch "
          "(same dropout draws for both); mean over epochs, then mean ± sd over the evaluation runs.", "",
          *diagnostics_table(runs, [base, *methods]), ""]
    # power and the finding
    L += ["## Power and the finding", "", *_finding(paired, fails, base, len(methods), endpoint), ""]
    if timing:
        n = int(timing.get("invocations", 1))
        L += ["## Wall time", "", f"Tuning {timing.get('tune', 0):.0f} s, evaluation and probes "
              f"{timing.get('evaluate', 0):.0f} s, summed over {counted(n, 'invocation')} of `ltlab study` on this "
              "directory (OUT/timing.json; a resumed invocation adds only what it trained).", ""]
    text = "\n".join(L)
    (out / "study.md").write_text(text)
    return text


def _tune_lines(tune: dict[str, Any]) -> list[str]:
    return [f"Score: {tune['score']}. ▶ = selected (highest mean; ties: the first in grid order).", "",
            *tuning_table(tune["grid"])]


def _mechanism(rows, labels, figs, save, flatness_vs_tail, lrs: dict[str, float | None]) -> list[str]:
    probed = [r for r in rows if r["label"] in labels and r.get("lambda_max_few") is not None]
    if not probed:
        return []
    x = [r["lambda_max_few"] for r in probed]
    y = [r["few"] for r in probed]
    rho, lo, hi = spearman(x, y)
    sharp = [r for r in probed if r.get("gaussian_sharpness") is not None]
    rho_s, lo_s, hi_s = spearman([r["gaussian_sharpness"] for r in sharp], [r["few"] for r in sharp])
    within = _within_seed_table(probed, labels)
    save(flatness_vs_tail(probed, labels, rho, lo, hi), "study_flatness_vs_tail", figs)
    minima = [r for r in probed if r.get("lambda_min") is not None
              and r["lambda_min"] >= -LAMBDA_MIN_EPS * abs(r.get("lambda_max") or 0)]
    by_method = {m: (sum(r in minima for r in probed if r["label"] == m), sum(r["label"] == m for r in probed))
                 for m in labels}
    lines = ["## The paper's mechanism: is the tail flatter where it is more accurate?", "",
             f"Few-class λ_max (the top Hessian eigenvalue of plain CE on the few classes' training images, at the "
             f"reported checkpoint) against few-class test accuracy, one point per prompted evaluation run "
             f"(n = {len(probed)}): Spearman ρ = {rho:+.2f} [{lo:+.2f}, {hi:+.2f}] (95 %, Fisher z). The same with the "
             f"Gaussian sharpness: ρ = {rho_s:+.2f} [{lo_s:+.2f}, {hi_s:+.2f}]. The paper's argument predicts a "
             "negative correlation (flatter tail, better tail).", "", *_flatness_lines(probed, labels, lrs), "",
             "Each seed draws its own task sample, which moves flatness and accuracy together. Within a seed (each "
             "variable centred on its seed's mean, so only the methods differ, on one draw; 95 % interval from "
             "2,000 resamples of seeds), with each method left out in turn to show which carries the association "
             "(exploratory; associations across runs, not a causal test):", "", *within, "",
             "![flatness vs tail](figures/study_flatness_vs_tail.png)", "",
             f"**Minima?** A run ends at a minimum here when λ_min ≥ −{LAMBDA_MIN_EPS:g} · λ_max: "
             + ", ".join(f"{m} {k} of {n}" for m, (k, n) in by_method.items() if n) + "."]
    if not minima:
        lines.append(" No method reaches a minimum on this schedule: every end point has a direction of negative "
                     "curvature, so flatness here describes where the schedule stops, not a minimum.")
    return lines + [""]


FLAT_SHOWN = ("lambda_max", "lambda_min", "gaussian_sharpness", "lambda_max_few")


def _flatness_lines(probed: list[dict[str, Any]], labels: list[str], lrs: dict[str, float | None]
                    ) -> list[str]:
    """Where each method ends: its flatness (mean ± sd over seeds) and each method − the base, paired by seed;
    with a warning where the methods were selected at different lr (the end point's curvature moves with it)."""
    cols = [c for c in FLAT_SHOWN if all(r.get(c) is not None for r in probed)]
    lines = ["Where each method ends (curvature has no good direction, so the words are higher / lower):", "",
             format_table(aggregate(probed, extra=cols), paired_table(probed, labels[0], metrics=cols), columns=cols)]
    note = lr_sentence({m: lrs.get(m) for m in labels}, labels[0])
    return lines + (["", note] if note else [])


def _within_seed_table(probed: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """Within-seed Spearman ρ of few-class λ_max and of Gaussian sharpness against few-class accuracy: all
    methods, then without each method."""
    lines = ["| runs | n | λ_max few vs few acc. | Gaussian sharpness vs few acc. |", "|---|---|---|---|"]
    present = [m for m in labels if any(r["label"] == m for r in probed)]
    for drop in [None, *present] if len(present) > 2 else [None]:
        keep = [r for r in probed if r["label"] != drop and r.get("gaussian_sharpness") is not None]
        cells = []
        for key in ("lambda_max_few", "gaussian_sharpness"):
            rho, lo, hi = within_seed_spearman([r[key] for r in keep], [r["few"] for r in keep],
                                               [r["seed"] for r in keep])
            cells.append(f"{rho:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        lines.append(f"| {'all methods' if drop is None else 'without ' + drop} | {len(keep)} | {cells[0]} | {cells[1]} |")
    return lines


def _finding(paired, fails, base: str, m: int, endpoint: str = PRIMARY) -> list[str]:
    lines = []
    for name, diffs in paired.items():
        d = diffs[endpoint]
        mde = smallest_resolvable(d, 0.05 / max(m, 1))
        word = d.verdict if d.verdict else NO_VERDICT
        resolved = word != NO_VERDICT
        lines.append(f"- **{name}** − {base}, {endpoint}: {d.format(2)}. "
                     + (f"A resolved difference of {d.mean:+.2f} points." if resolved else
                        f"Not resolved. With n = {d.n} seeds and the observed paired sd {d.std:.2f}, the smallest "
                        f"effect this study would detect with {POWER:.0%} power at the strictest Holm level "
                        f"(α = 0.05/{m}) is ±{mde:.2f} points."))
    return lines
