"""The result vocabulary: what a run's row holds (accuracy, flatness and cost columns), which direction is good,
the primary endpoint, the reference rows, run names and labels, and the method order of every table and figure
(the optimizer registry's). Everything that reads or tabulates runs speaks it."""
from __future__ import annotations

from typing import Any

from ..optim import OPTIMIZERS
from ..train.runs import Run

ACCURACY = ("overall", "many", "medium", "few")
COLUMNS = ACCURACY + ("ece", "sec_per_step", "peak_memory_mb")
FLATNESS = ("lambda_max", "lambda_min", "trace", "gaussian_sharpness", "lambda_max_many", "lambda_max_medium",
            "lambda_max_few")
# which direction is good, for the verdict word (None: no good direction, the words are higher / lower)
HIGHER_IS_BETTER: dict[str, bool | None] = {**{c: True for c in ACCURACY}, "ece": False,
                                            **{c: None for c in FLATNESS}}
PRIMARY = "overall"  # the primary endpoint: its verdicts are Holm-corrected over the methods of a table
# reference rows: printed beside the methods where accuracy is compared, never paired as a method
REFERENCES = {"linear": "linear-probe", "compute": "equal-compute"}


def run_name(label: str, seed: int) -> str:
    return f"{label}-s{seed}"


def summary_label(summary: dict[str, Any]) -> str:
    """A finished run's label from its summary.json (runs made before labels existed: the optimizer's name)."""
    return summary.get("label") or summary["optimizer"]


def is_reference(label: str) -> bool:
    return label in REFERENCES.values()


def method_order(names) -> list[str]:
    """Registered methods in the registry's order (the base optimizers first), others (methods named by
    import path, labels) after in first-seen order, reference rows last."""
    known = (*OPTIMIZERS, *REFERENCES.values())
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (known.index(n) if n in OPTIMIZERS else len(known) + is_reference(n)))


def label(run: Run) -> str:
    """The run's name in tables and figures (its method's name unless the run has its own label)."""
    return summary_label(run.summary)


