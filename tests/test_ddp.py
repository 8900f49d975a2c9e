"""DistributedDataParallel on 2 CPU processes (gloo): same parameters as one process with the global batch."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ltlab.config import load_config
from ltlab.train import Trainer

# make test-full: the fast 2-rank checks in make test are tests/test_accum_ddp.py (SAM sync / local) and
# tests/test_dist_probes.py (probes)
pytestmark = pytest.mark.full

OVERRIDES = ["epochs=2", "data.num_classes=4", "data.n_max=32", "data.imbalance_ratio=1", "data.val_per_class=2",
             "data.test_per_class=2", "data.augment=false", "model.dropout=0.0", "model.prompt_length=2",
             "loss.name=ce", "loss.drw_epoch=null", "optimizer.lr=0.01"]


def _worker(rank, world, init, out, name, batch):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        cfg = load_config("synthetic", OVERRIDES + [f"optimizer.name={name}", f"batch_size={batch}"])
        t = Trainer(cfg, out=out, progress=False)
        t.fit()
        state = {k: v.clone() for k, v in t.trainable_state().items()}
        gathered = [None] * world
        dist.all_gather_object(gathered, state)
        if rank == 0:
            torch.save((gathered, t.steps_per_epoch), f"{out}/params.pt")
        dist.barrier()  # no rank tears down gloo while its peer still talks to it
    finally:
        dist.destroy_process_group()


def run_ddp(tmp_path, name, world, batch):
    init = f"file://{tmp_path}/rendezvous-{name}-{world}"
    out = tmp_path / f"{name}-{world}"
    mp.spawn(_worker, args=(world, init, str(out), name, batch), nprocs=world, join=True)
    return torch.load(out / "params.pt", weights_only=False)


@pytest.mark.slow
def test_ddp_sgd_matches_single_process_global_batch(tmp_path):
    one, steps1 = run_ddp(tmp_path, "sgd", 1, 16)
    two, steps2 = run_ddp(tmp_path, "sgd", 2, 8)
    assert steps1 == steps2
    for k in one[0]:
        assert torch.equal(two[0][k], two[1][k])  # replicas identical
        assert torch.allclose(one[0][k], two[0][k], atol=1e-5), k
    assert (tmp_path / "sgd-2" / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gnm", "sam"])
def test_ddp_gnm_and_sam_run_with_identical_replicas(tmp_path, name):
    two, _ = run_ddp(tmp_path, name, 2, 8)
    for k in two[0]:
        assert torch.equal(two[0][k], two[1][k])
