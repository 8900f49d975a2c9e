"""Rebuild the bundled backbone: train ltlab-tiny from scratch on the synthetic source task.

The source task (64 balanced (shape, hue) classes, each image on a random texture) is related to but
different from the long-tailed target task (shape, hue, texture triples), as a pretrained backbone
should be. Two objectives:

- the [CLS] token classifies (shape, hue): for the [CLS] summary, texture is a nuisance, so a linear
  probe on [CLS] reads the target's texture only weakly;
- with ``texture_weight > 0``, the mean of the patch tokens also classifies the texture (a dense,
  local objective, as real backbones' patch tokens carry local appearance the [CLS] summary drops). The
  information the target needs then lives plainly in the tokens, only partly in the [CLS] summary: prompts, which
  attend to every token in every block, can route it to the feature; a linear probe cannot.

`python -m ltlab pretrain` writes ltlab/models/weights/ltlab_tiny_vit.pt and a YAML record of how.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from ..data.synthetic import source_task
from ..data.transforms import TensorAugment
from ..models.backbones import BUNDLED, WEIGHTS_DIR, new_bundled_backbone
from ..utils import resolve_device, seed_everything


def pretrain_backbone(
    out: str | Path | None = None,
    epochs: int = 8,
    n_per_class: int = 400,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    device: str = "auto",
    name: str = "ltlab-tiny",
    texture_weight: float = 1.0,
) -> dict:
    """Train the bundled ViT + a linear head on the source task; save the backbone weights (no head).

    out=None replaces the bundled weights in the package (the CLI asks for --replace-bundled).
    """
    from ..errors import ConfigError

    for arg, value in (("--epochs", epochs), ("--n-per-class", n_per_class), ("--batch-size", batch_size)):
        if value < 1:
            raise ConfigError(f"{arg} {value}: must be at least 1")
    if not texture_weight >= 0:
        raise ConfigError(f"--texture-weight {texture_weight}: must be >= 0 (0 = no dense texture objective)")
    seed_everything(seed)
    dev = resolve_device(device)
    t0 = time.time()
    x, y, tex = source_task(n_per_class, 32, seed=seed + 1, with_texture=True)
    xt, yt = source_task(50, 32, seed=seed + 2)
    vit = new_bundled_backbone(name).to(dev)
    head = torch.nn.Linear(vit.embed_dim, int(y.max()) + 1).to(dev)
    tex_head = torch.nn.Linear(vit.embed_dim, int(tex.max()) + 1).to(dev)  # on the mean patch token
    params = list(vit.parameters()) + list(head.parameters()) + list(tex_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(y) / batch_size)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    aug, plain = TensorAugment(train=True), TensorAugment(train=False)
    bar = tqdm(total=steps, desc="pretrain", unit="step")
    for _ in range(epochs):
        vit.train()
        for idx in torch.randperm(len(y)).split(batch_size):
            xb = torch.stack([aug(x[i]) for i in idx]).to(dev)
            tokens = vit.forward_features(xb)  # (B, 1 + patches, D), normalised
            loss = F.cross_entropy(head(tokens[:, 0]), y[idx].to(dev), label_smoothing=0.1)
            if texture_weight > 0:
                loss = loss + texture_weight * F.cross_entropy(tex_head(tokens[:, 1:].mean(1)), tex[idx].to(dev),
                                                               label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    vit.eval()
    with torch.no_grad():
        pred = torch.cat([head(vit(torch.stack([plain(i) for i in xb]).to(dev))).argmax(1).cpu()
                          for xb in xt.split(500)])
    acc = (pred == yt).float().mean().item()
    out = Path(out) if out else WEIGHTS_DIR / BUNDLED[name].weights
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in vit.state_dict().items()}
    from .runs import _atomic_write_bytes

    _atomic_write_bytes(out, lambda f: torch.save(state, f))
    record = {
        "backbone": name, "architecture": BUNDLED[name].kwargs,
        "source_task": "synthetic (shape, hue): 64 classes on [CLS]"
        + (f"; texture (6 kinds) on the mean patch token, weight {texture_weight}" if texture_weight > 0 else ""),
        "texture_weight": texture_weight,
        "n_per_class": n_per_class, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "seed": seed, "source_test_accuracy": round(acc, 4),
        "seconds": round(time.time() - t0, 1), "command": f"python -m ltlab pretrain --texture-weight {texture_weight}",
        "torch": str(torch.__version__),
    }
    out.with_suffix(".yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    return record
