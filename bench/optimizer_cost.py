"""Seconds per step and peak memory of SGD, SAM, ASAM, RSAM, GNM, ImbSAM, CC-SAM and Focal-SAM on the
embedded prompted ViT.

Same model, same batch, interleaved rounds (so machine noise hits every optimizer alike), warm-up
then the median over >= 20 timed steps each; printed as ratios to the plain base optimizer.
Peak memory: CUDA max_memory_allocated on a GPU (the CPU has no per-step allocator statistics).

    python bench/optimizer_cost.py [--base sgd|adamw] [--steps 30] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import embedded, median  # noqa: E402

from ltlab.config import EvalConfig  # noqa: E402
from ltlab.optim import OPTIMIZERS, create_optimizer, make_closure  # noqa: E402

# the base, then every method of the registry (the one list of methods)
NAMES = ["sgd", *(n for n, info in OPTIMIZERS.items() if info.base is None)]


def make(name: str, base: str, model, loss_fn, batch, diagnostics_every: int = 0):
    x, y = batch
    counts = torch.bincount(y, minlength=int(y.max()) + 1).tolist()  # ImbSAM: tail = classes under 20 here
    opt = create_optimizer(name, model.trainable_parameters(), base=base, lr=1e-3, momentum=0.9,
                           weight_decay=1e-3, seed=0, class_counts=[c if c else 1 for c in counts])
    closure = make_closure(opt, model, loss_fn, x, y)  # the trainer's closure: plain, class-aware, features+head
    count = [0]

    def step():  # as the trainer steps: the step diagnostics every `diagnostics_every` steps (0 = off)
        diagnose = bool(diagnostics_every) and count[0] % diagnostics_every == 0
        count[0] += 1
        return opt.step(closure, diagnose=diagnose)

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="sgd", choices=["sgd", "adamw"])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--diagnostics-every", type=int, default=EvalConfig.diagnostics_every,
                    help="step diagnostics every N steps, as in training (default: the trainer's, "
                         f"{EvalConfig.diagnostics_every}); 0 = off")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    names = [a.base if n == "sgd" else n for n in NAMES]
    model, loss_fn, batch, cfg = embedded(128, device=a.device, loss="train")
    model.train()
    steps = {n: make(n, a.base, model, loss_fn, batch, a.diagnostics_every) for n in names}
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    for n in names:  # warm-up
        for _ in range(3):
            steps[n]()
    times = {n: [] for n in names}
    per_round = max(1, a.steps // a.rounds)
    for _ in range(a.rounds):
        for n in names:
            for _ in range(per_round):
                sync()
                t0 = time.perf_counter()
                steps[n]()
                sync()
                times[n].append(time.perf_counter() - t0)
    mem = {}
    if a.device == "cuda":
        for n in names:
            m2, l2, b2, _ = embedded(128, device="cuda", loss="train")
            s = make(n, a.base, m2, l2, b2)
            torch.cuda.reset_peak_memory_stats()
            s()
            mem[n] = torch.cuda.max_memory_allocated() / 2**20
    rep = model.parameter_report()
    print(f"embedded prompted ViT ({cfg.model.backbone}, VPT-{cfg.model.mode} {cfg.model.prompt_length} tokens, "
          f"{rep['trainable']:,} trainable / {rep['total']:,} params), batch 128, device {a.device}, "
          f"{torch.get_num_threads()} threads, base {a.base}; step diagnostics every {a.diagnostics_every} steps "
          f"(0 = off); median and mean of {len(times[names[0]])} steps each\n")
    ref_t = median(times[names[0]])
    extra = sum(p.numel() * p.element_size() for p in model.trainable_parameters()) / 2**10
    ref_mean = sum(times[names[0]]) / len(times[names[0]])
    print(f"| optimizer | closures/step | s/step (median) | x {names[0]} | mean s/step (diagnosed steps included) | "
          f"x {names[0]} | IQR s | peak MB (CUDA) | x {names[0]} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in names:
        t, mean = median(times[n]), sum(times[n]) / len(times[n])
        q = torch.tensor(times[n]).quantile(torch.tensor([0.25, 0.75])).tolist()
        cps = OPTIMIZERS[n].closures_per_step
        m = f"{mem[n]:.0f} | {mem[n] / mem[names[0]]:.2f}" if mem else "- | -"
        print(f"| {n} | {cps} | {t:.4f} | {t / ref_t:.3f} | {mean:.4f} | {mean / ref_mean:.3f} | {q[1] - q[0]:.4f} | {m} |")
    if not mem:
        print(f"\nmemory on the CPU: a process-wide RSS peak cannot separate one step's allocations; the "
              f"perturbation methods hold one saved copy of the trainable tensors ({extra:.0f} KiB) plus the "
              f"perturbation itself during a step.")
    print("\ntargets (paper, ViT-B/16 on GPU): GNM/SGD 1.01-1.05, SAM/SGD 1.82-1.86")


if __name__ == "__main__":
    main()
