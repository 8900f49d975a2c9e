"""RSAM: Random Sharpness-Aware Minimization (Liu et al., NeurIPS 2022).

Not to be confused with "RSAM-PT", the early name of GNM-PT (Li et al. 2024): in ltlab "rsam" is
Liu et al. and "gnm" is Li et al.
"""
from __future__ import annotations

import torch

from .base import check_nonnegative, check_positive
from .sam import SAM


class RSAM(SAM):
    """Random smoothing before the SAM ascent; two closure calls per step.

        d   ~ N(0, (sigma * ||w_row||)^2)  per element, filter-wise (rows along the last dimension)
        g~  = grad L(w + d)                 (first closure: gradient of the smoothed loss)
        e   = rho * g~ / ||g~||             (one global norm)
        update with grad L(w + e)           (second closure), base step at w

    Choices where paper and official (JAX) code differ, documented: we ascend along g~ alone (the
    code mixes 2 g~ + d) and keep sigma fixed (the code ramps the noise std from 5e-4 to 2.5e-3;
    change ``param_groups[i]["sigma"]`` from a schedule to reproduce that). The returned loss is
    the smoothed loss L(w + d). rho = 0 reduces to the base optimizer.
    """

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05, sigma: float = 0.01,
                 seed=None, **base_kwargs):
        check_nonnegative("rho", rho)
        check_positive("sigma", sigma)
        super(SAM, self).__init__(params, base_optimizer, dict(rho=rho, sigma=sigma), seed, **base_kwargs)

    def smoothing_noise(self) -> dict[torch.Tensor, torch.Tensor]:
        noise = {}
        for g, p in self.trainable():
            w = p.detach()
            row = torch.linalg.vector_norm(w, dim=-1, keepdim=True) if w.dim() > 1 else torch.linalg.vector_norm(w)
            z = torch.randn(p.shape, generator=self.generator(p.device), device=p.device, dtype=p.dtype)
            noise[p] = g["sigma"] * row * z
        return noise

    def perturbation(self, closure):
        loss = self.evaluate_at(closure, self.smoothing_noise())
        return self.normalised_ascent(), loss
