"""Models: prompted ViT around a frozen timm backbone, heads, backbone registry."""
from __future__ import annotations

from ..config import ModelConfig
from .backbones import BUNDLED, build_backbone, list_backbones, new_bundled_backbone
from .heads import CosineHead, build_head
from .prompted_vit import PromptedViT

__all__ = [
    "PromptedViT", "build_model", "build_backbone", "list_backbones", "CosineHead", "build_head",
    "BUNDLED", "new_bundled_backbone", "set_fused_attention", "check_model",
]


def build_model(cfg: ModelConfig, num_classes: int) -> PromptedViT:
    """PromptedViT from a model config (backbone by name: bundled or any timm ViT).

    >>> build_model(ModelConfig(prompt_length=2), num_classes=3).parameter_report()["trainable"]
    1056
    """
    model = _prompted(build_backbone(cfg.backbone, cfg.pretrained, cfg.checkpoint_path), cfg, num_classes)
    if cfg.freeze_shared_prompt:
        model.prompts.requires_grad_(False)
    return model


def _prompted(backbone, cfg: ModelConfig, num_classes: int) -> PromptedViT:
    return PromptedViT(
        backbone, num_classes, prompt_length=cfg.prompt_length, mode=cfg.mode, head=cfg.head,
        head_scale=cfg.head_scale, pool=cfg.pool, dropout=cfg.dropout, pool_size=cfg.pool_size,
        group_prompt_length=cfg.group_prompt_length, group_layers=cfg.group_layers, top_k=cfg.top_k,
    )


def check_model(cfg: ModelConfig, num_classes: int = 2) -> None:
    """Raise what `build_model` would raise about the architecture (e.g. more group layers than the backbone has
    blocks) without loading or downloading weights: it is built on the meta device. LPT checks its phase-2 model
    so before phase 1 trains.

    >>> check_model(ModelConfig(pool_size=4, group_layers=9))
    Traceback (most recent call last):
    ltlab.errors.ConfigError: model.group_layers=9: the backbone has 4 blocks, so 1 to 4 of them can hold group prompts; set model.group_layers=1..4 (LPT: the last 6 of 12)
    """
    import torch

    with torch.device("meta"):
        if cfg.backbone in BUNDLED:
            backbone = new_bundled_backbone(cfg.backbone)
        else:
            backbone = build_backbone(cfg.backbone, False, "none")  # the architecture only, random on meta
        _prompted(backbone, cfg, num_classes)


def set_fused_attention(model, enabled: bool) -> dict:
    """Switch timm's per-block fused attention; returns {module: previous} for restoring."""
    previous = {}
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            previous[m] = m.fused_attn
            m.fused_attn = enabled
    return previous
