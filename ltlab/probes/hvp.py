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
import torch.distributed as dist
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


class ProbeData:
    """The probe set: one batch (kept on the device) or batches streamed to the device on every pass.

    `data` is a batch (x, y), a list of batches, or any re-iterable of batches (a DataLoader with
    shuffle=False and evaluation transforms, so that every pass sees the same data in the same order).
    Only one batch is on the device at a time when streaming, so peak memory does not grow with the
    number of batches. Under torch.distributed every rank passes its own disjoint shard, and every
    sum below (`sums`, `total`) is all-reduced: the probes then compute over the union of the shards,
    weighted by counts, and equal one process holding all of it (tests/test_dist_probes.py).
    A rank whose shard is empty still takes part in every reduction.
    """

    def __init__(self, data: Any, device: torch.device):
        if isinstance(data, ProbeData):
            data = data.source
        self.device = device
        self.single = isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0])
        if self.single:
            data = [(data[0].to(device), torch.as_tensor(data[1]).to(device))]
        elif iter(data) is data:
            raise ValueError("data is a one-shot iterator, which cannot be streamed on every pass; pass a DataLoader, "
                             "a list of batches or one batch (x, y)")
        self.source = data
        self._total: int | None = None

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self.source:
            if len(y):
                yield x.to(self.device, non_blocking=True), torch.as_tensor(y).to(self.device, non_blocking=True)

    @property
    def total(self) -> int:
        """Samples over all batches and all ranks (one counting pass the first time, unless one batch)."""
        if self._total is None:
            local = _count(self.source)
            self._total = int(all_sum(torch.tensor([float(local)], dtype=torch.float64))[0])
            if self._total == 0:
                raise ValueError("data is empty: pass a batch (x, y) or a non-empty DataLoader")
        return self._total

    def sums(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], width: int) -> torch.Tensor:
        """Sum over batches (and ranks) of fn(x, y), a float64 vector of `width`; the caller divides by `total`."""
        out = torch.zeros(width, dtype=torch.float64, device=self.device)
        for x, y in self:
            out += fn(x, y).to(torch.float64).reshape(-1)
        return all_sum(out)

    def mean_loss(self, model: nn.Module, loss_fn: LossFn) -> float:
        """Mean loss over the probe set, each batch weighted by its size."""
        return float(self.sums(lambda x, y: loss_fn(model(x), y).double() * len(y), 1)[0]) / self.total

    def mean_loss_acc(self, model: nn.Module, loss_fn: LossFn) -> tuple[float, float]:
        """Mean loss and accuracy (%) over the probe set, each batch weighted by its size."""
        def fn(x, y):
            logits = model(x)
            return torch.stack([loss_fn(logits, y).double() * len(y), (logits.argmax(1) == y).sum().double()])

        s = self.sums(fn, 2)
        return float(s[0]) / self.total, 100.0 * float(s[1]) / self.total


def _count(source: Any) -> int:
    """Samples in a list of batches or a DataLoader (from its sampler when it drops nothing; else one pass)."""
    from torch.utils.data import BatchSampler, DataLoader

    if isinstance(source, DataLoader) and isinstance(source.batch_sampler, BatchSampler) and not source.drop_last:
        try:
            return len(source.batch_sampler.sampler)
        except TypeError:  # a sampler without a length
            pass
    return sum(len(y) for _, y in source)


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place (a no-op in one process)."""
    if distributed():
        dist.all_reduce(t)
    return t


def gather_list(values: list) -> list:
    """Concatenate a per-rank list over ranks, in rank order (the list itself in one process)."""
    if not distributed():
        return values
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, values)
    return [v for part in parts for v in part]


def shard(indices: Sequence[int]) -> list[int]:
    """This rank's disjoint share of `indices` (every world_size-th from its rank; no padding, no duplicates)."""
    if not distributed():
        return list(indices)
    return list(indices)[dist.get_rank() :: dist.get_world_size()]


def as_batches(data: Any, device: torch.device) -> ProbeData:
    """A batch (x, y) or a re-iterable of batches (a DataLoader) -> a ProbeData streamed to `device`."""
    return ProbeData(data, device)


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
    """v -> H v for the mean loss over the probe set (weighted by batch size), flat float64 vectors.

    With one batch, the create_graph gradient is built once and reused for every product (no
    repeated forward pass); otherwise each product streams the batches (`ProbeData`). Under
    torch.distributed every product is all-reduced over the ranks' shards.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, params: Sequence[nn.Parameter]):
        self.params = list(params)
        self.device = self.params[0].device
        self.model, self.loss_fn, self.data = model, loss_fn, ProbeData(data, self.device)
        self.total = self.data.total
        self.dim = sum(p.numel() for p in self.params)
        self.hvps = 0
        one = list(self.data) if self.data.single else None
        self._cached = self._grads(one[0]) if one else None
        self._empty_single = self.data.single and not one  # this rank's share of one batch is empty

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
        out = torch.zeros_like(v)
        if self._cached is not None:
            out += flatten(self._hvp_batch(self._cached, vs, retain=True)).to(v.dtype)
        elif not self._empty_single:
            for b in self.data:
                out += flatten(self._hvp_batch(self._grads(b), vs, retain=False)).to(v.dtype)
        return all_sum(out)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """H V for the k columns of V (dim, k) in one batched double backward (`is_grads_batched`: vmap).

        Equals stacking `matvec` over the columns (to float rounding) and counts k HVPs. Whether it is
        faster depends on the device: on the 2-core CPU it is slower per HVP, which is why the probes
        default to one product at a time (`python bench/batched_hvp.py` measures both side by side).
        """
        self.hvps += V.shape[1]
        out = torch.zeros_like(V)
        if self._cached is not None:
            out += self._hvp_many(self._cached, V, retain=True)
        elif not self._empty_single:
            for b in self.data:
                out += self._hvp_many(self._grads(b), V, retain=False)
        return all_sum(out)

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
            return self.data.mean_loss(self.model, self.loss_fn)


@contextmanager
def hessian_operator(model: nn.Module, loss_fn: LossFn, data: Any, params: Sequence[str] | None = None
                     ) -> Iterator[HessianOperator]:
    """The probed parameters' Hessian operator, inside `probe_mode` (everything restored on exit)."""
    ps = [p for _, p in select_params(model, params)]
    with probe_mode(model, ps, loss_fn):
        yield HessianOperator(model, loss_fn, data, ps)
