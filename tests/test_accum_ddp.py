"""Gradient accumulation and SAM's ascent under DDP, against the one-process big-batch step (float64).

The equivalences hold where the forward is deterministic: no dropout, no GCL noise (an MLP and
ltlab's cross-entropy here; the DRW-weighted form tests that every micro-batch is divided by the
whole step's normaliser). Under DDP the ranks hold equal shards of the global batch.
"""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ltlab.losses import CrossEntropy
from ltlab.optim import create_optimizer
from ltlab.optim.base import make_closure

COUNTS = [40, 20, 10, 5]
STEPS = 3


def world(batch: int = 12):
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, len(COUNTS))).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    xs = [torch.randn(batch, 5, generator=g, dtype=torch.float64) for _ in range(STEPS)]
    ys = [torch.randint(0, len(COUNTS), (batch,), generator=g) for _ in range(STEPS)]
    return model, xs, ys


def loss_fn(weighted: bool):
    loss = CrossEntropy(COUNTS, drw_epoch=0 if weighted else None).double()
    loss.set_epoch(1)
    return loss


def optimizer(name, model, ascent="sync", lr=0.1, momentum=0.9):
    opts = {"rho": 0.3} if name in ("sam", "asam", "rsam", "imbsam", "focalsam") else {}
    return create_optimizer(name, model.parameters(), lr=lr, momentum=momentum, weight_decay=1e-3, seed=7,
                            class_counts=COUNTS, ascent=ascent, **opts)


def train(name, accum=1, weighted=True, shard=None, forward=None, model=None, ascent="sync", lr=0.1, momentum=0.9,
          steps=STEPS):
    """`steps` optimizer steps; shard=(rank, world) takes that rank's contiguous share of each batch."""
    base, xs, ys = world()
    model = model if model is not None else base
    opt = optimizer(name, model, ascent, lr, momentum)
    lf = loss_fn(weighted)
    for x, y in list(zip(xs, ys))[:steps]:
        if shard is not None:
            r, w = shard
            x, y = x[r * len(y) // w:(r + 1) * len(y) // w], y[r * len(y) // w:(r + 1) * len(y) // w]
        opt.step(make_closure(opt, model, lf, x, y, forward=forward, accum_steps=accum))
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["sgd", "adamw", "gnm", "sam", "asam", "rsam"])
def test_accumulation_equals_the_big_batch_step(name):
    """k micro-batches (uneven: 12 images in 5) = one step on the whole batch; GNM draws its noise once a step,
    SAM-type methods take the ascent from the accumulated gradient and accumulate the descent at w + e."""
    big = train(name, accum=1)
    for k in (2, 5):
        acc = train(name, accum=k)
        assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(acc, big)), (name, k)
    assert not all(torch.equal(a, b) for a, b in zip(big, train(name, weighted=False)))  # the weights matter here


@pytest.mark.parametrize("name", ["imbsam", "focalsam", "ccsam"])
def test_class_aware_methods_refuse_accumulation_with_the_reason(name):
    model, _, _ = world()
    why = optimizer(name, model).refuses("accum")
    assert why and "micro-batches" in why


def test_config_checks_accumulation():
    from ltlab.config import load_config
    from ltlab.errors import ConfigError

    with pytest.raises(ConfigError, match="accum_steps=64 > batch_size=32"):
        load_config("synthetic", ["batch_size=32", "accum_steps=64"])
    with pytest.raises(ConfigError, match="LPT"):
        load_config("synthetic", ["accum_steps=2", "dual_sampling=true"])
    with pytest.raises(ConfigError, match="optimizer.ascent"):
        load_config("synthetic", ["optimizer.ascent=global"])


# -- DDP: 2 gloo ranks ---------------------------------------------------------------------------------------------

# (method, ascent, steps, momentum)
DDP_CASES = [(n, "sync", STEPS, 0.9) for n in ("sam", "asam", "rsam", "gnm", "imbsam", "focalsam")] + \
            [(n, "local", 1, 0.0) for n in ("sam", "asam", "rsam")]


def _worker(rank, world_size, init, out, cases, accum):
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    try:
        got = {}
        for name, ascent, steps, momentum in cases:
            model, _, _ = world()
            ddp = DistributedDataParallel(model)
            got[(name, ascent)] = train(name, weighted=False, shard=(rank, world_size), forward=ddp, model=model,
                                        ascent=ascent, accum=accum, steps=steps, momentum=momentum)
        parts = [None] * world_size
        dist.all_gather_object(parts, got)
        if rank == 0:
            torch.save(parts, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path, cases, accum=1):
    out = str(tmp_path / f"ddp-{accum}.pt")
    mp.spawn(_worker, args=(2, f"file://{tmp_path}/rendezvous-{accum}", out, cases, accum), nprocs=2, join=True)
    return torch.load(out, weights_only=False)


def local_reference(name):
    """ascent=local by hand: each shard's own descent gradient (one process; SGD at lr 1 without momentum or weight
    decay makes the update the gradient), averaged over the shards, then the SGD step (lr 0.1, weight decay 1e-3)."""
    w0 = [p.detach().clone() for p in world()[0].parameters()]
    grads = []
    for r in range(2):
        model, xs, ys = world()
        opt = create_optimizer(name, model.parameters(), lr=1.0, momentum=0.0, weight_decay=0.0, seed=7,
                               class_counts=COUNTS, rho=0.3)
        x, y = xs[0][r * 6:(r + 1) * 6], ys[0][r * 6:(r + 1) * 6]
        opt.step(make_closure(opt, model, loss_fn(False), x, y))
        grads.append([a0 - a for a0, a in zip(w0, model.parameters())])
    return [a0 - 0.1 * ((g0 + g1) / 2 + 1e-3 * a0) for a0, g0, g1 in zip(w0, *grads)]


def check(ranks, cases):
    for key in ranks[0]:
        assert all(torch.equal(a, b) for a, b in zip(ranks[0][key], ranks[1][key])), key  # replicas identical
    for name, ascent, steps, momentum in cases:
        got = ranks[0][(name, ascent)]
        want = (train(name, weighted=False, steps=steps, momentum=momentum) if ascent == "sync"
                else local_reference(name))
        assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(got, want)), (name, ascent)
        if ascent == "local":  # and it is not the synchronised step
            sync = train(name, weighted=False, steps=steps, momentum=momentum)
            assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, sync)), name


def test_two_gloo_ranks_sam_sync_is_the_big_batch_step_and_local_the_mean_of_shard_steps(tmp_path):
    cases = [c for c in DDP_CASES if c[0] == "sam"]
    check(run_ranks(tmp_path, cases), cases)


@pytest.mark.full
@pytest.mark.parametrize("accum", [1, 2])
def test_two_gloo_ranks_every_method_with_and_without_accumulation(tmp_path, accum):
    check(run_ranks(tmp_path, DDP_CASES, accum), DDP_CASES)
