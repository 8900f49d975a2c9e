"""Probe results: plain dataclasses that save to / load from one .npz file (no pickle)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_REGISTRY: dict[str, type] = {}


@dataclass
class ProbeResult:
    """Base: `save(path)` / `ProbeResult.load(path)`; arrays go in as arrays, the rest as JSON."""

    world_size = 1  # how many ranks computed it (torch.distributed); saved beside the fields, not a field

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        _REGISTRY[cls.__name__] = cls

    def save(self, path: str | Path, provenance: dict | None = None) -> Path:
        """Write path(.npz); `provenance` (what was probed: images, checkpoint, epoch) is kept beside the result
        (`ProbeResult.provenance_of(path)`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from ..utils import dist_rank_world

        arrays, meta = {}, {"__class__": type(self).__name__, "__world_size__": max(self.world_size, dist_rank_world()[1]),
                            "__provenance__": provenance or {}}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                arrays[f.name] = v
            else:
                meta[f.name] = v
        np.savez(path, __meta__=np.array(json.dumps(meta, default=float)), **arrays)
        return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")

    @staticmethod
    def provenance_of(path: str | Path) -> dict:
        """What a saved result probed ({} for results saved before this was recorded)."""
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["__meta__"])).get("__provenance__", {})

    @staticmethod
    def load(path: str | Path) -> "ProbeResult":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
        cls = _REGISTRY[meta.pop("__class__")]
        world = int(meta.pop("__world_size__", 1))
        meta.pop("__provenance__", None)
        result = cls(**meta, **arrays)
        result.world_size = world
        return result


@dataclass
class EigenResult(ProbeResult):
    """Extreme Hessian eigenpairs. residuals = ||Hv - lambda v|| / |lambda| per eigenvalue."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray  # (dim, k), flattened over the probed parameters
    residuals: np.ndarray
    converged: bool
    hvps: int
    seconds: float
    method: str = "lanczos"
    which: str = "largest"
    history: list = field(default_factory=list)  # [hvps, lambda_max estimate] per iteration


@dataclass
class TraceResult(ProbeResult):
    estimate: float
    stderr: float
    hvps: int
    seconds: float
    method: str = "hutch++"
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class SpectralDensity(ProbeResult):
    """SLQ: per run Ritz nodes and weights (each run's weights sum to 1), and a smoothed density."""

    nodes: np.ndarray  # (runs, steps)
    weights: np.ndarray  # (runs, steps)
    grid: np.ndarray
    density: np.ndarray
    hvps: int
    seconds: float
    bandwidth: float = 0.0


@dataclass
class Surface1D(ProbeResult):
    x: np.ndarray
    loss: np.ndarray  # (len(x),)
    accuracy: np.ndarray
    seconds: float = 0.0
    label: str = ""


@dataclass
class Surface2D(ProbeResult):
    x: np.ndarray
    y: np.ndarray
    loss: np.ndarray  # (len(y), len(x))
    accuracy: np.ndarray
    seconds: float = 0.0
    label: str = ""


@dataclass
class EigenRatio1D(ProbeResult):
    """lambda_min / lambda_max of the Hessian at points along a 1-D slice (GNM paper's rebuttal figure)."""

    x: np.ndarray
    lambda_max: np.ndarray
    lambda_min: np.ndarray
    ratio: np.ndarray
    hvps: int = 0
    seconds: float = 0.0
    label: str = ""


@dataclass
class SharpnessResult(ProbeResult):
    estimate: float
    stderr: float
    samples: np.ndarray
    base_loss: float
    seconds: float
    method: str = "gaussian"
    radius: float = 0.0


@dataclass
class TrajectoryPCA(ProbeResult):
    """PCA of (w_i - w_final) over checkpoints: coordinates in the top-2 directions."""

    coords: np.ndarray  # (n, 2)
    explained_variance: np.ndarray  # (2,) ratios
    directions: np.ndarray  # (2, dim)


@dataclass
class PerClassResult(ProbeResult):
    """One probe per class: value (and stderr) against class size and many/medium/few group."""

    classes: list
    counts: list
    groups: list
    values: list
    stderrs: list
    probe: str = ""
    images_per_class: int = 0  # the same for every class when measured with equal=True (like with like)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(cls=c, count=n, group=g, value=v, stderr=s)
                for c, n, g, v, s in zip(self.classes, self.counts, self.groups, self.values, self.stderrs)]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    def group_means(self) -> dict[str, float]:
        out = {}
        for g in ("many", "medium", "few"):
            vals = [v for v, gg in zip(self.values, self.groups) if gg == g]
            out[g] = float(np.mean(vals)) if vals else float("nan")
        return out
