"""CC-SAM: Class-Conditional Sharpness-Aware Minimization (Zhou et al., CVPR 2023), as in the authors' code."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.func import functional_call

from .base import NO_ACCUMULATION, PerturbedOptimizer, check_nonnegative
from .class_aware import _counts


class CCSAM(PerturbedOptimizer):
    """A class-conditional perturbation of the classifier, inside the loss. Class-aware.

    Transcribed from zzpustc/CC-SAM ``train_cifar.py`` (``train``, stage 1) at commit ecc66b5, where the
    paper and the code differ the code is followed. ||theta|| is ONE norm over every classifier tensor
    (weight and bias together: ``utils/pytorch.py`` ``grad_norm``, which despite its name is the norm of
    the parameters, + 1e-12), taken once per step at w; the earlier revision 9d5ba5e took each tensor's
    own norm, which differs when the classifier has a bias. With f the features (graph attached), theta the classifier's
    tensors (P numbers in all), l_i the per-sample losses at w and n_c the training images of class c:

        for every class c in the batch:
            g_c   = grad_theta mean_{i: y_i = c} l_i                  (per tensor, one backward each)
            for every tensor t of theta:
                d_t = rho * sqrt(||theta|| + 1e-12) / sqrt(||g_c,t||) / sqrt(2) / (n_c - 1)^(1/4) * P^(1/4)
                      * g_c,t / ||g_c,t||
            l~_i  = loss(classifier(f_i; theta + d), y_i) for the samples of class c
        L = (1 - flat_ratio) * sum_i l_i / norm + flat_ratio * sum_i l~_i / norm;  one backward; base step

    The radius shrinks with the class's size as n_c^(-1/4) and grows with sqrt(||theta|| / ||g||): tail
    classes get larger perturbations. ``rho`` is the official ``noise_ratio`` (CIFAR configs: 1e-6,
    with flat_ratio 0.5). One forward of the backbone and one backward per step
    (``closures_per_step = 1``); the per-class work touches only the classifier.

    Differences from the official code, documented:
    - only stage 1 is implemented; the official second stage (classifier re-training with a
      class-balanced sampler and a feature perturbation) is a separate decoupled-training recipe;
    - mixup (on in the official CIFAR configs) is not applied; both terms use the run's loss
      (the official uses CE for both), which is the same when ``loss.name = ce``;
    - a class with one training image makes the official radius divide by zero; ltlab uses
      max(n_c - 1, 1); a zero per-class gradient gives no perturbation (official: NaN).
    The classifier is the closure's ``SampleLosses.head`` with its input ``features``; its trainable
    tensors must be among the optimizer's parameters. rho = 0 or flat_ratio = 0 reduces to the base
    optimizer.
    """

    closures_per_step = 1
    class_aware = True
    needs_features = True
    refused = {"lpt": "splits the loss by class; it does not combine with LPT's dual sampling or key-query term: "
                      "use method=vpt", "accum": NO_ACCUMULATION,
               "ddp": "takes one classifier gradient per class over the samples of that class in the batch; under DDP "
                      "each process would see only its share of each class, and the per-class gradients are not "
                      "averaged across processes (with counts), so the step would not be the big-batch step; run "
                      "it on one process"}

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 1e-6,
                 class_counts: Sequence[int] | None = None, flat_ratio: float = 0.5, seed=None, **base_kwargs):
        counts = _counts("CCSAM", class_counts)
        check_nonnegative("rho", rho)
        if not 0 <= flat_ratio <= 1:
            raise ValueError(f"flat_ratio={flat_ratio}: must be in [0, 1] (0 = the base optimizer)")
        super().__init__(params, base_optimizer, dict(rho=rho, flat_ratio=flat_ratio), seed, **base_kwargs)
        self.class_counts = counts

    def perturbation(self, closure):
        return {}, None  # the perturbation acts on the classifier inside the loss (perturbed_gradient)

    def perturbed_gradient(self, closure):
        out = self.sample_losses(closure)
        if out.features is None or out.head is None or out.loss_of is None:
            raise TypeError("CCSAM perturbs the classifier: the closure's SampleLosses must carry features, head and "
                            "loss_of (see ltlab.optim.base)")
        rho, flat = self.param_groups[0]["rho"], self.param_groups[0]["flat_ratio"]
        names, tensors = zip(*[(n, t) for n, t in out.head.named_parameters() if t.requires_grad])
        size = sum(t.numel() for t in tensors)
        theta_norm = self.global_norm([t.detach() for t in tensors]) + 1e-12  # one norm over all tensors
        perturbed = torch.zeros_like(out.losses)
        for c in torch.unique(out.targets):
            idx = out.targets == c
            grads = torch.autograd.grad(out.losses[idx].mean(), tensors, retain_graph=True, allow_unused=True)
            n_c = max(float(self.class_counts[int(c)]) - 1.0, 1.0)
            scale = rho / math.sqrt(2) / n_c ** 0.25 * size ** 0.25
            moved = {}
            for name, t, g in zip(names, tensors, grads):
                norm = g.norm() if g is not None else None
                if norm is None or norm == 0 or rho == 0:
                    moved[name] = t
                    continue
                moved[name] = t + (scale * theta_norm.sqrt() / norm.sqrt()) * (g / norm)
            logits = functional_call(out.head, moved, (out.features[idx],))
            perturbed[idx] = out.loss_of(logits, out.targets[idx])
        at_w = out.losses.sum() / out.norm
        loss = (1 - flat) * at_w + flat * perturbed.sum() / out.norm
        self.backward(loss)
        return at_w.detach()
