"""Flatness probes: Hessian spectra, loss landscapes, sharpness, per-class curvature."""
from .hessian import eigenvector_direction, hessian_trace, lanczos, spectral_density, top_eigenvalues
from .hvp import HessianOperator, hessian_operator, probe_mode, select_params
from .landscape import (centred_grid, hessian_ratio_along, interpolate, pca_directions, random_direction, surface_1d,
                        surface_2d, trajectory_pca)
from .per_class import per_class
from .results import (EigenRatio1D, EigenResult, PerClassResult, ProbeResult, SharpnessResult, SpectralDensity,
                      Surface1D, Surface2D, TraceResult, TrajectoryPCA)
from .sharpness import gaussian_sharpness, worst_case_sharpness

__all__ = [
    "top_eigenvalues", "eigenvector_direction", "hessian_trace", "spectral_density", "lanczos", "HessianOperator",
    "hessian_operator", "probe_mode", "select_params", "surface_1d", "surface_2d", "interpolate", "trajectory_pca", "pca_directions",
    "hessian_ratio_along", "random_direction", "centred_grid", "gaussian_sharpness", "worst_case_sharpness",
    "per_class", "ProbeResult", "EigenResult", "TraceResult", "SpectralDensity", "Surface1D", "Surface2D",
    "EigenRatio1D", "SharpnessResult", "TrajectoryPCA", "PerClassResult",
]
