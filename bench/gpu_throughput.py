"""Images/s and peak memory of SGD, SAM, RSAM, GNM for ViT-B/16 VPT-deep at 224 px, fp32 vs bf16.

Random tensors and randomly initialised weights (no download needed); throughput does not depend
on the weights. On a machine without CUDA it runs a tiny configuration so the script is exercised.

    python bench/gpu_throughput.py [--batch 128] [--steps 20] [--tiny]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ltlab.models import PromptedViT
from ltlab.optim import PAPER_COMPARISON, create_optimizer


def backbone(tiny: bool):
    from timm.models.vision_transformer import VisionTransformer

    if tiny:
        return VisionTransformer(img_size=32, patch_size=8, embed_dim=96, depth=4, num_heads=3, num_classes=0), 32
    return VisionTransformer(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, num_classes=0), 224


def measure(name: str, precision: str, a, device) -> tuple[float, float]:
    torch.manual_seed(0)
    vit, size = backbone(a.tiny)
    model = PromptedViT(vit, 100, prompt_length=10).to(device).train()
    opt = create_optimizer(name, model.trainable_parameters(), lr=0.005, momentum=0.9, weight_decay=1e-3, seed=0)
    x = torch.randn(a.batch, 3, size, size, device=device)
    y = torch.randint(0, 100, (a.batch,), device=device)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def closure():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        return loss

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        opt.step(closure)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.steps):
        sync()
        t0 = time.perf_counter()
        opt.step(closure)
        sync()
        times.append(time.perf_counter() - t0)
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return statistics.median(times), mem


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        a.tiny, a.batch, a.steps = True, min(a.batch, 32), min(a.steps, 5)
    print(f"{'tiny ViT 32 px' if a.tiny else 'ViT-B/16 224 px'}, VPT-deep 10 tokens, batch {a.batch}, "
          f"{torch.cuda.get_device_name(0) if device.type == 'cuda' else 'CPU'}; median of {a.steps} steps\n")
    rows = {(n, p): measure(n, p, a, device) for p in ("fp32", "bf16") for n in ("sgd", *PAPER_COMPARISON)}
    print("| optimizer | precision | s/step | images/s | x sgd (same precision) | peak GiB |")
    print("|---|---|---|---|---|---|")
    for (n, p), (t, m) in rows.items():
        print(f"| {n} | {p} | {t:.4f} | {a.batch / t:.0f} | {t / rows[('sgd', p)][0]:.3f} | {m:.2f} |")
    for n in ("sgd", "gnm"):
        print(f"bf16 speed-up {n}: {rows[(n, 'fp32')][0] / rows[(n, 'bf16')][0]:.2f}x")


if __name__ == "__main__":
    main()
