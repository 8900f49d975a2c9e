"""Long-tailed losses with deferred re-weighting (DRW), registered by name.

Every loss takes logits (B, C) and targets (B,) and holds the training class counts n_c.
``set_epoch(e)`` switches the class-balanced weights on once ``e >= drw_epoch`` (Cao et al. 2019):
    w_c = (1 - beta) / (1 - beta ** n_c),  normalised to sum to C          (Cui et al. 2019)

Margins of LDAM and GCL are defined on cosines; ``scale`` is the cosine head's s (logits = s cos),
so a margin m becomes s * m in logit units.

>>> loss = build_loss("balanced_softmax", [10, 1])
>>> round(loss(torch.zeros(1, 2), torch.tensor([1])).item(), 4)  # CE([log 10, log 1], 1)
2.3979
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError


def class_balanced_weights(counts: Sequence[int], beta: float = 0.9999) -> torch.Tensor:
    """Effective-number weights (1 - beta) / (1 - beta^n_c), normalised to sum to C."""
    n = torch.as_tensor(counts, dtype=torch.float64).clamp_min(1)
    w = (1.0 - beta) / (1.0 - torch.pow(beta, n))
    return (w / w.sum() * len(n)).float()


class LongTailLoss(nn.Module):
    """Base: class counts, optional DRW weights, and the weighted cross-entropy all losses end in."""

    def __init__(self, counts: Sequence[int], drw_epoch: int | None = None, beta: float = 0.9999):
        super().__init__()
        self.register_buffer("counts", torch.as_tensor(counts, dtype=torch.float32))
        self.register_buffer("cb_weights", class_balanced_weights(counts, beta))
        self.drw_epoch = drw_epoch
        self.weighted = False

    def set_epoch(self, epoch: int) -> None:
        self.weighted = self.drw_epoch is not None and epoch >= self.drw_epoch

    def ce(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (optionally class-balanced) cross-entropy and its normaliser."""
        weight = self.cb_weights.to(logits.dtype) if self.weighted else None
        per = F.cross_entropy(logits, target, weight=weight, reduction="none")
        return per, self.normaliser(target, logits.dtype)

    def normaliser(self, target: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The denominator of the batch mean for these targets: the DRW weights' sum, else the count. It needs
        no logits, so gradient accumulation divides every micro-batch by the whole step's normaliser."""
        if self.weighted:
            return self.cb_weights.to(dtype)[target].sum()
        return torch.tensor(float(len(target)), dtype=dtype, device=target.device)

    def sample_losses(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-sample losses, normaliser) with forward(logits, target) == losses.sum() / normaliser.

        Class-aware optimizers (ImbSAM, CC-SAM, Focal-SAM) split or weight the per-sample terms.
        """
        return self.ce(logits, target)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per, norm = self.sample_losses(logits, target)
        return per.sum() / norm


class CrossEntropy(LongTailLoss):
    """Plain (optionally DRW-weighted) cross-entropy."""


class LDAM(LongTailLoss):
    """LDAM (Cao et al. 2019): target logit minus s * m_y, m_c = max_m * n_c^(-1/4) / max_c n_c^(-1/4)."""

    def __init__(self, counts, drw_epoch=None, beta=0.9999, max_m: float = 0.5, scale: float = 30.0):
        super().__init__(counts, drw_epoch, beta)
        m = self.counts.pow(-0.25)
        self.register_buffer("margins", m * (max_m / m.max()))
        self.scale = scale

    def sample_losses(self, logits, target):
        shift = F.one_hot(target, logits.shape[1]).to(logits.dtype) * (self.scale * self.margins[target])[:, None]
        return self.ce(logits - shift, target)


class GCL(LongTailLoss):
    """Gaussian-clouded logit adjustment (Li et al., CVPR 2022), the loss of GNM-PT.

    On cosines z: m_c = log n_max - log n_c; during training each logit gets a cloud
        z_j <- z_j - noise_mul * |d_j| * m_j / max(m),  d_j ~ N(0, 1/9) clamped to [-1, 1],
    the target logit loses the margin m, and the loss is CE(s * z). Noise is off in eval mode.
    ``gamma`` > 0 adds a focal factor (1 - p)^gamma on the per-sample loss (LPT's asymmetric GCL).
    """

    def __init__(self, counts, drw_epoch=None, beta=0.9999, m: float = 0.1, noise_mul: float = 1.0,
                 scale: float = 25.0, gamma: float = 0.0):
        super().__init__(counts, drw_epoch, beta)
        logn = self.counts.log()
        self.register_buffer("cloud", logn.max() - logn)
        self.m, self.noise_mul, self.scale, self.gamma = m, noise_mul, scale, gamma

    def sample_losses(self, logits, target):
        z = logits
        if self.training and self.noise_mul > 0 and float(self.cloud.max()) > 0:
            d = (torch.randn_like(z) / 3.0).clamp(-1, 1)
            z = z - self.scale * self.noise_mul * d.abs() * (self.cloud / self.cloud.max())
        z = z - self.scale * self.m * F.one_hot(target, z.shape[1]).to(z.dtype)
        if self.gamma > 0:
            weight = self.cb_weights.to(z.dtype) if self.weighted else None
            per = F.cross_entropy(z, target, weight=weight, reduction="none")
            p = torch.exp(-per)
            return (1 - p) ** self.gamma * per, torch.tensor(float(len(target)), device=z.device)
        return self.ce(z, target)


class AGCL(LongTailLoss):
    """LPT's asymmetric GCL (Dong et al., ICLR 2023; DongSky/LPT `cb_loss.AGCL` + `loss.ASLSingleLabel` at 6a4c7e0).

    GCL's cloud and margin on the cosines (noise d ~ N(0, 1/3) clamped to [-1, 1], drawn as the authors draw it,
    in training mode), then the asymmetric single-label loss on s * z with label smoothing:
        w_j = p_j ** gamma_neg (j != y),  w_y = (1 - p_y) ** gamma_pos     (gradient flows through w)
        loss = - sum_j t_j * w_j * log p_j,   t = (1 - smoothing) * onehot(y) + smoothing / C
    LPT phase 2 uses two: (gamma_pos 0, gamma_neg 4) on the class-balanced batch and (0.5, 8) on the
    instance-balanced one (loss.ibs_gamma_pos / loss.ibs_gamma_neg).
    """

    def __init__(self, counts, drw_epoch=None, beta=0.9999, m: float = 0.1, noise_mul: float = 0.5,
                 scale: float = 20.0, gamma_pos: float = 0.0, gamma_neg: float = 4.0, smoothing: float = 0.1):
        super().__init__(counts, drw_epoch, beta)
        logn = torch.as_tensor(counts, dtype=torch.float64).log()  # float64: exact in a float64 run too
        self.register_buffer("cloud", logn.max() - logn)
        self.m, self.noise_mul, self.scale = m, noise_mul, scale
        self.gamma_pos, self.gamma_neg, self.smoothing = gamma_pos, gamma_neg, smoothing

    def sample_losses(self, logits, target):
        z = logits
        if self.training and self.noise_mul > 0 and float(self.cloud.max()) > 0:
            # drawn and scaled as the authors do: the noise in the default dtype, divided by the 0-dim max (which
            # keeps that dtype), then times the per-class cloud
            d = torch.distributions.Normal(0.0, 1 / 3).sample(z.shape).clamp(-1, 1).to(z.device)
            z = z - self.scale * (self.noise_mul * d.abs() / self.cloud.max() * self.cloud).to(z.dtype)
        onehot = F.one_hot(target, z.shape[1]).to(z.dtype)
        z = z - self.scale * self.m * onehot
        log_p = F.log_softmax(z, dim=-1)
        p = log_p.exp()
        w = torch.pow(1 - p * onehot - (1 - p) * (1 - onehot), self.gamma_pos * onehot + self.gamma_neg * (1 - onehot))
        t = onehot * (1 - self.smoothing) + self.smoothing / z.shape[1]
        per = -(t * log_p * w).sum(-1)
        if self.weighted:
            wc = self.cb_weights.to(z.dtype)[target]
            return per * wc, wc.sum()
        return per, torch.tensor(float(len(target)), dtype=z.dtype, device=z.device)


class LogitAdjusted(LongTailLoss):
    """Logit-adjusted loss (Menon et al. 2021): CE(f + tau * log pi), pi = class priors."""

    def __init__(self, counts, drw_epoch=None, beta=0.9999, tau: float = 1.0):
        super().__init__(counts, drw_epoch, beta)
        self.register_buffer("log_prior", (self.counts / self.counts.sum()).log())
        self.tau = tau

    def sample_losses(self, logits, target):
        return self.ce(logits + self.tau * self.log_prior.to(logits.dtype), target)


class BalancedSoftmax(LongTailLoss):
    """Balanced softmax (Ren et al. 2020): CE(f + log n_c)."""

    def sample_losses(self, logits, target):
        return self.ce(logits + self.counts.log().to(logits.dtype), target)


@dataclass(frozen=True)
class LossInfo:
    name: str
    cls: Callable[..., LongTailLoss]
    paper: str


LOSSES: dict[str, LossInfo] = {
    i.name: i
    for i in [
        LossInfo("ce", CrossEntropy, "cross-entropy"),
        LossInfo("ldam", LDAM, "Cao et al., NeurIPS 2019"),
        LossInfo("gcl", GCL, "Li et al., CVPR 2022"),
        LossInfo("agcl", AGCL, "Dong et al., ICLR 2023 (LPT)"),
        LossInfo("logit_adjusted", LogitAdjusted, "Menon et al., ICLR 2021"),
        LossInfo("balanced_softmax", BalancedSoftmax, "Ren et al., NeurIPS 2020"),
    ]
}


def list_losses() -> list[str]:
    return sorted(LOSSES)


def build_loss(name: str, counts: Sequence[int], drw_epoch: int | None = None, beta: float = 0.9999,
               **kwargs) -> LongTailLoss:
    """Loss by registry name; extra kwargs (m, max_m, noise_mul, tau, gamma, scale) go to its constructor."""
    if name not in LOSSES:
        raise ConfigError(f"loss.name={name!r} is unknown; choose one of {', '.join(list_losses())}")
    if any(c <= 0 for c in counts):
        raise ConfigError("every class needs at least one training image (a count of 0 makes log n_c undefined)")
    cls = LOSSES[name].cls
    accepted = inspect.signature(cls.__init__).parameters
    unknown = [k for k in kwargs if k not in accepted]
    # config-driven callers pass every loss knob; only keys a loss does not know *and* that no loss
    # knows are an error
    known_somewhere = {k for i in LOSSES.values() for k in inspect.signature(i.cls.__init__).parameters}
    bad = [k for k in unknown if k not in known_somewhere]
    if bad:
        raise ConfigError(f"loss argument {bad[0]!r} is unknown; {name} takes {', '.join(list(accepted)[4:]) or 'none'}")
    return cls(counts, drw_epoch=drw_epoch, beta=beta, **{k: v for k, v in kwargs.items() if k in accepted})


__all__ = ["build_loss", "list_losses", "LOSSES", "class_balanced_weights", "unused_loss_options"]


LOSS_OPTIONS = ("m", "max_m", "noise_mul", "tau", "gamma", "gamma_pos", "gamma_neg", "smoothing")  # loss.<key>: a
# keyword of the same name in the losses that read it


def unused_loss_options(cfg) -> list[str]:
    """The loss.<key> settings that differ from their defaults but that cfg's loss does not read: each a sentence
    naming the losses that do."""
    from .config import LossConfig

    default, lc = LossConfig(), cfg.loss
    reads = {n: set(inspect.signature(info.cls.__init__).parameters) for n, info in LOSSES.items()}
    if lc.name not in reads:
        return []
    return [f"loss.{k}={getattr(lc, k)!r} has no effect with loss.name={lc.name}; it is read by "
            + ", ".join(n for n, keys in reads.items() if k in keys)
            for k in LOSS_OPTIONS if k not in reads[lc.name] and getattr(lc, k) != getattr(default, k)]


def loss_from_config(cfg, class_counts: Sequence[int], part: str = "") -> LongTailLoss:
    """The loss an experiment config names (margins in the cosine head's scale): the one place the trainer
    and a reloaded run (`Run.build`) build it. part="ibs": the loss of LPT's instance-balanced batch (its own
    asymmetric focusing, loss.ibs_gamma_pos / loss.ibs_gamma_neg)."""
    lc = cfg.loss
    for message in unused_loss_options(cfg) if not part else ():
        warnings.warn(message, UserWarning, stacklevel=2)
    gp, gn = (lc.ibs_gamma_pos, lc.ibs_gamma_neg) if part == "ibs" else (lc.gamma_pos, lc.gamma_neg)
    return build_loss(lc.name, class_counts, lc.drw_epoch, lc.beta, m=lc.m, max_m=lc.max_m, noise_mul=lc.noise_mul,
                      tau=lc.tau, gamma=lc.gamma, scale=cfg.model.head_scale, gamma_pos=gp, gamma_neg=gn,
                      smoothing=lc.smoothing)
