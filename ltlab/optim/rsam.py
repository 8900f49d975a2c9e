"""RSAM: Random Sharpness-Aware Minimization (Liu et al., NeurIPS 2022).

Not to be confused with "RSAM-PT", the early name of GNM-PT (Li et al. 2024): in ltlab "rsam" is
Liu et al. and "gnm" is Li et al.
"""
from __future__ import annotations

import torch

from .base import check_nonnegative, check_positive
from .sam import SAM


MIXES = ("gradient", "official")


class RSAM(SAM):
    """Random smoothing before the SAM ascent; two closure calls per step.

        d   ~ N(0, (sigma * ||w_row||)^2)  per element, filter-wise (rows along the last dimension)
        g~  = grad L(w + d)                 (first closure: gradient of the smoothed loss)
        a   = g~                            (mix="gradient", the paper's rule; ltlab's default)
            = 2 g~ + d                      (mix="official", the authors' JAX code)
        e   = rho * a / ||a||               (one global norm)
        update with grad L(w + e)           (second closure), base step at w

    The authors' code (vit_jax/train.py) differs from the paper in four places; each is an option:
    the 2 g~ + d mix (``mix``); rho following the lr between rho_min and rho_max (``rho_schedule="lr"``,
    ``rho_min``: the base class's schedule) and the noise std ramped from 5e-4 to 2.5e-3 over
    training (``sigma_end``: this class's `schedule`, linear in the step); global gradient clipping
    at 1.0 (``optimizer.clip_grad_norm``, an option of every optimizer).
    The preset ``rsam_official`` switches all of them on.
    Filter norm: the official kernel norm is over its last axis; ltlab takes the norm over the last
    dimension of every tensor, i.e. per output unit of a Linear weight (out, in) and per prompt
    token for the (layers, tokens, dim) prompt tensor, which has no official counterpart; 1-D
    tensors use their whole norm. The returned loss is the smoothed loss L(w + d).
    rho = 0 reduces to the base optimizer.
    """

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05, sigma: float = 0.01,
                 seed=None, mix: str = "gradient", sigma_end: float | None = None, **base_kwargs):
        check_nonnegative("rho", rho)
        check_positive("sigma", sigma)
        if mix not in MIXES:
            raise ValueError(f"mix={mix!r}: use 'gradient' (the paper) or 'official' (2 g~ + d, the authors' code)")
        if sigma_end is not None:
            check_positive("sigma_end", sigma_end)
        super(SAM, self).__init__(params, base_optimizer, dict(rho=rho, sigma=sigma), seed, **base_kwargs)
        self.mix, self.sigma_end = mix, sigma_end
        for g in self.param_groups:
            g.setdefault("initial_sigma", g["sigma"])

    def schedule(self, step, total_steps, epoch, reweight_epoch=None):
        """The base schedule (rho), then with ``sigma_end`` the noise scale ramps linearly from sigma to
        sigma_end over the run (the official code's ramp, documented as linear here)."""
        super().schedule(step, total_steps, epoch, reweight_epoch)
        if self.sigma_end is not None:
            t = step / max(1, total_steps - 1)
            for g in self.param_groups:
                g["sigma"] = g["initial_sigma"] + (self.sigma_end - g["initial_sigma"]) * min(1.0, t)

    def smoothing_noise(self) -> dict[torch.Tensor, torch.Tensor]:
        noise = {}
        for g, p in self.trainable():
            w = p.detach()
            row = torch.linalg.vector_norm(w, dim=-1, keepdim=True) if w.dim() > 1 else torch.linalg.vector_norm(w)
            z = torch.randn(p.shape, generator=self.generator(p.device), device=p.device, dtype=p.dtype)
            noise[p] = g["sigma"] * row * z
        return noise

    def perturbation(self, closure):
        noise = self.smoothing_noise()
        loss = self.evaluate_at(closure, noise)
        if self.mix == "official":
            with torch.no_grad():
                for p, d in noise.items():
                    if p.grad is not None:
                        p.grad.mul_(2).add_(d)
        return self.normalised_ascent(), loss
