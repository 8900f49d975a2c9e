"""What one training step minimises and which images it sees: the hook through which the trainer runs LPT's
phase 2 without knowing LPT.

`Objective`: one instance-balanced batch per step (a permutation of the training set per epoch), the loss of
its logits, minus the key-query similarity term where the model has a group-prompt pool.
`DualSampling`: LPT phase 2 as DongSky/LPT `phase2_test/train_dual_dualloss.py` at 6a4c7e0 trains it (lines
119-122 and 139-148): each step a class-balanced batch and a fresh instance-balanced batch of batch_size images
each (one forward over both, class-balanced first), and

    loss = L_cb(cb) - k * sim_cb + max(0, w0 * (E - e) / E) * (L_ibs(ibs) - k * sim_ibs)

with e the 0-based epoch, E the epochs, w0 = dual_ibs_weight (0.5), k = lpt_key_weight (0.5), sim the batch mean
of each image's summed top-k key-query cosine (the authors' reduced_sim), L_cb / L_ibs the loss with its own
focusing (`loss_from_config(..., part="ibs")`).
"""
from __future__ import annotations

import math

import torch

from ..config import ExperimentConfig
from ..data.samplers import class_balanced_indices


class Objective:
    def __init__(self, cfg: ExperimentConfig, model: torch.nn.Module, loss_fn: torch.nn.Module):
        self.cfg, self.model, self.loss_fn = cfg, model, loss_fn

    def key_term(self, part: slice = slice(None)) -> torch.Tensor | float:
        """lpt_key_weight x the batch mean of the matched keys' similarity (0 without a group-prompt pool)."""
        sim = getattr(self.model, "last_key_similarity", None)
        if getattr(self.model, "pool_size", 0) <= 0 or sim is None:
            return 0.0
        return self.cfg.lpt_key_weight * sim[part].mean()

    def loss(self, logits: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        return self.loss_fn(logits, y) - self.key_term()

    def batches(self, targets: list[int], batch_size: int, g: torch.Generator) -> list[list[int]]:
        return [b.tolist() for b in torch.randperm(len(targets), generator=g).split(batch_size)]


class DualSampling(Objective):
    def __init__(self, cfg: ExperimentConfig, model: torch.nn.Module, loss_fn: torch.nn.Module,
                 loss_ibs: torch.nn.Module):
        super().__init__(cfg, model, loss_fn)
        self.loss_ibs = loss_ibs

    def weight(self, epoch: int) -> float:
        """The instance-balanced batch's weight in (0-based) epoch `epoch`."""
        return max(0.0, self.cfg.dual_ibs_weight * (self.cfg.epochs - epoch) / self.cfg.epochs)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        self.loss_ibs.train(self.loss_fn.training)  # noise in training mode, DRW by epoch, as the main loss
        self.loss_ibs.set_epoch(epoch)
        h = len(y) // 2  # class-balanced first, as the authors' loss reads them
        cb = self.loss_fn(logits[:h], y[:h]) - self.key_term(slice(None, h))
        ibs = self.loss_ibs(logits[h:], y[h:]) - self.key_term(slice(h, None))
        return cb + self.weight(epoch) * ibs

    def batches(self, targets: list[int], batch_size: int, g: torch.Generator) -> list[list[int]]:
        """ceil(n / batch_size) steps, each a class-balanced batch then the first batch_size images of a fresh
        permutation (the authors' `next(iter(train_loader_ibs))`: a new shuffle every step)."""
        n = len(targets)
        return [class_balanced_indices(targets, batch_size, g)
                + torch.randperm(n, generator=g)[:batch_size].tolist() for _ in range(math.ceil(n / batch_size))]


def make_objective(cfg: ExperimentConfig, model: torch.nn.Module, loss_fn: torch.nn.Module,
                   class_counts: list[int], device: torch.device) -> Objective:
    if not cfg.dual_sampling:
        return Objective(cfg, model, loss_fn)
    from ..losses import loss_from_config

    return DualSampling(cfg, model, loss_fn, loss_from_config(cfg, class_counts, part="ibs").to(device))
