"""Classifier heads: linear, and cosine (normed) as used by LDAM, GCL, GNM-PT and LPT."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineHead(nn.Module):
    """logits = scale * cos(x, w_c): features and class weights L2-normalised, no bias."""

    def __init__(self, in_features: int, num_classes: int, scale: float = 25.0):
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))


def build_head(kind: str, in_features: int, num_classes: int, scale: float = 25.0) -> nn.Module:
    if kind == "cosine":
        return CosineHead(in_features, num_classes, scale)
    if kind == "linear":
        head = nn.Linear(in_features, num_classes)
        nn.init.zeros_(head.bias)
        nn.init.normal_(head.weight, std=0.02)
        return head
    raise ValueError(f"head={kind!r}: use 'cosine' or 'linear'")
