import os

import pytest
import torch
from kernel_client import poll_in_slices, stale_watches, wake_after_plain_send

os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs 2 pytest-xdist workers on 2 cores: 1 thread each (and in the notebook kernels and
    # subprocesses they start), or 4 threads share 2 cores and everything slows down
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


class KernelWakeupLost(UserWarning):
    """A kernel reply sat on the client's socket with no wake-up coming (tests/kernel_client.py)."""


def _warn_lost_wakeup(kind: str, state: dict) -> None:
    import warnings

    warnings.warn(KernelWakeupLost(f"a message sat on the kernel client's {kind} socket while its poll slept with "
                                   f"no wake-up coming (a lost ZMQ_FD wake-up; {state}); the 1-s poll slice took it"))


try:  # the kernel client of nbmake and papermill: the 300-s stall's cause fixed, and a guard (tests/kernel_client.py)
    wake_after_plain_send()
    poll_in_slices(1.0, _warn_lost_wakeup)
except ImportError:  # no Jupyter installed: no notebook tests either
    pass


class NotebookGuards:
    """Hooks for the notebook items (nbmake collects them under notebooks/, where this directory's conftest hooks
    are not called: a per-item hook of a conftest only runs for items below it), registered as a plugin."""

    @staticmethod
    def pytest_runtest_teardown(item):
        """After each notebook: no fd that jupyter_core's reused event loop believes it watches may have left the
        epoll interest list (the second way to lose a wake-up, tests/kernel_client.py)."""
        if item.path.suffix == ".ipynb":
            stale = stale_watches()
            if stale:
                import warnings

                warnings.warn(KernelWakeupLost(f"after {item.name}: the kernel client's event loop watches fds "
                                               f"{stale} that epoll no longer does"))


def pytest_configure(config):
    config.pluginmanager.register(NotebookGuards(), "ltlab-notebook-guards")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the group into the node id
def pytest_collection_modifyitems(items):
    """The notebooks share their smoke runs directory (runs/notebook-smoke): under xdist they run in one worker,
    one after another, as without it."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group("notebooks"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """Under --dist loadgroup, every notebook's node id must carry its group (pytest-xdist's scheduler reads it
    there). pytest 9.2 ignores the id that pytest-xdist 3.8 rewrites (pytest-dev/pytest-xdist#1386): the group
    is lost without a word, and two notebooks train into runs/notebook-smoke at once. Stop instead."""
    if node.config.getoption("dist", "no") == "loadgroup":
        loose = [i for i in ids if ".ipynb::" in i and not i.endswith("@notebooks")]
        if loose:
            pytest.exit(f"the notebooks lost their xdist group ({loose[0]} ...): this pytest and pytest-xdist do not "
                        "keep xdist_group (pytest-dev/pytest-xdist#1386); install the pytest that pyproject.toml's "
                        "dev extra pins (make setup)", returncode=3)


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
