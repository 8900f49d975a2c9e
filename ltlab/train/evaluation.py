"""Evaluation of a trainer's model: predictions (sharded under DDP), per-class metrics, the loss at w.

Selection rule (README, "Comparison protocol"): the headline of summary.json is the test accuracy of
the checkpoint `eval.select` names: "last" (default, the fixed schedule's last epoch) or "best_val"
(opt-in, the best validation epoch; ties keep the earlier epoch). Both are always recorded with their
epochs under summary["last"] and summary["best_val"]; the test set never selects anything.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import torch
from torch.utils.data import Subset

from ..stats import binomial_stderr, group_stderr
from .metrics import classification_metrics


def shard(dataset, rank: int, world: int):
    """Rank `rank`'s share of `dataset` under DDP (every world-th item); the whole dataset alone."""
    return dataset if world <= 1 else Subset(dataset, list(range(rank, len(dataset), world)))


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Iterable, device: torch.device,
            autocast: Callable[[], Any] = nullcontext, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, targets) of `model` in eval mode over `batches` of (x, y); under DDP (world > 1) each rank passes
    its own `shard` and the shards are gathered (metrics over all the data)."""
    was_training = model.training
    model.eval()
    logits, targets = [], []
    for x, y in batches:
        with autocast():
            logits.append(model(x.to(device, non_blocking=True)).float().cpu())
        targets.append(torch.as_tensor(y))
    model.train(was_training)
    logits, targets = torch.cat(logits), torch.cat(targets)
    if world > 1:
        import torch.distributed as dist

        parts = [None] * world
        dist.all_gather_object(parts, (logits, targets))
        logits, targets = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return logits, targets


Predict = Callable[[Any], tuple[torch.Tensor, torch.Tensor]]  # dataset -> (logits, targets), e.g. Trainer.predict


def clean_train_subset(data, n: int, seed: int):
    """A fixed, seeded subset of n training images with evaluation transforms (the same for every method)."""
    train, eval_tf = data.train, getattr(data.test, "transform", None)
    n = min(n, len(train))
    idx = sorted(torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n].tolist())
    if hasattr(train, "subset"):
        return train.subset(idx, eval_tf)
    view = copy.copy(train)
    if hasattr(view, "transform"):
        view.transform = eval_tf
    return Subset(view, idx)


def loss_at_w(predict: Predict, data, n: int, seed: int) -> float:
    """Plain cross-entropy at the unperturbed weights w on the fixed training subset of n images (eval mode).

    This is the curve that compares across methods: the step loss GNM and RSAM return is L(w + e).
    """
    logits, y = predict(clean_train_subset(data, n, seed))
    return float(torch.nn.functional.cross_entropy(logits, y))


def test_report(predict: Predict, data) -> dict[str, Any]:
    """Test metrics of the current weights with their standard errors (binomial, per class for the groups)."""
    logits, y = predict(data.test)
    m = classification_metrics(logits, y, data.splits)
    n_per_class = torch.bincount(y, minlength=data.num_classes).tolist()
    se = {"overall": binomial_stderr(m["overall"], len(y))}
    for g, classes in data.splits.items():
        se[g] = group_stderr([m["per_class"][c] for c in classes if m["per_class"][c] is not None],
                             [n_per_class[c] for c in classes if m["per_class"][c] is not None])
    m["stderr"] = se
    return m
