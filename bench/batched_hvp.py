"""One Hessian-vector product at a time vs `block` of them in one batched double backward (vmap).

Same model (the embedded ltlab-tiny VPT-deep, 8,640 trainable parameters), same batch, same vectors;
interleaved rounds so machine noise hits every block size alike; prints seconds per HVP (median over
rounds), the ratio to one-at-a-time, the largest relative difference of the products, and a Hutch++
trace with each block size (the same estimate to float rounding).

    python bench/batched_hvp.py [--images 256] [--hvps 32] [--blocks 1,4,8,16] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import embedded, median  # noqa: E402

from ltlab.probes import hessian_operator, hessian_trace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--hvps", type=int, default=32, help="products per round and block size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--blocks", default="1,4,8,16")
    ap.add_argument("--trace-hvps", type=int, default=99)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    blocks = sorted({1, *(int(b) for b in a.blocks.split(","))})  # one at a time is the reference
    model, loss_fn, batch, _ = embedded(a.images, device=a.device)
    times: dict[int, list[float]] = {b: [] for b in blocks}
    diff = dict.fromkeys(blocks, 0.0)
    with hessian_operator(model, loss_fn, batch) as op:
        V = torch.randn(op.dim, a.hvps, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(op.device)
        ref = op.apply(V, 1)  # warm-up, and the products every block size is compared with
        for _ in range(a.rounds):
            for b in blocks:
                if a.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                HV = op.apply(V, b)
                if a.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[b].append((time.perf_counter() - t0) / a.hvps)
                diff[b] = max(diff[b], float((HV - ref).abs().max() / ref.abs().max()))
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else "CPU"
    print(f"{op.dim} trainable parameters, {a.images} images, {a.hvps} HVPs x {a.rounds} interleaved rounds, {dev}")
    print("\n| block | s per HVP (median) | x block 1 | max rel. diff to block 1 |")
    print("|---|---|---|---|")
    for b in blocks:
        s = median(times[b])
        print(f"| {b} | {s:.4f} | {s / median(times[1]):.2f} | {diff[b]:.1e} |")
    print(f"\nHutch++ trace with {a.trace_hvps} HVPs:\n\n| block | estimate | stderr | seconds |\n|---|---|---|---|")
    for b in blocks:
        r = hessian_trace(model, loss_fn, batch, num_hvps=a.trace_hvps, block=b)
        print(f"| {b} | {r.estimate:.4f} | {r.stderr:.4f} | {r.seconds:.2f} |")


if __name__ == "__main__":
    main()
