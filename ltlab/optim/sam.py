"""SAM: Sharpness-Aware Minimization (Foret et al., ICLR 2021)."""
from __future__ import annotations

import torch

from .base import PerturbedOptimizer, check_nonnegative


class SAM(PerturbedOptimizer):
    """e = rho * g / ||g||  (one global L2 norm over every group), gradient at w + e, base step at w.

    Two closure calls per step. rho = 0 reduces to the base optimizer (at twice the cost).

    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = SAM([w], torch.optim.SGD, rho=0.05, lr=0.1)
    >>> def closure():
    ...     opt.zero_grad(); loss = (w ** 2).sum(); loss.backward(); return loss
    >>> float(opt.step(closure))
    5.0
    """

    closures_per_step = 2
    ascent_at_w = True

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05, seed=None,
                 defaults: dict | None = None, **base_kwargs):
        """`defaults`: a subclass's own per-group hyper-parameters beside rho (ASAM's eta, RSAM's sigma)."""
        check_nonnegative("rho", rho)
        super().__init__(params, base_optimizer, {"rho": rho, **(defaults or {})}, seed, **base_kwargs)

    def perturbation(self, closure):
        loss = closure()
        return self.normalised_ascent(), loss

    def scaled_grads(self) -> list[tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(group, p, T_w g, T_w^2 g): the identity for SAM."""
        return [(g, p, p.grad, p.grad) for g, p in self.with_grad()]

    def normalised_ascent(self) -> dict[torch.Tensor, torch.Tensor]:
        items = self.scaled_grads()
        norm = self.global_norm([tg for _, _, tg, _ in items])
        if not torch.isfinite(norm) or norm == 0:  # fp16 overflow or a zero gradient: no ascent
            return {}
        return {p: (t2g * (g["rho"] / (norm.to(p.device) + 1e-12))).to(p.dtype) for g, p, _, t2g in items}
