"""compile=true: the training forward through torch.compile, or the eager module where Inductor cannot build."""
from __future__ import annotations

import sys

import torch

_INDUCTOR: dict[str, str | None] = {}


def inductor_problem() -> str | None:
    """Why torch.compile cannot build here (e.g. no C++ compiler for Inductor's CPU kernels), or None; found
    once per process by compiling a one-line function."""
    if "why" not in _INDUCTOR:
        try:
            torch.compile(lambda v: v * 2 + 1)(torch.ones(3))
            _INDUCTOR["why"] = None
        except Exception as e:  # noqa: BLE001 -- any failure to build means: train eagerly
            _INDUCTOR["why"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return _INDUCTOR["why"]


def compiled(module: torch.nn.Module):
    """torch.compile(module) for the training forward passes (evaluation and probes use the eager module:
    Hessian probes need double backward); the eager module, with a one-line note, where Inductor cannot build."""
    why = inductor_problem()
    if why:
        print(f"note: compile=true, but torch.compile cannot build here ({why[:160]}); training eagerly",
              file=sys.stderr)
        return module
    return torch.compile(module)
