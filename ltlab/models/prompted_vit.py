"""Visual prompt tuning around any frozen timm VisionTransformer (VPT, Jia et al. 2022; GNM-PT; LPT).

Prompt tokens are appended after the patch tokens without positional embedding. Deep mode replaces
them before every block (one set per block); shallow mode inserts one set before the first block.
Optionally (LPT, Dong et al. 2023) a pool of group prompts with keys: a query pass with the shared
prompt gives the [CLS] feature, the top-k keys by cosine similarity pick group prompts that are
averaged and appended after the shared prompt in the last `group_layers` blocks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .heads import build_head


class PromptedViT(nn.Module):
    """Frozen timm ViT + trainable prompts + classifier head.

    Args:
        backbone: a timm ``VisionTransformer`` with a class token (frozen here).
        num_classes: classes of the head.
        prompt_length: prompt tokens per block (deep) or in total (shallow); 0 = linear probe.
        mode: "deep" | "shallow".
        head: "cosine" | "linear"; ``head_scale`` multiplies cosine logits.
        pool: "cls" or "cls+prompts" (GNM-PT: mean of [CLS] and the mean last-layer prompt output).
        dropout: on the pooled feature.
        pool_size, group_prompt_length, group_layers, top_k: LPT group prompts (pool_size=0: off).

    >>> from ltlab.models import build_backbone
    >>> m = PromptedViT(build_backbone("ltlab-tiny"), num_classes=5, prompt_length=4)
    >>> m(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        prompt_length: int = 10,
        mode: str = "deep",
        head: str = "cosine",
        head_scale: float = 25.0,
        pool: str = "cls+prompts",
        dropout: float = 0.1,
        pool_size: int = 0,
        group_prompt_length: int = 10,
        group_layers: int = 6,
        top_k: int = 2,
    ):
        super().__init__()
        if getattr(backbone, "cls_token", None) is None or not hasattr(backbone, "blocks"):
            raise ValueError("PromptedViT needs a timm VisionTransformer with a class token")
        if mode not in ("deep", "shallow"):
            raise ValueError(f"mode={mode!r}: use 'deep' or 'shallow'")
        if pool not in ("cls", "cls+prompts"):
            raise ValueError(f"pool={pool!r}: use 'cls' or 'cls+prompts'")
        if prompt_length < 0:
            raise ValueError(f"prompt_length={prompt_length}: must be >= 0")
        self.backbone = backbone
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()
        dim, depth = backbone.embed_dim, len(backbone.blocks)
        self.mode, self.pool, self.prompt_length, self.depth = mode, pool, prompt_length, depth
        self.prompts = nn.Parameter(torch.empty(depth if mode == "deep" else 1, prompt_length, dim))
        nn.init.trunc_normal_(self.prompts, std=0.02)
        self.pool_size, self.top_k = pool_size, top_k
        self.group_layers = group_layers
        if pool_size > 0 and not 1 <= group_layers <= depth:  # a ConfigError is a ValueError: exit 2 from the CLI
            raise ConfigError(f"model.group_layers={group_layers}: the backbone has {depth} blocks, so 1 to {depth} "
                              f"of them can hold group prompts; set model.group_layers=1..{depth} (LPT: the last 6 of 12)")
        if pool_size > 0:
            if top_k > pool_size:
                raise ValueError(f"top_k={top_k} exceeds pool_size={pool_size}")
            self.group_prompts = nn.Parameter(torch.empty(pool_size, self.group_layers, group_prompt_length, dim))
            self.group_keys = nn.Parameter(torch.empty(pool_size, dim))
            nn.init.trunc_normal_(self.group_prompts, std=0.02)
            nn.init.trunc_normal_(self.group_keys, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.head = build_head(head, dim, num_classes, head_scale)
        self.last_key_similarity: torch.Tensor | None = None

    def train(self, mode: bool = True) -> "PromptedViT":
        """Train prompts/head; the frozen backbone always behaves as in eval (no dropout, drop-path)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_report(self) -> dict[str, int]:
        """Trainable vs total parameter counts (and the trainable fraction in percent)."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return {"trainable": trainable, "total": total, "percent": round(100.0 * trainable / total, 4)}

    def tokens(self, x: torch.Tensor, group: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Final normalised tokens (B, N + prompts, D) and N, the number of backbone tokens."""
        bb = self.backbone
        x = bb.patch_embed(x)
        x = bb._pos_embed(x)
        x = bb.patch_drop(x)
        x = bb.norm_pre(x)
        n, batch = x.shape[1], x.shape[0]
        first_group = self.depth - self.group_layers
        for i, blk in enumerate(bb.blocks):
            extra = []
            if self.prompt_length and (self.mode == "deep" or i == 0):
                extra.append(self.prompts[i if self.mode == "deep" else 0].expand(batch, -1, -1))
            elif self.prompt_length:  # shallow: keep the shared prompt's outputs
                extra.append(x[:, n : n + self.prompt_length])
            if group is not None and i >= first_group:
                extra.append(group[:, i - first_group])
            if extra or x.shape[1] > n:
                x = torch.cat([x[:, :n], *extra], dim=1)
            x = blk(x)
        return bb.norm(x), n

    def _pool(self, tokens: torch.Tensor, n: int) -> torch.Tensor:
        if self.pool == "cls+prompts" and tokens.shape[1] > n:
            return (tokens[:, 0] + tokens[:, n:].mean(1)) / 2
        return tokens[:, 0]

    def select_group_prompts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LPT: query = [CLS] of a shared-prompt pass (no gradient); top-k keys -> averaged group prompts."""
        with torch.no_grad():
            tokens, _ = self.tokens(x)
            query = tokens[:, 0]
        sim = F.normalize(query, dim=-1) @ F.normalize(self.group_keys, dim=-1).T  # (B, pool)
        top_sim, idx = sim.topk(self.top_k, dim=1)
        return self.group_prompts[idx].mean(1), top_sim.sum(1)  # per sample: the authors' reduced_sim is its mean

    def features(self, x: torch.Tensor) -> torch.Tensor:
        group = None
        if self.pool_size > 0:
            group, self.last_key_similarity = self.select_group_prompts(x)
        tokens, n = self.tokens(x, group)
        return self._pool(tokens, n)

    def classifier_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the classifier reads: the pooled feature after dropout (optimizers that perturb the
        classifier, CC-SAM, re-run `head` on it)."""
        return self.dropout(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.classifier_input(x))
