"""GNM: Gaussian Neighborhood Minimization (Li et al., NeurIPS 2024; GNM-PT)."""
from __future__ import annotations

import torch

from ..values import check_positive
from .base import PerturbedOptimizer, check_nonnegative


class GNM(PerturbedOptimizer):
    """Minimise E_e[L(w + e)] with data- and gradient-independent noise; ONE closure call per step.

        e_i = rho * clamp(N(0, sigma^2), -truncate, truncate)   per trainable element (own generator)
        w  <- w - lr * (grad L(w + e) + weight_decay * w)        (base step at the restored w)

    Defaults reproduce the official code: clamp(N(0, 1/3), -1, 1) * rho(0.05) * dis_mul(0.1), i.e.
    rho = 0.005, sigma = 1/3, truncate = 1 (per-element bound 0.005, std ~0.0017).
    rho = 0 reduces to the base optimizer, bit for bit.

    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> opt = GNM([w], torch.optim.SGD, lr=0.1, seed=0)
    >>> def closure():
    ...     opt.zero_grad(); loss = ((w - 1) ** 2).sum(); loss.backward(); return loss
    >>> _ = opt.step(closure); bool((w - 0.2).abs().max() < 0.002)
    True
    """

    stochastic = True
    closures_per_step = 1

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.005, sigma: float = 1 / 3,
                 truncate: float = 1.0, seed: int | None = None, halve_at_drw: bool = False,
                 epoch0_doubling: bool = False, **base_kwargs):
        check_nonnegative("rho", rho)
        check_positive("sigma", sigma)
        check_positive("truncate", truncate)
        super().__init__(params, base_optimizer, dict(rho=rho, sigma=sigma, truncate=truncate), seed, **base_kwargs)
        self.halve_at_drw, self.epoch0_doubling = bool(halve_at_drw), bool(epoch0_doubling)

    def epoch_factor(self, epoch: int, reweight_epoch: int | None) -> float:
        """The official GNM-PT schedule: noise x 0.5 ** ((epoch - 1) // reweight_epoch), 0-based epochs.

        That formula halves the noise once DRW starts (``halve_at_drw``) and, as an artefact of floor
        division, doubles it in epoch 0 (``epoch0_doubling``, off by default); each part is a switch.
        """
        f = 1.0
        if self.halve_at_drw and reweight_epoch is not None and epoch >= reweight_epoch:
            f *= 0.5
        if self.epoch0_doubling and epoch == 0:
            f *= 2.0
        return f

    def perturbation(self, closure):
        noise = {}
        for g, p in self.trainable():
            if g["rho"] == 0:
                continue
            z = torch.randn(p.shape, generator=self.generator(p.device), device=p.device, dtype=p.dtype)
            noise[p] = g["rho"] * (z * g["sigma"]).clamp_(-g["truncate"], g["truncate"])
        return noise, None
