"""Paired comparisons over seeds: mean ± std, paired differences, 95 % intervals and the verdict word.

The comparison protocol (README, "The comparison protocol"): seed s gives every method the same data order, initialisation
and augmentation; a method's effect is the per-seed difference d_s = x_method(s) - x_base(s).

    mean  = (1/n) sum_s d_s,   sd = sqrt(sum_s (d_s - mean)^2 / (n - 1))
    95 % t-interval:  mean ± t_{0.975, n-1} · sd / sqrt(n)
    bootstrap:        the 2.5 / 97.5 percentiles of the mean of n seeds drawn with replacement

Words follow the interval: it excludes 0 on the good side -> "better", on the bad side -> "worse",
otherwise "no resolved difference". For measures without a good direction (λ_max, trace) the words
are "higher" / "lower". n = 1 gives no interval and no word.

Multiplicity: a table of k methods makes k comparisons on its primary endpoint. `holm` adjusts their
two-sided p-values (Holm 1979: sort ascending, p_(i) -> max_{j<=i} min(1, (k - j + 1) p_(j))), which
keeps the chance of any false "resolved" word among the k at most 5 %; `with_holm` puts the adjusted
p and the word it earns on each PairedDiff. Every other cell is exploratory: at 95 %, m exploratory
intervals give about 0.05 m "resolved" words by chance alone when nothing differs.

>>> d = paired_difference([50.0, 52.0, 51.0], [51.0, 53.2, 51.9])
>>> round(d.mean, 3), d.n, d.verdict
(1.033, 3, 'better')
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

NO_VERDICT = "no resolved difference"


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_std(values: Sequence[float | None]) -> tuple[float, float, int]:
    """(mean, sample std, n) over the finite values; NaN where undefined (std needs n >= 2).

    >>> mean_std([1.0, 2.0, float("nan"), 3.0])
    (2.0, 1.0, 3)
    """
    v = _finite(values)
    if not v:
        return float("nan"), float("nan"), 0
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
    return m, sd, len(v)


def t_cdf(x: float, df: int) -> float:
    """Student-t distribution function (scipy.stats.t)."""
    from scipy.stats import t

    return float(t.cdf(x, df))


def t_quantile(q: float, df: int) -> float:
    """The q-quantile of Student's t with df degrees of freedom (scipy.stats.t).

    >>> round(t_quantile(0.975, 2), 3), round(t_quantile(0.975, 4), 3)
    (4.303, 2.776)
    """
    if not 0 < q < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0 < q < 1 and df >= 1, got q={q}, df={df}")
    from scipy.stats import t

    return float(t.ppf(q, df))


def verdict(lo: float, hi: float, higher_is_better: bool | None = True) -> str:
    """The word an interval [lo, hi] of (method - base) earns."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    if lo > 0:
        return "higher" if higher_is_better is None else ("better" if higher_is_better else "worse")
    if hi < 0:
        return "lower" if higher_is_better is None else ("worse" if higher_is_better else "better")
    return NO_VERDICT


@dataclass(frozen=True)
class PairedDiff:
    """The paired difference (method - base) over the n seeds both have."""

    n: int
    mean: float
    std: float
    lo: float
    hi: float
    verdict: str
    method: str = "t"
    confidence: float = 0.95
    p: float = float("nan")  # two-sided p-value of "no difference" (t-test, or bootstrap)
    p_holm: float | None = None  # Holm-adjusted p when the cell is a primary endpoint of a table


    def format(self, digits: int | None = 2) -> str:
        """'+1.00 [+0.25, +1.75] better' (or '+1.00 (n=1, no interval)'). digits=None: two significant digits
        of the interval's width (at least 2 decimals), for measures as small as a Gaussian sharpness."""
        if self.n == 0:
            return "-"
        if digits is None:
            width = abs(self.hi - self.lo) if self.n >= 2 and self.hi == self.hi else abs(self.mean)
            digits = max(2, min(8, 1 - math.floor(math.log10(width)))) if width > 0 else 2
        fmt = f"{{:+.{digits}f}}"
        if self.n < 2:
            return fmt.format(self.mean) + " (n=1, no interval)"
        text = f"{fmt.format(self.mean)} [{fmt.format(self.lo)}, {fmt.format(self.hi)}] {self.verdict}"
        return text + (f" (Holm p {self.p_holm:.3f})" if self.p_holm is not None else "")


def paired_difference(base: Sequence[float | None], other: Sequence[float | None], confidence: float = 0.95,
                      method: str = "t", higher_is_better: bool | None = True, resamples: int = 10_000,
                      seed: int = 0) -> PairedDiff:
    """Paired difference other - base, seed by seed (positions pair up; pairs with a NaN are dropped).

    method="t": mean ± t_{(1+c)/2, n-1} sd / sqrt(n). method="bootstrap": percentile interval of the
    mean over `resamples` seeded resamples of the n differences (use it for n >= 5).
    """
    if len(base) != len(other):
        raise ValueError(f"paired values need equal lengths, got {len(base)} and {len(other)}")
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method={method!r}: use 't' or 'bootstrap'")
    d = [float(o) - float(b) for b, o in zip(base, other)
         if b is not None and o is not None and math.isfinite(float(b)) and math.isfinite(float(o))]
    m, sd, n = mean_std(d)
    if n < 2:
        return PairedDiff(n, m, sd, float("nan"), float("nan"), "", method, confidence)
    if method == "t":
        se = sd / math.sqrt(n)
        half = t_quantile((1 + confidence) / 2, n - 1) * se
        lo, hi = m - half, m + half
        p = 2 * t_cdf(-abs(m) / se, n - 1) if se > 0 else (1.0 if m == 0 else 0.0)  # the lower tail: exact
    else:
        rng = random.Random(seed)
        means = sorted(sum(rng.choices(d, k=n)) / n for _ in range(resamples))
        a = (1 - confidence) / 2
        lo, hi = means[int(a * (resamples - 1))], means[int(round((1 - a) * (resamples - 1)))]
        p = min(1.0, 2 * min(sum(x <= 0 for x in means), sum(x >= 0 for x in means)) / resamples)
    return PairedDiff(n, m, sd, lo, hi, verdict(lo, hi, higher_is_better), method, confidence, min(1.0, max(0.0, p)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (NaN stays NaN and does not count as a test).

    >>> [round(x, 3) for x in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    idx = sorted((i for i, p in enumerate(p_values) if p == p), key=lambda i: p_values[i])
    k, out, running = len(idx), [float("nan")] * len(p_values), 0.0
    for j, i in enumerate(idx):
        running = max(running, min(1.0, (k - j) * p_values[i]))
        out[i] = running
    return out


def with_holm(diffs: Sequence[PairedDiff], higher_is_better: bool | None = True) -> list[PairedDiff]:
    """The same differences with Holm-adjusted p over all of them and the word that adjusted p earns
    (resolved only when p_holm < 1 - confidence; the interval shown stays the unadjusted one)."""
    import dataclasses

    adjusted = holm([d.p if d.n >= 2 else float("nan") for d in diffs])
    out = []
    for d, ph in zip(diffs, adjusted):
        if ph != ph:
            out.append(d)
            continue
        word = NO_VERDICT
        if ph < 1 - d.confidence:
            word = verdict(1.0, 1.0, higher_is_better) if d.mean > 0 else verdict(-1.0, -1.0, higher_is_better)
        out.append(dataclasses.replace(d, p_holm=ph, verdict=word))
    return out


def chance_resolved(intervals: int, confidence: float = 0.95) -> float:
    """How many of `intervals` exploratory 95 % intervals exclude 0 by chance alone when nothing differs."""
    return intervals * (1 - confidence)


def binomial_stderr(p: float, n: int) -> float:
    """Standard error (same units as p, a fraction or percent) of an accuracy measured on n images."""
    scale = 100.0 if p > 1 else 1.0
    q = p / scale
    return scale * math.sqrt(max(q * (1 - q), 0.0) / n) if n > 0 else float("nan")


def group_stderr(per_class_acc: Sequence[float], per_class_n: Sequence[int]) -> float:
    """Standard error of a mean of per-class accuracies (percent), each from its own test images."""
    terms = [(a / 100) * (1 - a / 100) / n for a, n in zip(per_class_acc, per_class_n) if n > 0 and a == a]
    return 100 * math.sqrt(sum(terms)) / len(terms) if terms else float("nan")
