"""ASAM: Adaptive SAM (Kwon et al., ICML 2021)."""
from __future__ import annotations

from collections.abc import Iterable

import torch

from .base import check_nonnegative
from .sam import SAM

ADAPTIVE_ON = ("all", "weights")


class ASAM(SAM):
    """e = rho * T_w^2 g / ||T_w g||, T_w = |w| + eta (element-wise); two closure calls per step.

    Which tensors get T_w is an option, because the two references disagree:

    - ``adaptive_on="weights"`` reproduces the authors' code (SamsungLabs/ASAM, ``asam.py``): T_w =
      |w| + eta only for parameters whose name contains "weight"; every other tensor (biases, VPT
      prompts, LPT keys) gets the plain SAM direction g, in the same global norm. Pass the weight
      tensors as ``weight_params`` (``create_optimizer`` does it from ``named_parameters``).
    - ``adaptive_on="all"`` (ltlab's default) scales every tensor, prompts included. With ``eta=0``
      it is the widely used clean reference (davda54/sam with ``adaptive=True``: T_w = |w| on every
      parameter, no eta).

    Why it matters for prompt tuning: prompt values are ~0.02, so "all" shrinks the prompts'
    perturbation by ~(0.02 + eta) relative to "weights", about 30x at eta = 0.01.
    Typical rho is ~10x SAM's (0.5-2.0). rho = 0 reduces to the base optimizer.
    """

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.5, eta: float = 0.01, seed=None,
                 adaptive_on: str = "all", weight_params: Iterable[torch.Tensor] | None = None, **base_kwargs):
        check_nonnegative("eta", eta)
        if adaptive_on not in ADAPTIVE_ON:
            raise ValueError(f"adaptive_on={adaptive_on!r}: use 'all' (every tensor) or 'weights' (Kwon et al.'s "
                             "code: only tensors named *weight*)")
        if adaptive_on == "weights" and weight_params is None:
            raise ValueError("adaptive_on='weights' needs weight_params: the tensors whose name contains 'weight'")
        super().__init__(params, base_optimizer, rho=rho, seed=seed, defaults=dict(eta=eta), **base_kwargs)
        self.adaptive_on = adaptive_on
        self._weights = {id(p) for p in weight_params} if weight_params is not None else set()

    def adaptive(self, p: torch.Tensor) -> bool:
        return self.adaptive_on == "all" or id(p) in self._weights

    def scaled_grads(self):
        out = []
        for g, p in self.with_grad():
            if self.adaptive(p):
                t = p.detach().abs() + g["eta"]
                out.append((g, p, t * p.grad, t * t * p.grad))
            else:
                out.append((g, p, p.grad, p.grad))
        return out
