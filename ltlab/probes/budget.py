"""The probe budgets, named once: what `ltlab probe`, `compare --probe`, the study and the notebooks spend on each
probe unless told otherwise."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeBudget:
    images: int = 256  # training images (evaluation transforms, a seeded subset) per probe
    batch_size: int = 256  # images per streamed batch
    eigenvalues: int = 5  # top-k Lanczos eigenvalues of `probe --what eig`
    trace_hvps: int = 99  # Hutch++ products of `probe --what trace`
    scalar_trace_hvps: int = 60  # Hutch++ products of the flatness columns (compare --probe, the study)
    gaussian_sigma: float = 0.01  # per-element std of the average-case probe (GNM's noise is ~0.0017 per element)
    gaussian_samples: int = 20  # noise draws of the Gaussian sharpness
    per_class_images: int = 32  # at most this many images per class for per-class probes
    surface_steps: int = 21  # grid points per axis of a loss surface


BUDGET = ProbeBudget()
