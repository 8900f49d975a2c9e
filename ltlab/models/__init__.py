"""Models: prompted ViT around a frozen timm backbone, heads, backbone registry."""
from __future__ import annotations

from ..config import ModelConfig
from .backbones import BUNDLED, build_backbone, list_backbones, new_bundled_backbone
from .heads import CosineHead, build_head
from .prompted_vit import PromptedViT

__all__ = [
    "PromptedViT", "build_model", "build_backbone", "list_backbones", "CosineHead", "build_head",
    "BUNDLED", "new_bundled_backbone", "set_fused_attention",
]


def build_model(cfg: ModelConfig, num_classes: int) -> PromptedViT:
    """PromptedViT from a model config (backbone by name: bundled or any timm ViT).

    >>> build_model(ModelConfig(prompt_length=2), num_classes=3).parameter_report()["trainable"]
    1056
    """
    backbone = build_backbone(cfg.backbone, cfg.pretrained, cfg.checkpoint_path)
    model = PromptedViT(
        backbone, num_classes, prompt_length=cfg.prompt_length, mode=cfg.mode, head=cfg.head,
        head_scale=cfg.head_scale, pool=cfg.pool, dropout=cfg.dropout, pool_size=cfg.pool_size,
        group_prompt_length=cfg.group_prompt_length, group_layers=cfg.group_layers, top_k=cfg.top_k,
    )
    if cfg.freeze_shared_prompt:
        model.prompts.requires_grad_(False)
    return model


def set_fused_attention(model, enabled: bool) -> dict:
    """Switch timm's per-block fused attention; returns {module: previous} for restoring."""
    previous = {}
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            previous[m] = m.fused_attn
            m.fused_attn = enabled
    return previous
