"""Shared set-up for the bench scripts: the embedded prompted ViT and a fixed batch."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from ltlab.config import load_config
from ltlab.data import build_dataset
from ltlab.losses import loss_from_config
from ltlab.models import build_model


def embedded(batch_size: int = 128, split: str = "train", prompt_length: int | None = None, device: str = "cpu",
             run: str | None = None, seed: int = 0, loss: str = "ce"):
    """(model, loss_fn, (x, y), cfg) for the embedded default; weights from `run` (a run dir) if given.
    loss: "ce" (plain cross-entropy, what the probes measure) or "train" (the preset's training loss)."""
    overrides = [] if prompt_length is None else [f"model.prompt_length={prompt_length}"]
    cfg = load_config("synthetic", overrides)
    data = build_dataset(cfg.data)
    torch.manual_seed(seed)
    model = build_model(cfg.model, data.num_classes).to(device)
    if run and (Path(run) / "checkpoints" / "last.pt").exists():  # the checkpoint the headline reports
        model.load_state_dict(torch.load(Path(run) / "checkpoints" / "last.pt", weights_only=False)["model"],
                              strict=False)
    ds = getattr(data, split)
    if split == "train":
        ds.transform = data.test.transform  # deterministic
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:batch_size].tolist()
    x = torch.stack([ds[i][0] for i in idx]).to(device)
    y = torch.tensor([ds[i][1] for i in idx], device=device)
    loss_fn = loss_from_config(cfg, data.class_counts).to(device) if loss == "train" else torch.nn.CrossEntropyLoss()
    return model, loss_fn, (x, y), cfg


def timed(fn, repeats: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def median(xs) -> float:
    return statistics.median(xs)
