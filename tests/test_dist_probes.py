"""Distributed and streamed probes: 2 gloo ranks, each streaming its disjoint shard, equal 1 process (float64).

The probe set has 37 images (odd, so the shards differ in size: 19 and 18) and is streamed in
batches of 8, so every product walks several batches and every sum is weighted by counts.
"""
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from ltlab.probes import (gaussian_sharpness, hessian_trace, per_class, surface_2d, top_eigenvalues)
from ltlab.probes.hvp import hessian_operator, shard

N, DIM, CLASSES = 37, 5, 3


class Labelled(TensorDataset):
    @property
    def targets(self):
        return self.tensors[1]


def world_inputs():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(DIM, 6), nn.Tanh(), nn.Linear(6, CLASSES)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(N, DIM, generator=g, dtype=torch.float64)
    y = torch.arange(N) % CLASSES
    return model, nn.CrossEntropyLoss(), Labelled(x, y)


def probe_all(model, loss_fn, dataset) -> dict[str, np.ndarray]:
    """Every probe the issue names, on this process's shard of the probe set, streamed in batches of 8."""
    loader = DataLoader(Subset(dataset, shard(range(len(dataset)))), batch_size=8, shuffle=False)
    v = torch.linspace(-1, 1, sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    with hessian_operator(model, loss_fn, loader) as op:
        hv = op.matvec(v).numpy()
    eig = top_eigenvalues(model, loss_fn, loader, k=1, which="both", tol=1e-8, seed=3)
    tr = hessian_trace(model, loss_fn, loader, num_hvps=30, seed=3)
    s2 = surface_2d(model, loss_fn, loader, steps=5, span=0.5, seed=3, progress=False)
    sh = gaussian_sharpness(model, loss_fn, loader, sigma=0.05, samples=6, seed=3)
    pc = per_class(top_eigenvalues, model, loss_fn, dataset, max_per_class=7, seed=3, tol=1e-8)
    return {"hvp": hv, "lambda": eig.eigenvalues, "trace": np.array([tr.estimate, tr.stderr]), "surface": s2.loss,
            "surface_acc": s2.accuracy, "sharpness": np.array([sh.estimate, sh.base_loss]), "per_class": np.array(pc.values)}


def _worker(rank, world, init, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        got = probe_all(*world_inputs())
        if rank == 0:
            torch.save(got, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process_float64(tmp_path):
    out = str(tmp_path / "two.pt")
    mp.spawn(_worker, args=(2, f"file://{tmp_path}/rendezvous", out), nprocs=2, join=True)
    two = torch.load(out, weights_only=False)
    one = probe_all(*world_inputs())
    for key in one:
        assert np.allclose(two[key], one[key], rtol=0, atol=1e-10), (key, two[key], one[key])
    assert one["lambda"][1] < 0 < one["lambda"][0]  # both ends found, an indefinite Hessian


def test_streamed_batches_equal_one_batch():
    """A DataLoader streamed on every product gives the one-batch (cached gradient) numbers."""
    model, loss_fn, ds = world_inputs()
    batch = ds.tensors
    loader = DataLoader(ds, batch_size=8, shuffle=False)
    a = top_eigenvalues(model, loss_fn, batch, k=2, tol=1e-9)
    b = top_eigenvalues(model, loss_fn, loader, k=2, tol=1e-9)
    assert np.allclose(a.eigenvalues, b.eigenvalues, rtol=1e-10)
    assert np.allclose(surface_2d(model, loss_fn, batch, steps=3, progress=False).loss,
                       surface_2d(model, loss_fn, loader, steps=3, progress=False).loss, rtol=1e-12)


def test_one_shot_iterator_is_refused():
    model, loss_fn, ds = world_inputs()
    with pytest.raises(ValueError, match="one-shot iterator"):
        top_eigenvalues(model, loss_fn, iter(DataLoader(ds, batch_size=8)))


TINY = ["epochs=1", "batch_size=16", "data.num_classes=6", "data.n_max=30", "data.imbalance_ratio=10",
        "data.val_per_class=5", "data.test_per_class=3", "model.prompt_length=2", "loss.drw_epoch=null"]


@pytest.mark.full
def test_cli_probe_streams_a_whole_split_and_runs_under_torchrun(tmp_path):
    """`probe RUN --images all --batch-size B --split val` in one process and on 2 gloo ranks under torchrun."""
    import os
    import subprocess
    import sys

    from ltlab.cli import main
    from ltlab.probes import ProbeResult

    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run), "--no-progress"]) == 0
    args = ["probe", str(run), "--what", "eig,surface1d", "--images", "all", "--batch-size", "7", "--split", "val",
            "--steps", "3", "--no-progress"]
    assert main(args) == 0
    one = {n: ProbeResult.load(run / "probes" / f"{n}_val.npz") for n in ("eig", "surface1d")}
    assert one["eig"].world_size == 1
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29517", "-m", "ltlab", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("eig:") == 1  # rank 0 alone reports and writes
    two = {n: ProbeResult.load(run / "probes" / f"{n}_val.npz") for n in ("eig", "surface1d")}
    assert two["eig"].world_size == 2
    assert np.allclose(two["eig"].eigenvalues, one["eig"].eigenvalues, rtol=1e-4)  # float32 model, other sum order
    assert np.allclose(two["surface1d"].loss, one["surface1d"].loss, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # inside curvlinops, not ltlab
def test_hvp_and_top_eigenvalues_agree_with_curvlinops():
    """An independent implementation (curvlinops' HessianLinearOperator, a test-only dependency) on the same
    model, loss and several batches (37 images in batches of 8): the HVP and the top 3 eigenvalues (scipy's
    eigsh on curvlinops' operator) agree with ltlab to 1e-6 relative."""
    curvlinops = pytest.importorskip("curvlinops")
    from scipy.sparse.linalg import eigsh

    model, loss_fn, ds = world_inputs()
    batches = list(DataLoader(ds, batch_size=8, shuffle=False))
    params = [p for p in model.parameters() if p.requires_grad]
    H = curvlinops.HessianLinearOperator(model, loss_fn, params, batches)
    v = torch.linspace(-1, 1, sum(p.numel() for p in params), dtype=torch.float64)
    theirs = (H @ v).reshape(-1)
    with hessian_operator(model, loss_fn, batches) as op:
        ours = op.matvec(v)
    assert float((ours - theirs).norm() / theirs.norm()) <= 1e-6
    top = np.sort(eigsh(H.to_scipy(), k=3, which="LA", tol=1e-12)[0])[::-1]
    r = top_eigenvalues(model, loss_fn, batches, k=3, tol=1e-10, max_iter=200)
    assert np.allclose(r.eigenvalues, top, rtol=1e-6), (r.eigenvalues, top)
