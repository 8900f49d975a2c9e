"""Head / tail accuracy figures from plain results (summaries, rows), never from a model."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .style import caption, color, hatch, style
from .style import caption as add_caption


def per_class_accuracy(results: Mapping[str, Sequence[float]], class_counts: Sequence[int], window: int = 5,
                       splits: Mapping[str, Sequence[int]] | None = None, note: str = ""):
    """Per-class accuracy (points) and its running mean over `window` neighbouring classes (line), classes
    sorted by training-set size; a small panel below shows each class's training images.

    `splits` shades the many / medium / few groups in greys; `note` is the caption (rule, seeds).
    """
    import matplotlib.pyplot as plt

    order = np.argsort(-np.asarray(class_counts), kind="stable")
    with style():
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.5, 3.8), sharex=True, height_ratios=(3, 1))
        ax2.bar(np.arange(len(order)), np.asarray(class_counts)[order], color="#bbbbbb", width=1.0)
        ax2.set_ylabel("train images")
        ax2.set_xlabel("class (sorted by training images, head → tail)")
        styles = ["-", "--", "-.", ":", (0, (6, 1.5, 1, 1.5, 1, 1.5)), (0, (1, 2.5))]  # one per row up to 6
        for i, (name, acc) in enumerate(results.items()):
            a = np.asarray(acc, dtype=float)[order]
            ax.scatter(np.arange(len(a)), a, s=6, color=color(name), alpha=0.35)
            k = min(window, len(a))
            smooth = np.convolve(np.nan_to_num(a), np.ones(k) / k, mode="valid")
            ax.plot(np.arange(len(smooth)) + (k - 1) / 2, smooth, color=color(name), lw=1.6,
                    label=f"{name} (running mean of {k} classes)" if i == 0 else name, ls=styles[i % len(styles)])
        if splits:
            rank = {int(c): r for r, c in enumerate(order)}
            for g, shade in zip(("many", "medium", "few"), ("#f2f2f2", "#e4e4e4", "#d6d6d6")):
                pos = [rank[int(c)] for c in splits.get(g, [])]
                if pos:
                    for a in (ax, ax2):
                        a.axvspan(min(pos) - 0.5, max(pos) + 0.5, color=shade, zorder=0, lw=0)
                    ax.text((min(pos) + max(pos)) / 2, 103, g, ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(-2, 110)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=min(len(results), 3), handlelength=2.6,
                  borderaxespad=0.0)  # above the axes: the tail's points stay visible
        if note:
            caption(fig, note)
    return fig


def paired_note(base: str, method: str = "t") -> str:
    """The caption sentence of figures whose whiskers are paired intervals (`paired_whiskers`)."""
    kind = "t-interval" if method == "t" else "bootstrap interval"
    return (f"Whiskers: the paired 95 % {kind} of each difference to {base} (same seeds), drawn around the method's "
            f"mean; a whisker that clears the dashed {base} line is a resolved difference (before Holm).")


def paired_whiskers(ax, xs: Sequence[float], tops: Sequence[float], diffs: Sequence) -> list[float]:
    """Draw each difference's paired interval (a `PairedDiff`: lo, mean, hi) around the method's own value at
    (x, top), so it is read against the base's line; no whisker where there is no interval (n < 2). Returns
    each whisker's upper end (top where none is drawn)."""
    ends = []
    for x, top, d in zip(xs, tops, diffs):
        if d is None or d.n < 2 or not (np.isfinite(d.lo) and np.isfinite(top)):
            ends.append(top)
            continue
        lo, hi = top + d.lo - d.mean, top + d.hi - d.mean
        ax.errorbar([x], [top], yerr=[[top - lo], [hi - top]], fmt="none", ecolor="black", elinewidth=0.9,
                    capsize=2.5, zorder=5)
        ends.append(hi)
    return ends


def base_line(ax, value: float, x0: float, x1: float) -> None:
    """The base's value as a dashed line over [x0, x1], what `paired_whiskers` are read against."""
    if np.isfinite(value):
        ax.hlines(value, x0, x1, colors="black", linestyles=(0, (3, 2)), lw=0.8, zorder=5)


def group_bars(rows: Sequence[Mapping[str, float]], groups: Sequence[str] = ("many", "medium", "few", "overall"),
               label: str = "label", note: str = "", points: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
               effects: Mapping[str, Mapping] | None = None, base: str | None = None):
    """Grouped bars: many / medium / few / overall accuracy per method.

    Whiskers: with `effects` ({label: {group: PairedDiff against `base`}}, e.g. `paired_table(...,
    references=True)`) the paired intervals, read against the base's dashed line (say so in `note`:
    `paired_note`); without, the std over seeds if the rows have it. points: {label: {group: each seed's
    value}}, drawn as dots on the bars (where there are few seeds, the seeds themselves).
    """
    import matplotlib.pyplot as plt

    n = len(rows)
    width = 0.8 / max(n, 1)
    with style():
        fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(groups), 3.0))
        for i, r in enumerate(rows):
            x = np.arange(len(groups)) + (i - (n - 1) / 2) * width
            vals = [r.get(g, np.nan) for g in groups]
            errs = [] if effects is not None else [r.get(g + "_std", 0.0) for g in groups]
            errs = [0.0 if e is None or e != e else e for e in errs]
            bars = ax.bar(x, vals, width, yerr=errs if any(errs) else None, color=color(r[label]), label=r[label],
                          hatch=hatch(r[label]), edgecolor="white" if hatch(r[label]) else None, capsize=2,
                          error_kw={"lw": 0.8})
            tops = [v + e for v, e in zip(vals, errs)] if errs else list(vals)
            if effects is not None:
                tops = paired_whiskers(ax, x, vals, [effects.get(r[label], {}).get(g) for g in groups])
                if r[label] == base:
                    for j, v in enumerate(vals):
                        base_line(ax, v, j - 0.4, j + 0.4)
            for j, g in enumerate(groups):
                seeds = (points or {}).get(r[label], {}).get(g, [])
                ax.scatter(np.full(len(seeds), x[j]), seeds, s=6, color="black", alpha=0.7, zorder=4, lw=0)
                tops[j] = max([tops[j], *seeds])
            for b, v, top in zip(bars, vals, tops):  # labels sit above the whisker and the seeds, rotated to fit
                ax.text(b.get_x() + b.get_width() / 2, top + 1.5, f"{v:.1f}", ha="center", va="bottom",
                        fontsize=7, rotation=90)
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(ncol=min(n, 4), loc="upper center", bbox_to_anchor=(0.5, 1.18))
        ax.set_ylim(0, 118)
        if note:
            caption(fig, note)
    return fig


def _curve(rows_per_seed: Sequence[Sequence[Mapping]], get) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean and std over seeds of get(row) (rows without the value are skipped)."""
    by_epoch: dict[int, list[float]] = {}
    for rows in rows_per_seed:
        for r in rows:
            v = get(r)
            if v is not None:
                by_epoch.setdefault(int(r["epoch"]), []).append(float(v))
    ep = np.array(sorted(by_epoch))
    vals = [by_epoch[e] for e in ep]
    return ep, np.array([np.mean(v) for v in vals]), np.array([np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals])


def training_curves(histories: Mapping[str, Sequence], key: str = "overall", drw_epoch: int | None = None,
                    note: str = ""):
    """Loss at the unperturbed weights w on a fixed training subset, and validation accuracy, per epoch.

    histories: {method: metrics.jsonl rows} or {method: [rows of seed 1, rows of seed 2, ...]} (mean ± std
    band over seeds). The left panel uses `train_ce_at_w`, comparable across methods (the step loss of
    GNM / RSAM is taken at perturbed weights). `drw_epoch` (0-based, as the config) marks DRW switching on.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    with style():
        fig, (a, b) = plt.subplots(1, 2, figsize=(7.2, 2.8))
        for name, runs in histories.items():
            runs = [runs] if runs and isinstance(runs[0], Mapping) else list(runs)
            for ax, get in ((a, lambda r: r.get("train_ce_at_w", r.get("train_loss"))),
                            (b, lambda r: r["val"][key] if "val" in r else None)):
                ep, m, s = _curve(runs, get)
                sparse = ax is b and len(ep) and len(ep) < max(ep)  # validated every few epochs: points, not a line
                marked = hatch(name) is not None  # a row drawn hatched in bars (equal compute: the base's colour)
                ax.plot(ep, m, color=color(name), label=name, marker="s" if marked else "o", ms=4 if sparse else 2.5,
                        lw=0.8 if sparse else 1.4, ls="--" if marked else (":" if sparse else "-"))
                if len(runs) > 1 and sparse:
                    ax.errorbar(ep, m, s, color=color(name), ls="", capsize=2, lw=0.8)
                elif len(runs) > 1:
                    ax.fill_between(ep, m - s, m + s, color=color(name), alpha=0.15, lw=0)
        last = max((max(ax.get_lines()[0].get_xdata(), default=0) if ax.get_lines() else 0) for ax in (a, b))
        for ax in (a, b):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if drw_epoch is not None and drw_epoch + 1 <= last:  # config epochs are 0-based; logged epochs count completed epochs
                ax.axvline(drw_epoch + 0.5, color="k", lw=0.8, ls=":")
                ax.text(drw_epoch + 0.6, 0.97, "DRW on", transform=ax.get_xaxis_transform(), fontsize=8, va="top")
        a.set(xlabel="epoch", ylabel="CE at w (fixed train subset)")
        b.set(xlabel="epoch (validated where marked)", ylabel=f"validation {key} acc. (%)")
        b.legend(fontsize=7)
        fig.tight_layout()
        if note:
            caption(fig, note)
    return fig


def cost_bars(rows: Sequence[Mapping[str, float]], label: str = "label", note: str = ""):
    """Seconds per step relative to the first method listed (the base optimizer), per method."""
    import matplotlib.pyplot as plt

    ref, base = rows[0]["sec_per_step"], rows[0][label]
    with style():
        fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(rows), 2.8))
        names = [r[label] for r in rows]
        ratios = [r["sec_per_step"] / ref for r in rows]
        errs = [(r.get("sec_per_step_std") or 0.0) / ref for r in rows]
        errs = [0.0 if e != e else e for e in errs]
        bars = ax.bar(names, ratios, color=[color(n) for n in names], yerr=errs if any(errs) else None, capsize=2,
                      error_kw={"lw": 0.8})
        for bar, n in zip(bars, names):  # hatched rows (equal compute) as in the accuracy bars
            if hatch(n):
                bar.set(hatch=hatch(n), edgecolor="white")
        for i, (v, e) in enumerate(zip(ratios, errs)):  # above the error bar's cap, not on it
            ax.annotate(f"{v:.2f}×", (i, v + e), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8)
        ax.tick_params(axis="x", rotation=35)
        for t in ax.get_xticklabels():
            t.set_ha("right")
        fig.tight_layout()  # the rotated names inside the figure, so the caption goes below them
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_ylabel(f"time per step / {base}")
        if note:
            caption(fig, note)
    return fig


def sample_images(dataset, class_names: Sequence[str], class_counts: Sequence[int], classes: Sequence[int] | None = None,
                  per_class: int = 4):
    """A grid of example images: one row per class (head first), titled with the class size."""
    import matplotlib.pyplot as plt

    targets = np.asarray(dataset.targets)
    classes = list(classes) if classes is not None else list(np.argsort(-np.asarray(class_counts))[:: max(1, len(class_counts) // 6)])
    with style():
        fig, axes = plt.subplots(len(classes), per_class, figsize=(1.1 * per_class, 1.15 * len(classes)), squeeze=False)
        for r, c in enumerate(classes):
            idx = np.where(targets == c)[0][:per_class]
            for k in range(per_class):
                ax = axes[r, k]
                ax.axis("off")
                if k < len(idx):
                    img = dataset.images[idx[k]] if hasattr(dataset, "images") else dataset[int(idx[k])][0]
                    img = np.asarray(img)
                    ax.imshow(img.transpose(1, 2, 0) if img.shape[0] == 3 else img)
            axes[r, 0].set_title(f"{class_names[c]} (n={class_counts[c]})", fontsize=6, loc="left")
    return fig


def metric_bars(rows: Sequence[Mapping[str, float]], metrics: Sequence[str], labels: Mapping[str, str] | None = None,
                label: str = "label", note: str = "", effects: Mapping[str, Mapping] | None = None,
                base: str | None = None):
    """One panel per metric (e.g. lambda_max, trace, sharpness): mean per method. Whiskers as in `group_bars`:
    the paired intervals against `base` with `effects` ({label: {metric: PairedDiff}}), else the std over seeds."""
    import matplotlib.pyplot as plt

    labels = dict(labels or {})
    with style():
        fig, axes = plt.subplots(1, len(metrics), figsize=(2.3 * len(metrics) + 0.4, 2.6), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            names = [r[label] for r in rows]
            vals = [r.get(m, np.nan) for r in rows]
            vals = [np.nan if v is None else v for v in vals]
            errs = [] if effects is not None else [r.get(m + "_std", 0.0) for r in rows]
            errs = [0.0 if e is None or e != e else e for e in errs]
            ax.bar(names, vals, yerr=errs if any(errs) else None, color=[color(n) for n in names], capsize=2,
                   error_kw={"lw": 0.8})
            if effects is not None:
                paired_whiskers(ax, range(len(names)), vals, [effects.get(n, {}).get(m) for n in names])
                if base in names:
                    base_line(ax, vals[names.index(base)], -0.5, len(names) - 0.5)
            ax.set_title(labels.get(m, m), fontsize=8)
            ax.tick_params(axis="x", rotation=45, labelsize=7)
            if min(v for v in vals if v == v) < 0 < max(v for v in vals if v == v):
                ax.axhline(0, color="k", lw=0.6)
        fig.tight_layout()
        if note:
            caption(fig, note)
    return fig


def effect_lines(points, ylabel: str = "difference to the base", caption: str = ""):
    """Paired effects with their intervals against a swept value: `points` = [(method, series, x label,
    PairedDiff)]; one panel per method, one line per series (e.g. a sweep's cells), 0 marked."""
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(m for m, *_ in points))
    with style():
        fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods) + 0.6, 2.9), squeeze=False, sharey=True)
        for ax, method in zip(axes[0], methods):
            mine = [p for p in points if p[0] == method]
            if len({x for _, _, x, _ in mine}) == 1 and len(mine) > 1:  # nothing of its own swept: x = the series
                mine = [(m, "", s, d) for m, s, _, d in mine]
            series = list(dict.fromkeys(s for _, s, *_ in mine))
            for i, name in enumerate(series):
                items = [(x, d) for _, s, x, d in mine if s == name]
                pos = [j + (i - (len(series) - 1) / 2) * 0.12 for j in range(len(items))]
                ax.errorbar(pos, [d.mean for _, d in items], capsize=3, marker="o", ms=4,
                            yerr=[[d.mean - d.lo for _, d in items], [d.hi - d.mean for _, d in items]],
                            color=color(method) if len(series) == 1 else None, label=name if len(series) > 1 else None)
                ax.set_xlim(-0.5, max(len(items), 2) - 0.5)
                ax.set_xticks(range(len(items)), [x for x, _ in items], rotation=15)
            ax.axhline(0, color="0.4", lw=0.8)
            ax.set_title(method)
            if len(series) > 1:
                ax.legend(title="cell")
        axes[0][0].set_ylabel(ylabel)
        fig.tight_layout()
        if caption:
            add_caption(fig, caption)
    return fig


def tuning_curves(table: Mapping[str, Sequence[Mapping]], score: str, seeds: Sequence[int]):
    """Validation score against lr, one panel per method, one line per value of the method's own options
    (mean over tuning seeds), every seed a dot; the selected configuration ringed. `table` = tune.json's grid."""
    import matplotlib.pyplot as plt

    methods = list(table)
    with style():
        fig, axes = plt.subplots(1, len(methods), figsize=(2.6 * len(methods) + 0.6, 2.8), squeeze=False, sharey=True)
        for ax, method in zip(axes[0], methods):
            rows = table[method]
            best = max(rows, key=lambda r: r["mean"])
            series: dict[str, list] = {}
            for r in rows:
                rest = ", ".join(f"{k.rsplit('.', 1)[-1]} {v}" for k, v in r["values"].items() if k != "optimizer.lr")
                series.setdefault(rest, []).append(r)
            shades = np.linspace(1.0, 0.45, max(len(series), 1))
            for (name, rs), shade in zip(series.items(), shades):
                lrs = [r["values"]["optimizer.lr"] for r in rs]
                c = np.asarray(matplotlib_rgb(color(method))) * shade
                ax.plot(lrs, [r["mean"] for r in rs], "-o", ms=3.5, color=c, label=name or None)
                for lr, r in zip(lrs, rs):
                    ax.scatter([lr] * len(r["scores"]), r["scores"], s=7, color=c, alpha=0.45, lw=0)
            ax.scatter([best["values"]["optimizer.lr"]], [best["mean"]], s=90, facecolors="none", edgecolors="k",
                       lw=1.0, zorder=5)
            ax.set_xscale("log")
            lrs_all = sorted({r["values"]["optimizer.lr"] for r in rows})
            ax.set_xticks(lrs_all, [f"{v:g}" for v in lrs_all])
            ax.minorticks_off()
            ax.set_xlabel("lr")
            ax.set_title(method)
            if any(series):
                ax.legend(loc="lower center")
        axes[0][0].set_ylabel(f"validation {score} (%)")
        fig.tight_layout()
        add_caption(fig, f"Line: mean over the tuning seeds ({', '.join(map(str, seeds))}); dots: one seed each; "
                         "ring: the selected configuration (highest mean). Test data never read.")
    return fig


def matplotlib_rgb(c: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(c)


def seed_dots(rows: Sequence[Mapping], labels: Sequence[str], groups: Sequence[str] = ("overall", "many", "medium", "few"),
              caption: str = "", effects: Mapping[str, Mapping] | None = None, base: str | None = None):
    """One panel per class group: every run a dot (jittered), the mean a bar, per label; reference rows grey.
    With `effects` ({label: {group: PairedDiff against `base`}}) each label's paired interval is a whisker beside
    its dots, read against the base's dashed line (`paired_whiskers`)."""
    import matplotlib.pyplot as plt

    from ..results import is_reference

    with style():
        fig, axes = plt.subplots(1, len(groups), figsize=(2.3 * len(groups) + 0.4, 2.9), squeeze=False)
        rng = np.random.default_rng(0)
        for ax, g in zip(axes[0], groups):
            for i, name in enumerate(labels):
                vals = [r[g] for r in rows if r["label"] == name and r.get(g) is not None]
                if not vals:
                    continue
                c = "#999999" if is_reference(name) else color(name)
                ax.scatter(i + rng.uniform(-0.18, 0.18, len(vals)), vals, s=9, color=c, alpha=0.75, lw=0)
                ax.hlines(np.mean(vals), i - 0.3, i + 0.3, color=c, lw=2)
                if effects is not None:
                    paired_whiskers(ax, [i + 0.34], [float(np.mean(vals))], [effects.get(name, {}).get(g)])
                    if name == base:
                        base_line(ax, float(np.mean(vals)), -0.5, len(labels) - 0.5)
            ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
            ax.set_title(g)
            ax.grid(axis="x", visible=False)
        axes[0][0].set_ylabel("test accuracy (%)")
        fig.tight_layout()
        if caption:
            add_caption(fig, caption)
    return fig


def flatness_vs_tail(rows: Sequence[Mapping], labels: Sequence[str], rho: float, lo: float, hi: float):
    """Few-class lambda_max (log x) against few-class test accuracy, one dot per run, coloured by method."""
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        for name in labels:
            rs = [r for r in rows if r["label"] == name]
            if rs:
                ax.scatter([r["lambda_max_few"] for r in rs], [r["few"] for r in rs], s=16, color=color(name),
                           label=name, alpha=0.85, lw=0)
        ax.set_xscale("log")
        from matplotlib.ticker import FormatStrFormatter, LogLocator

        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(FormatStrFormatter(""))
        ax.set_xlabel("few-class λ_max (plain CE, training images)")
        ax.set_ylabel("few-class test accuracy (%)")
        ax.set_title(f"Spearman ρ = {rho:+.2f} [{lo:+.2f}, {hi:+.2f}], n = {len(rows)}")
        ax.legend(loc="best")
        fig.tight_layout()
        add_caption(fig, "One dot per evaluation run (last epoch). The paper's mechanism predicts a falling trend: "
                         "the sharper the tail's loss (right), the lower its accuracy.")
    return fig
