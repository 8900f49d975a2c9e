import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs 2 pytest-xdist workers on 2 cores: 1 thread each (and in the notebook kernels and
    # subprocesses they start), or 4 threads share 2 cores and everything slows down
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _poll_kernel_channels_in_slices() -> None:
    """The notebook tests' kernel client (nbmake and papermill run nbclient in this process) waits for a reply with
    one `socket.poll(timeout)` of up to the whole cell timeout (300 s). Under load that wait sometimes misses the
    reply's edge-triggered wake-up: the kernel has answered and sits idle, and the poll returns only at its timeout
    (faulthandler dumps: a notebook of 15 s took 312-316 s, the kernel idle throughout). Polling in 1-second slices
    re-reads the socket's state every second, so a missed wake-up costs at most a second; a real timeout still
    raises at the same deadline."""
    import queue
    import time

    from jupyter_client.channels import AsyncZMQSocketChannel

    whole = AsyncZMQSocketChannel.get_msg

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await whole(self, timeout=1.0 if left is None else min(1.0, left))
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    AsyncZMQSocketChannel.get_msg = get_msg


try:
    _poll_kernel_channels_in_slices()
except ImportError:  # no Jupyter installed: no notebook tests either
    pass


def pytest_collection_modifyitems(items):
    """The notebooks share their smoke runs directory (runs/notebook-smoke): under xdist they run in one worker,
    one after another, as without it."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group("notebooks"))


@pytest.fixture
def tiny_vit():
    """A tiny timm VisionTransformer (random weights) for fast model/probe tests."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(img_size=16, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_classes=0)


@pytest.fixture
def tiny_data_cfg():
    from ltlab.config import DataConfig

    return DataConfig(num_classes=6, n_max=24, imbalance_ratio=8, val_per_class=2, test_per_class=3,
                      image_size=32, many=12, few=6)
