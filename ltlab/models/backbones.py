"""Backbone registry: the bundled small ViT (weights shipped in the package) and any timm ViT.

>>> vit = build_backbone("ltlab-tiny")
>>> vit.embed_dim, len(vit.blocks)
(96, 4)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DataError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class BackboneInfo:
    """A bundled backbone: timm VisionTransformer kwargs plus the weights file next to this module."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str = ""
    description: str = ""


BUNDLED: dict[str, BackboneInfo] = {
    "ltlab-tiny": BackboneInfo(
        "ltlab-tiny",
        dict(img_size=32, patch_size=8, embed_dim=96, depth=4, num_heads=3, mlp_ratio=4.0, num_classes=0),
        weights="ltlab_tiny_vit.pt",
        description="32 px, patch 8, dim 96, depth 4; pretrained by `python -m ltlab pretrain` on the "
        "synthetic source task: (shape, hue) on [CLS], texture on the mean patch token",
    ),
}


def list_backbones() -> list[str]:
    return sorted(BUNDLED)


def new_bundled_backbone(name: str = "ltlab-tiny") -> nn.Module:
    """An untrained instance of a bundled architecture (what `pretrain` starts from)."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(**BUNDLED[name].kwargs)


def _load_weights(path: Path, name: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, random bytes, a pickle with code in it, another format
        raise DataError(f"{path} is not a weights file torch can load ({type(e).__name__}); give the .pth/.pt state "
                        f"dict of {name}") from None
    if not isinstance(state, dict):
        raise DataError(f"{path} does not hold a state dict of weights for {name}")
    return state


def build_backbone(name: str, pretrained: bool = False, checkpoint_path: str = "") -> nn.Module:
    """A timm VisionTransformer with a class token; weights from the package, a file, or (online) timm."""
    if name in BUNDLED:
        vit = new_bundled_backbone(name)
        if checkpoint_path and not Path(checkpoint_path).is_file():  # the user named a file: say so, no pretrain advice
            raise DataError(f"model.checkpoint_path={checkpoint_path!r}: the file does not exist. Give the path of a "
                            f"weights file for {name}, or leave model.checkpoint_path empty to use the bundled weights")
        path = Path(checkpoint_path) if checkpoint_path else WEIGHTS_DIR / BUNDLED[name].weights
        if not path.exists():
            raise DataError(f"the bundled weights of backbone {name!r} are missing from the package ({path}); rebuild "
                            "them with `python -m ltlab pretrain --replace-bundled`, or reinstall ltlab")
        vit.load_state_dict(_load_weights(path, name))
        return vit
    import timm
    from timm.models.vision_transformer import VisionTransformer

    if not timm.is_model(name):
        import difflib

        near = difflib.get_close_matches(name, list_backbones() + timm.list_models("vit_*"), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(f"model.backbone={name!r} is not a bundled backbone nor a timm model{hint}")
    if checkpoint_path and checkpoint_path != "none" and not Path(checkpoint_path).exists():
        raise DataError(
            f"model.checkpoint_path={checkpoint_path!r}: the file does not exist. Download the weights for {name} "
            "(e.g. from the timm / Hugging Face hub) to that path, or set model.pretrained=true to fetch them online."
        )
    if not pretrained and not checkpoint_path:
        raise DataError(
            f"model.backbone={name!r} needs weights: set model.pretrained=true (downloads from the timm hub) or "
            "model.checkpoint_path=/path/to/weights; checkpoint_path=none means a random init on purpose")
    if checkpoint_path == "none":
        checkpoint_path, pretrained = "", False
    try:
        vit = timm.create_model(name, pretrained=pretrained and not checkpoint_path, num_classes=0)
    except (OSError, RuntimeError, ValueError) as e:  # no network, hub down, gated weights
        raise DataError(
            f"model.pretrained=true could not fetch the weights of {name} ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''}). Download them on a machine with network access "
            "(timm.create_model(name, pretrained=True), or the Hugging Face hub) and pass "
            "model.checkpoint_path=/path/to/weights.pth with model.pretrained=false") from None
    if checkpoint_path:
        state = _load_weights(Path(checkpoint_path), name)
        state = state.get("state_dict", state.get("model", state))
        if not isinstance(state, dict):
            raise DataError(f"{checkpoint_path} does not hold a state dict of weights for {name}")
        state = {k: v for k, v in state.items() if not k.startswith("head")}
        missing, _ = vit.load_state_dict(state, strict=False)
        if [k for k in missing if not k.startswith("head")]:
            raise DataError(f"{checkpoint_path} does not hold weights for {name}: missing {missing[:3]}...")
    if not isinstance(vit, VisionTransformer) or vit.cls_token is None:
        raise ConfigError(f"model.backbone={name!r} must be a timm VisionTransformer with a class token")
    return vit
