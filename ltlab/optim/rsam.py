"""RSAM: Random Sharpness-Aware Minimization (Liu et al., NeurIPS 2022).

Not to be confused with "RSAM-PT", the early name of GNM-PT (Li et al. 2024): in ltlab "rsam" is
Liu et al. and "gnm" is Li et al.
"""
from __future__ import annotations

import math

import torch

from ..values import check_positive
from .sam import SAM


MIXES = ("gradient", "official")
SIGMA_SCHEDULES = ("linear", "cosine_official")


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

    ascent_at_w = False  # its first pass is at the smoothed point w + d
    stochastic = True

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05, sigma: float = 0.01,
                 seed=None, mix: str = "gradient", sigma_end: float | None = None, sigma_schedule: str = "linear",
                 rho_phase1_frac: float = 0.0, **base_kwargs):
        check_positive("sigma", sigma)
        if mix not in MIXES:
            raise ValueError(f"mix={mix!r}: use 'gradient' (the paper) or 'official' (2 g~ + d, the authors' code)")
        if sigma_end is not None:
            check_positive("sigma_end", sigma_end)
        if sigma_schedule not in SIGMA_SCHEDULES:
            raise ValueError(f"sigma_schedule={sigma_schedule!r}: use 'linear' or 'cosine_official' (the authors' "
                             "CosineInc)")
        if not 0 <= rho_phase1_frac <= 1:
            raise ValueError(f"rho_phase1_frac={rho_phase1_frac}: must be in [0, 1] (official 10000 / 93834 = 0.1066)")
        super().__init__(params, base_optimizer, rho=rho, seed=seed, defaults=dict(sigma=sigma), **base_kwargs)
        if rho_phase1_frac and self.rho_schedule != "lr":
            raise ValueError("rho_phase1_frac needs rho_schedule='lr' (it is the first phase of the lr-following rho)")
        self.mix, self.sigma_end = mix, sigma_end
        self.sigma_schedule, self.rho_phase1_frac = sigma_schedule, float(rho_phase1_frac)
        for g in self.param_groups:
            g.setdefault("initial_sigma", g["sigma"])

    def schedule(self, step, total_steps, epoch, reweight_epoch=None):
        """The base schedule (rho; with ``rho_schedule="lr"``: rho_min + (rho - rho_min) * lr / lr_0), then RSAM's own:

        - ``rho_phase1_frac`` > 0: the official code's first phase (vit_jax/train.py lines 146-154, ``t < 10000``
          of 93834 steps): rho = rho_max * lr / lr_max while the 1-based step t < frac * total_steps, then the
          lr-following rule above (its ``w2`` with lr_min = 0, where ltlab's cosine schedule ends);
        - with ``sigma_end``, the noise scale goes from sigma to sigma_end over the run: ``linear`` in the
          0-based step (ltlab's default), or ``cosine_official``, the authors' ``CosineInc`` (lines 45-55,
          96-97): sigma * ((1 - cos(pi t / T)) / 2 * (sigma_end / sigma - 1) + 1), t the 1-based step, T the
          run's steps (official: 5e-4 -> 2.5e-3 over 93834 steps, inc = 4).
        """
        super().schedule(step, total_steps, epoch, reweight_epoch)
        if self.rho_phase1_frac and step + 1 < self.rho_phase1_frac * total_steps:
            factor = self.epoch_factor(epoch, reweight_epoch)
            for g in self.param_groups:
                frac = g["lr"] / g["initial_lr"] if g.get("initial_lr") else 1.0
                g["rho"] = g["initial_rho"] * factor * frac
        if self.sigma_end is None:
            return
        for g in self.param_groups:
            s0 = g["initial_sigma"]
            if self.sigma_schedule == "linear":
                g["sigma"] = s0 + (self.sigma_end - s0) * min(1.0, step / max(1, total_steps - 1))
            else:
                scale = -math.cos((step + 1) * math.pi / total_steps) * 0.5 + 0.5
                g["sigma"] = s0 * (scale * (self.sigma_end / s0 - 1) + 1)

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
