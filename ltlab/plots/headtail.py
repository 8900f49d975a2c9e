"""Head / tail accuracy figures from plain results (summaries, rows), never from a model."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .style import color, style


def per_class_accuracy(results: Mapping[str, Sequence[float]], class_counts: Sequence[int], window: int = 5):
    """Per-class accuracy (points) and a running mean (line), classes sorted by training-set size."""
    import matplotlib.pyplot as plt

    order = np.argsort(-np.asarray(class_counts), kind="stable")
    with style():
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
        ax2 = ax.twinx()
        ax2.bar(np.arange(len(order)), np.asarray(class_counts)[order], color="#dddddd", width=1.0, zorder=0)
        ax2.set_ylabel("training images", color="#888888")
        ax2.grid(False)
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
        for name, acc in results.items():
            a = np.asarray(acc, dtype=float)[order]
            ax.scatter(np.arange(len(a)), a, s=6, color=color(name), alpha=0.35)
            k = min(window, len(a))
            smooth = np.convolve(np.nan_to_num(a), np.ones(k) / k, mode="valid")
            ax.plot(np.arange(len(smooth)) + (k - 1) / 2, smooth, color=color(name), lw=1.8, label=name)
        ax.set_xlabel("class (sorted by training images, head → tail)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.legend(loc="lower left", ncol=len(results))
    return fig


def group_bars(rows: Sequence[Mapping[str, float]], groups: Sequence[str] = ("many", "medium", "few", "overall"),
               label: str = "optimizer"):
    """Grouped bars: many / medium / few / overall accuracy per method, with std error bars if present."""
    import matplotlib.pyplot as plt

    n = len(rows)
    width = 0.8 / max(n, 1)
    with style():
        fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(groups), 3.0))
        for i, r in enumerate(rows):
            x = np.arange(len(groups)) + (i - (n - 1) / 2) * width
            vals = [r.get(g, np.nan) for g in groups]
            errs = [r.get(g + "_std", 0.0) for g in groups]
            bars = ax.bar(x, vals, width, yerr=errs if any(errs) else None, color=color(r[label]), label=r[label],
                          capsize=2)
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.5, f"{v:.1f}", ha="center", va="bottom", fontsize=6)
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(ncol=min(n, 4), loc="upper right")
        ax.set_ylim(0, 105)
    return fig


def training_curves(histories: Mapping[str, Sequence[Mapping]], key: str = "overall"):
    """Training loss and validation accuracy per epoch, one line per run (metrics.jsonl rows)."""
    import matplotlib.pyplot as plt

    with style():
        fig, (a, b) = plt.subplots(1, 2, figsize=(7, 2.8))
        for name, rows in histories.items():
            a.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], color=color(name), label=name)
            ev = [r for r in rows if "val" in r]
            b.plot([r["epoch"] for r in ev], [r["val"][key] for r in ev], color=color(name), marker="o", ms=3,
                   label=name)
        a.set(xlabel="epoch", ylabel="training loss")
        b.set(xlabel="epoch", ylabel=f"validation {key} accuracy (%)")
        b.legend()
    return fig


def cost_bars(rows: Sequence[Mapping[str, float]], label: str = "optimizer"):
    """Seconds per step relative to SGD, per method."""
    import matplotlib.pyplot as plt

    ref = next((r["sec_per_step"] for r in rows if r[label] == "sgd"), rows[0]["sec_per_step"])
    with style():
        fig, ax = plt.subplots(figsize=(3.5, 2.6))
        names = [r[label] for r in rows]
        ratios = [r["sec_per_step"] / ref for r in rows]
        ax.bar(names, ratios, color=[color(n) for n in names])
        for i, v in enumerate(ratios):
            ax.text(i, v + 0.02, f"{v:.2f}×", ha="center", fontsize=7)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_ylabel("time per step / SGD")
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
