"""ImbSAM: Imbalanced SAM (Zhou et al., ICCV 2023), class-aware: sharpness only for the tail classes."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import check_nonnegative
from .sam import SAM


class ImbSAM(SAM):
    """Flatten only the tail classes' loss; the head classes get a plain gradient. Class-aware.

    With T = {classes with fewer than ``tail_threshold`` training images} (the official ``eta``,
    default 20) and one forward pass at w split into L = L_head + L_tail (both divided by the
    batch's normaliser, so they add up to the batch loss):

        g_h = grad L_head(w)                       (kept)
        g_t = grad L_tail(w);  e = rho g_t / ||g_t||
        g   = grad L_tail(w + e) + g_h             (second forward: the tail part only)
        base step with g at w

    This transcribes cool-xuan/Imbalanced_SAM (``imbsam.py`` first/second/third_step with the
    ``forbackward`` of ``utils/trainval.py``): two forward passes and three backward passes per step
    (``closures_per_step = 2``). Differences, documented: the global norm adds 1e-12 (official 1e-16);
    a batch without tail samples takes no ascent (official: 0 / 1e-16 = 0, the same).
    Every class counted as head (tail_threshold <= the smallest count) reduces to the base
    optimizer; rho = 0 too.
    """

    closures_per_step = 2
    class_aware = True

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05,
                 class_counts: Sequence[int] | None = None, tail_threshold: int = 20, seed=None, **base_kwargs):
        check_nonnegative("rho", rho)
        if class_counts is None:
            raise ValueError("ImbSAM needs class_counts (training images per class) to find the tail classes")
        super(SAM, self).__init__(params, base_optimizer, dict(rho=rho), seed, **base_kwargs)
        counts = torch.as_tensor(list(class_counts))
        self.tail_classes = torch.nonzero(counts < tail_threshold).flatten()
        self.tail_threshold = tail_threshold
        self._head_grads: dict[torch.Tensor, torch.Tensor] = {}

    def tail_mask(self, targets: torch.Tensor) -> torch.Tensor:
        return torch.isin(targets, self.tail_classes.to(targets.device))

    def perturbation(self, closure):
        out = self.sample_losses(closure)
        tail = self.tail_mask(out.targets)
        head_loss, tail_loss = out.part(~tail), out.part(tail)
        self.backward(head_loss, retain_graph=True)
        self._head_grads = {p: p.grad.detach().clone() for _, p in self.with_grad()}
        self.zero_grad()
        if tail.any():
            self.backward(tail_loss)
            ascent = self.normalised_ascent()
        else:
            ascent = {}
        return ascent, (head_loss + tail_loss).detach()

    def perturbed_gradient(self, closure):
        out = self.sample_losses(closure)
        tail_loss = out.part(self.tail_mask(out.targets))
        if tail_loss.requires_grad:
            self.backward(tail_loss)
        return tail_loss

    @torch.no_grad()
    def finish_gradient(self) -> None:
        for p, g in self._head_grads.items():
            if p.grad is None:
                p.grad = g
            else:
                p.grad.add_(g)
        self._head_grads = {}
