"""ASAM: Adaptive SAM (Kwon et al., ICML 2021)."""
from __future__ import annotations

import torch

from .base import check_nonnegative
from .sam import SAM


class ASAM(SAM):
    """e = rho * T_w^2 g / ||T_w g||, T_w = |w| + eta (element-wise); official eta = 0.01.

    Scale-invariant sharpness; typical rho is ~10x SAM's (0.5-2.0). rho = 0 reduces to the base optimizer.
    """

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.5, eta: float = 0.01, seed=None,
                 **base_kwargs):
        check_nonnegative("rho", rho)
        check_nonnegative("eta", eta)
        super(SAM, self).__init__(params, base_optimizer, dict(rho=rho, eta=eta), seed, **base_kwargs)

    def scaled_grads(self):
        out = []
        for g, p in self.with_grad():
            t = p.detach().abs() + g["eta"]
            out.append((g, p, t * p.grad, t * t * p.grad))
        return out
