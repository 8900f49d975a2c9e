"""One style for every ltlab figure: fixed colour-blind-safe colours per method, deterministic files."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

# Okabe & Ito (2008) colour-blind-safe palette, fixed per name across every figure. A method's colour is in
# its registry entry (ltlab.optim.OPTIMIZERS); this table holds the reference rows, which are not methods. A
# model setup "<model>+<method>" (LPT vs VPT) takes its method's colour and the model's hatch (`hatch`).
PALETTE = {"linear": "#C8C8C8", "linear-probe": "#C8C8C8", "equal-compute": "#555555"}  # the base, 2x the epochs
HATCH = {"lpt": "///", "equal-compute": "..."}  # LPT setups and the equal-compute base drawn hatched
_EXTRA = ["#0072B2", "#009E73", "#F0E442", "#CC79A7", "#56B4E9", "#E69F00", "#D55E00", "#000000"]

RC = {
    "pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 300, "figure.dpi": 100, "savefig.bbox": "tight",
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "legend.frameon": False,
    "svg.hashsalt": "ltlab", "path.simplify": True,
}


def color(name: str) -> str:
    """The fixed colour of a method (unknown names get a stable colour from their text)."""
    from ..optim.factory import OPTIMIZERS

    key = name.lower()
    if "+" in key:  # a model setup: its method's colour
        return color(key.split("+", 1)[1])
    if key in OPTIMIZERS and OPTIMIZERS[key].color:
        return OPTIMIZERS[key].color
    if key in PALETTE:
        return PALETTE[key]
    return _EXTRA[sum(map(ord, key)) % len(_EXTRA)]


def hatch(name: str) -> str | None:
    """The hatch of a model setup "<model>+<method>" or a hatched reference row (None: plain)."""
    return HATCH.get(name.lower().split("+", 1)[0] if "+" in name else name.lower())


@contextmanager
def style() -> Iterator[None]:
    """Context manager applying the ltlab style (no global side effects)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with plt.style.context("default"), sns.plotting_context("paper"), matplotlib.rc_context(RC):
        yield


def caption(fig, text: str) -> None:
    """A caption under the axes (kept by the tight bounding box): every figure states its rule and n."""
    fig.text(0.0, -0.02, text, ha="left", va="top", fontsize=8, wrap=True, color="#333333")


def save(fig, name: str, directory: str | Path = "figures") -> list[Path]:
    """Write directory/name.pdf and .png with fixed metadata, so a re-run makes no git diff."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pdf, png = directory / f"{name}.pdf", directory / f"{name}.png"
    with matplotlib.rc_context(RC):
        fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})
        fig.savefig(png, metadata={"Software": None})
    return [pdf, png]
