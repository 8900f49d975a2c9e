"""Class-aware SAM that splits the batch loss by class: ImbSAM (Zhou et al., ICCV 2023) and
Focal-SAM (Li et al., ICML 2025). CC-SAM perturbs the classifier inside the loss: see ``ccsam.py``."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import NO_ACCUMULATION, SampleLosses, any_over_ranks, check_nonnegative
from .sam import SAM


class ClassWeightedSAM(SAM):
    """SAM on a class-weighted share of the loss, a plain gradient on the rest. Class-aware.

    Each sample gets a weight a_i = a(y_i) in [0, 1]; one forward pass at w splits the batch loss
    L = sum_i l_i / norm into L_plain = sum (1 - a_i) l_i / norm and L_sharp = sum a_i l_i / norm:

        g_p = grad L_plain(w)                        (kept)
        g_s = grad L_sharp(w);  e = rho g_s / ||g_s||
        g   = grad L_sharp(w + e) + g_p              (second forward)
        base step with g at w

    Two forward and three backward passes per step (``closures_per_step = 2``). a = 0 everywhere
    reduces to the base optimizer, a = 1 everywhere to SAM. Subclasses define ``sample_weights``.
    """

    closures_per_step = 2
    ascent_at_w = False  # its first pass splits the batch by class
    class_aware = True
    refused = {"lpt": "splits the loss by class; it does not combine with LPT's dual sampling or key-query term: "
                      "use method=vpt", "accum": NO_ACCUMULATION,
               "local": "takes the update's plain-class gradient in the ascent pass at w, which optimizer.ascent=local "
                        "would leave un-averaged across processes; use optimizer.ascent=sync"}

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05, seed=None, **base_kwargs):
        super().__init__(params, base_optimizer, rho=rho, seed=seed, **base_kwargs)
        self._plain_grads: dict[torch.Tensor, torch.Tensor] = {}

    def sample_weights(self, targets: torch.Tensor) -> torch.Tensor:
        """a_i in [0, 1]: each sample's share that is flattened."""
        raise NotImplementedError

    def split(self, out: SampleLosses) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(L_plain, L_sharp, whether any sample has a > 0)."""
        a = self.sample_weights(out.targets).to(out.losses.dtype)
        return out.weighted(1 - a), out.weighted(a), any_over_ranks(bool((a > 0).any()), out.losses.device)

    sharp_weight = 1.0  # the flattened part's weight in the update (ImbSAM's official code: 2)

    def perturbation(self, closure):
        out = self.sample_losses(closure)
        plain, sharp, any_sharp = self.split(out)
        self.backward(plain, retain_graph=True)
        self._plain_grads = {p: p.grad.detach().clone() for _, p in self.with_grad()}
        self.zero_grad()
        ascent = {}
        if any_sharp:
            self.backward(self.weighted_sharp(sharp))
            ascent = self.normalised_ascent()
        return ascent, (plain + sharp).detach()  # the batch loss at w (unweighted)

    def perturbed_gradient(self, closure):
        _, sharp, any_sharp = self.split(self.sample_losses(closure))
        if any_sharp:
            self.backward(self.weighted_sharp(sharp))
        return sharp

    def weighted_sharp(self, sharp: torch.Tensor) -> torch.Tensor:
        if self.sharp_weight == 1:
            return sharp
        with torch.enable_grad():  # steps run under no_grad
            return sharp * self.sharp_weight

    @torch.no_grad()
    def finish_gradient(self) -> None:
        for p, g in self._plain_grads.items():
            if p.grad is None:
                p.grad = g
            else:
                p.grad.add_(g)
        self._plain_grads = {}


def _counts(name: str, class_counts: Sequence[int] | None) -> torch.Tensor:
    if class_counts is None:
        raise ValueError(f"{name} needs class_counts (training images per class) to weight the classes")
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if counts.ndim != 1 or len(counts) == 0 or bool((counts < 0).any()):
        raise ValueError(f"{name}: class_counts must be a non-empty list of counts >= 0, got {list(class_counts)}")
    return counts


class ImbSAM(ClassWeightedSAM):
    """Flatten only the tail classes' loss; the head classes get a plain gradient. Class-aware.

    a(y) = 1 if class y has fewer than ``tail_threshold`` training images (the official ``eta``,
    default 20), else 0; the update is ``ClassWeightedSAM``'s:

        g_h = grad L_head(w)                       (kept)
        g_t = grad L_tail(w);  e = rho g_t / ||g_t||
        g   = tail_weight * grad L_tail(w + e) + g_h   (second forward: the tail part only)

    with L_head, L_tail the head / tail samples' loss sums over the whole batch size. This transcribes
    cool-xuan/Imbalanced_SAM (``imbsam.py`` first/second/third_step with the ``forbackward`` of
    ``utils/trainval.py``): two forward passes and three backward passes per step
    (``closures_per_step = 2``). ``tail_weight`` = 2 is the authors' current code (both tail losses
    ``/ targets.size(0) * 2``, since commit 94a22ba, 2023-09-15); ``tail_weight=1`` is the earlier
    revision 7949cbc. The weight scales the ascent gradient too, which the normalisation removes.
    Differences, documented: the global norm adds 1e-12 (official 1e-16); a batch without tail
    samples takes no ascent (official: 0 / 1e-16 = 0, the same); the loss a step returns is the
    batch loss at w (the official returns head + 2 x tail at w + e).
    Every class counted as head (tail_threshold <= the smallest count) reduces to the base
    optimizer; rho = 0 too.
    """

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05,
                 class_counts: Sequence[int] | None = None, tail_threshold: int = 20, tail_weight: float = 2.0,
                 seed=None, **base_kwargs):
        counts = _counts("ImbSAM", class_counts)
        check_nonnegative("tail_threshold", tail_threshold)
        check_nonnegative("tail_weight", tail_weight)
        super().__init__(params, base_optimizer, rho, seed, **base_kwargs)
        self.sharp_weight = float(tail_weight)
        self.tail_classes = torch.nonzero(counts < tail_threshold).flatten()
        self.tail_threshold = tail_threshold

    def tail_mask(self, targets: torch.Tensor) -> torch.Tensor:
        return torch.isin(targets, self.tail_classes.to(targets.device))

    def sample_weights(self, targets):
        return self.tail_mask(targets).float()


class FocalSAM(ClassWeightedSAM):
    """Focal weighting of per-class sharpness (Li et al., ICML 2025, arXiv 2505.01660). Class-aware.

    a(c) = sharpness * (1 - n_c / N)^flat_gamma with n_c the training images of class c and N their
    sum: the rarer the class, the more of its loss is flattened. The update is ``ClassWeightedSAM``'s,

        g = grad sum_i a_i l_i(w + e) / norm + grad sum_i (1 - a_i) l_i(w) / norm,
        e = rho g_s / (||g_s|| + 1e-12),  g_s = grad sum_i a_i l_i(w) / norm,

    i.e. the objective (1 - a) L + a L_SAM class by class. Transcribed from scongl/Focal-SAM
    (``train_step.py`` ``focal_sam_step`` with ``focal_sam.py`` first/second/third_step): the
    coefficients, the 1e-12, the kept first gradient and the base step at w match; the official
    divides by the batch size, ltlab by the loss's normaliser (the same for CE and logit adjustment).
    The official ``adaptive`` option (ASAM-style) is not offered. Defaults are the authors' CLIP
    ViT-B/16 CIFAR-100-LT recipe (``scripts/cifar.sh``): rho 0.05, flat_gamma 5.5, sharpness 0.8.
    sharpness = 0 reduces to the base optimizer; sharpness = 1 with flat_gamma = 0 to SAM.
    """

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05,
                 class_counts: Sequence[int] | None = None, flat_gamma: float = 5.5, sharpness: float = 0.8,
                 seed=None, **base_kwargs):
        counts = _counts("FocalSAM", class_counts)
        check_nonnegative("flat_gamma", flat_gamma)
        if not 0 <= sharpness <= 1:
            raise ValueError(f"sharpness={sharpness}: must be in [0, 1] (0 = the base optimizer, 1 = all sharpness-aware)")
        super().__init__(params, base_optimizer, rho, seed, **base_kwargs)
        self.coefficients = (1 - counts / counts.sum()) ** flat_gamma * sharpness  # float64; cast per batch

    def sample_weights(self, targets):
        return self.coefficients.to(targets.device)[targets]
