"""Batch samplers: class-balanced indices (LPT's dual sampling, ltlab.train.objective), and seeded batches
(a training stream that is the same for any number of data-loader workers)."""
from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
import torch.utils.data


def class_balanced_indices(targets: Sequence[int], n: int, generator: torch.Generator) -> list[int]:
    """n indices: a uniformly random class, then a uniformly random image of that class."""
    targets = np.asarray(targets)
    classes = np.unique(targets)
    by_class = [np.where(targets == c)[0] for c in classes]
    cls = torch.randint(0, len(classes), (n,), generator=generator).numpy()
    pick = torch.rand(n, generator=generator).numpy()
    return [int(by_class[c][int(p * len(by_class[c]))]) for c, p in zip(cls, pick)]


# -- a data stream that does not depend on the data-loader workers ---------------------------------------------
class SeededBatch(list):
    """The indices of one training batch and the seed its samples' random transforms draw from (the trainer
    gives step t the seed it gives everything else of step t)."""

    def __init__(self, indices, seed: int):
        super().__init__(indices)
        self.seed = int(seed)

    def __reduce__(self):  # the seed travels with the indices to a worker process
        return (SeededBatch, (list(self), self.seed))


class SeededDataset(torch.utils.data.Dataset):
    """A training set read by `SeededBatch`: the batch's samples are transformed in order with Python, NumPy and
    torch's CPU generator seeded from the batch's seed, and the CPU RNG state after them comes back with the batch
    (`seeded_collate`). The main process restores it, so augmentation and everything drawn after it (dropout)
    are the same for any `num_workers`, on any machine, and a resume at any batch continues the same stream."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def __getitems__(self, batch: SeededBatch):
        random.seed(batch.seed)
        np.random.seed(batch.seed % 2**32)
        torch.default_generator.manual_seed(batch.seed)  # the CPU generator only: a worker must not touch CUDA
        samples = [self.dataset[i] for i in batch]
        return samples, (random.getstate(), np.random.get_state(), torch.get_rng_state())


def seeded_collate(data):
    """((x, y), the CPU RNG state after the batch's transforms) for a `SeededDataset` batch."""
    samples, state = data
    return torch.utils.data.default_collate(samples), state


def restore_cpu_rng(state) -> None:
    """Continue the main process from the CPU RNG state a `SeededDataset` batch came back with."""
    py, npy, cpu = state
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(cpu)
