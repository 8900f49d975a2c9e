"""Paired comparisons over seeds: mean ± std, paired differences, 95 % intervals and the verdict word.

The comparison protocol (DESIGN.md): seed s gives every method the same data order, initialisation
and augmentation; a method's effect is the per-seed difference d_s = x_method(s) - x_base(s).

    mean  = (1/n) sum_s d_s,   sd = sqrt(sum_s (d_s - mean)^2 / (n - 1))
    95 % t-interval:  mean ± t_{0.975, n-1} · sd / sqrt(n)
    bootstrap:        the 2.5 / 97.5 percentiles of the mean of n seeds drawn with replacement

Words follow the interval: it excludes 0 on the good side -> "better", on the bad side -> "worse",
otherwise "no resolved difference". For measures without a good direction (λ_max, trace) the words
are "higher" / "lower". n = 1 gives no interval and no word.

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
    """Student-t distribution function (Simpson's rule on the density; |error| < 1e-9 for df >= 1)."""
    if x < 0:
        return 1.0 - t_cdf(-x, df)
    # substitute t = tan(u) for df = 1-like heavy tails: integrate the density over u in [0, atan(x)]
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    b, n = math.atan(x), 2000

    def f(u: float) -> float:
        t = math.tan(u)
        return c * (1 + t * t / df) ** (-(df + 1) / 2) * (1 + t * t)

    h = b / n
    s = f(0.0) + f(b) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, n))
    return 0.5 + s * h / 3


def t_quantile(q: float, df: int) -> float:
    """The q-quantile of Student's t with df degrees of freedom (bisection on `t_cdf`).

    >>> round(t_quantile(0.975, 2), 3), round(t_quantile(0.975, 4), 3)
    (4.303, 2.776)
    """
    if not 0 < q < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0 < q < 1 and df >= 1, got q={q}, df={df}")
    if q < 0.5:
        return -t_quantile(1 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


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

    def format(self, digits: int = 2) -> str:
        """'+1.00 [+0.25, +1.75] better' (or '+1.00 (n=1, no interval)')."""
        if self.n == 0:
            return "-"
        fmt = f"{{:+.{digits}f}}"
        if self.n < 2:
            return fmt.format(self.mean) + " (n=1, no interval)"
        return f"{fmt.format(self.mean)} [{fmt.format(self.lo)}, {fmt.format(self.hi)}] {self.verdict}"


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
        half = t_quantile((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
        lo, hi = m - half, m + half
    else:
        rng = random.Random(seed)
        means = sorted(sum(rng.choices(d, k=n)) / n for _ in range(resamples))
        a = (1 - confidence) / 2
        lo, hi = means[int(a * (resamples - 1))], means[int(round((1 - a) * (resamples - 1)))]
    return PairedDiff(n, m, sd, lo, hi, verdict(lo, hi, higher_is_better), method, confidence)


def binomial_stderr(p: float, n: int) -> float:
    """Standard error (same units as p, a fraction or percent) of an accuracy measured on n images."""
    scale = 100.0 if p > 1 else 1.0
    q = p / scale
    return scale * math.sqrt(max(q * (1 - q), 0.0) / n) if n > 0 else float("nan")


def group_stderr(per_class_acc: Sequence[float], per_class_n: Sequence[int]) -> float:
    """Standard error of a mean of per-class accuracies (percent), each from its own test images."""
    terms = [(a / 100) * (1 - a / 100) / n for a, n in zip(per_class_acc, per_class_n) if n > 0 and a == a]
    return 100 * math.sqrt(sum(terms)) / len(terms) if terms else float("nan")
