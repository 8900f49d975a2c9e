"""Seeding, devices and RNG snapshots (the only place global RNGs are touched)."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from .errors import counted


# how a run's seed spreads into the streams of its ranks, epochs and steps (changing one changes every run)
RANK_SEED_STRIDE = 1000  # rank r of a DDP run seeds its augmentation / dropout with seed + 1000 r
EPOCH_SEED_STRIDE = 100_003  # epoch e's batch order: seed * 100_003 + e
STEP_SEED_STRIDE = 1_000_003  # step t's augmentation and dropout: seed * 1_000_003 + rank * 7919 + t
RANK_STEP_STRIDE = 7919


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer.

    >>> seed_everything(0)
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """'auto'/None -> cuda if available else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def rng_snapshot() -> dict[str, Any]:
    """Every global RNG state (Python, NumPy, torch CPU and CUDA) for exact resume."""
    snap = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        snap["cuda"] = torch.cuda.get_rng_state_all()
    return snap


def rng_restore(snap: dict[str, Any]) -> None:
    random.setstate(snap["python"])
    np.random.set_state(snap["numpy"])
    torch.set_rng_state(snap["torch"])
    if "cuda" in snap and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(snap["cuda"])


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) under torch.distributed, (0, 1) otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _own_process_group() -> None:  # a pool worker's initializer: a terminal's Ctrl-C reaches the parent only
    import os

    os.setpgrp()


STOP_GRACE_SECONDS = 120  # how long interrupted workers get to save their runs' state before they are terminated


class WorkerPool:
    """A spawn ProcessPoolExecutor whose workers stop with the parent: on Ctrl-C (or any error) in the parent the
    queued jobs are cancelled, each running worker gets one SIGINT (it saves its run's state at the next step
    boundary, as a training run does on Ctrl-C), is waited for, and terminated after STOP_GRACE_SECONDS; a second
    Ctrl-C terminates them at once. Workers sit in their own process group, so a terminal's Ctrl-C reaches them
    only through the parent (once)."""

    def __init__(self, workers: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_own_process_group)

    def __enter__(self):
        return self.pool

    def __exit__(self, kind, error, tb) -> None:
        if kind is None:
            self.pool.shutdown(wait=True)
            return
        import os
        import signal
        import sys

        procs = [p for p in list(getattr(self.pool, "_processes", {}).values()) if p.is_alive()]
        self.pool.shutdown(wait=False, cancel_futures=True)
        try:
            for p in procs:
                if p.is_alive():
                    os.kill(p.pid, signal.SIGINT)
            if procs:
                print(f"stopping {counted(len(procs), 'worker')}: each saves its run's state (Ctrl-C again to kill them)",
                      file=sys.stderr)
            for p in procs:
                p.join(STOP_GRACE_SECONDS)
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                    p.join(5)
