"""Hessian-vector products over a model's trainable parameters, in a probe context that restores everything.

Fused scaled-dot-product attention has no double backward, so for the probe's duration every timm
block uses the math attention path (and SDPA is pinned to its MATH kernel); afterwards, and when
the probe raises, parameter values, requires_grad flags, train/eval modes and attention settings
are exactly as before. Probes draw randomness from their own generator, never the global RNG.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def select_params(model: nn.Module, params: Sequence[str] | None = None) -> list[tuple[str, nn.Parameter]]:
    """Default: the trainable parameters; else those whose names are listed (or start with a listed prefix)."""
    named = list(model.named_parameters())
    if params is None:
        chosen = [(n, p) for n, p in named if p.requires_grad]
    else:
        chosen = [(n, p) for n, p in named if any(n == s or n.startswith(s + ".") for s in params)]
        missing = [s for s in params if not any(n == s or n.startswith(s + ".") for n, _ in named)]
        if missing:
            raise ValueError(f"params: no parameter named {missing[0]!r}; e.g. {[n for n, _ in named[:4]]}")
    if not chosen:
        raise ValueError("no parameters to probe: the model has no trainable parameters (pass params=[names])")
    return chosen


def as_batches(data: Any, device: torch.device) -> list[Batch]:
    """A batch (x, y) or an iterable of batches (a DataLoader) -> list of batches on `device`."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        batches = [data]
    else:
        batches = list(data)
    if not batches:
        raise ValueError("data is empty: pass a batch (x, y) or a non-empty DataLoader")
    return [(x.to(device), torch.as_tensor(y).to(device)) for x, y in batches]


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def probe_mode(model: nn.Module, params: Sequence[nn.Parameter], loss_fn: Any = None) -> Iterator[None]:
    """Eval mode, math attention, probed params requiring grad; all restored on exit (also on error)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    modes = {m: m.training for m in model.modules()}
    loss_mode = loss_fn.training if isinstance(loss_fn, nn.Module) else None
    flags = {p: p.requires_grad for p in model.parameters()}
    fused = {m: m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")}
    saved = [(p, p.detach().clone()) for p in params]
    try:
        model.eval()
        if loss_mode is not None:
            loss_fn.eval()
        for m in fused:
            m.fused_attn = False
        for p in params:
            p.requires_grad_(True)
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        with torch.no_grad():
            for p, w in saved:
                p.copy_(w)
        for p, f in flags.items():
            p.requires_grad_(f)
        for m, f in fused.items():
            m.fused_attn = f
        for m, t in modes.items():
            m.training = t
        if loss_mode is not None:
            loss_fn.train(loss_mode)


def flatten(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vec: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for t in like:
        out.append(vec[i : i + t.numel()].view_as(t).to(t.dtype))
        i += t.numel()
    return out


class HessianOperator:
    """v -> H v for the mean loss over `batches` (weighted by batch size), flat float64 vectors.

    With one batch, the create_graph gradient is built once and reused for every product (no
    repeated forward pass); with several, each product walks the batches.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches: list[Batch], params: Sequence[nn.Parameter]):
        self.model, self.loss_fn, self.batches, self.params = model, loss_fn, batches, list(params)
        self.total = sum(len(y) for _, y in batches)
        self.dim = sum(p.numel() for p in self.params)
        self.device = self.params[0].device
        self.hvps = 0
        self._cached = self._grads(batches[0]) if len(batches) == 1 else None

    def _grads(self, batch: Batch) -> list[torch.Tensor | None]:
        x, y = batch
        with torch.enable_grad():
            loss = self.loss_fn(self.model(x), y) * (len(y) / self.total)
            return list(torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True))

    def _hvp_batch(self, grads: list[torch.Tensor | None], vs: list[torch.Tensor], retain: bool) -> list[torch.Tensor]:
        pairs = [(g, v) for g, v in zip(grads, vs) if g is not None and g.requires_grad]
        if not pairs:  # no parameter has curvature: H = 0
            return [torch.zeros_like(p) for p in self.params]
        with torch.enable_grad():
            gv = sum((g * v).sum() for g, v in pairs)
            hv = torch.autograd.grad(gv, self.params, retain_graph=retain, allow_unused=True)
        return [torch.zeros_like(p) if h is None else h for h, p in zip(hv, self.params)]

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        vs = unflatten(v, self.params)
        self.hvps += 1
        if self._cached is not None:
            return flatten(self._hvp_batch(self._cached, vs, retain=True)).to(v.dtype)
        out = torch.zeros_like(v)
        for b in self.batches:
            out += flatten(self._hvp_batch(self._grads(b), vs, retain=False)).to(v.dtype)
        return out

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """H V for the k columns of V (dim, k) in one batched double backward (`is_grads_batched`: vmap).

        Equals stacking `matvec` over the columns (to float rounding) and counts k HVPs. Whether it is
        faster depends on the device: on the 2-core CPU it is slower per HVP, which is why the probes
        default to one product at a time (`python bench/batched_hvp.py` measures both side by side).
        """
        self.hvps += V.shape[1]
        if self._cached is not None:
            return self._hvp_many(self._cached, V, retain=True)
        out = torch.zeros_like(V)
        for b in self.batches:
            out += self._hvp_many(self._grads(b), V, retain=False)
        return out

    def _hvp_many(self, grads: list[torch.Tensor | None], V: torch.Tensor, retain: bool) -> torch.Tensor:
        k = V.shape[1]
        rows = [t.T.reshape(k, *p.shape) for t, p in zip(V.split([p.numel() for p in self.params]), self.params)]
        pairs = [(g, r) for g, r in zip(grads, rows) if g is not None and g.requires_grad]
        if not pairs:  # no parameter has curvature: H = 0
            return torch.zeros_like(V)
        with torch.enable_grad():
            hv = torch.autograd.grad([g for g, _ in pairs], self.params, grad_outputs=[r.to(g.dtype) for g, r in pairs],
                                     retain_graph=retain, allow_unused=True, is_grads_batched=True)
        return torch.cat([V.new_zeros(k, p.numel()) if h is None else h.reshape(k, -1).to(V.dtype)
                          for h, p in zip(hv, self.params)], 1).T

    def apply(self, V: torch.Tensor, block: int = 1) -> torch.Tensor:
        """H V column by column (block=1) or `block` columns per batched backward (see `matmat`)."""
        if block <= 1:
            return torch.stack([self.matvec(V[:, i]) for i in range(V.shape[1])], 1)
        return torch.cat([self.matmat(V[:, i : i + block]) for i in range(0, V.shape[1], block)], 1)

    def loss(self) -> float:
        with torch.no_grad():
            return sum(float(self.loss_fn(self.model(x), y)) * len(y) for x, y in self.batches) / self.total


@contextmanager
def hessian_operator(model: nn.Module, loss_fn: LossFn, data: Any, params: Sequence[str] | None = None
                     ) -> Iterator[HessianOperator]:
    """The probed parameters' Hessian operator, inside `probe_mode` (everything restored on exit)."""
    ps = [p for _, p in select_params(model, params)]
    with probe_mode(model, ps, loss_fn):
        yield HessianOperator(model, loss_fn, as_batches(data, model_device(model)), ps)
