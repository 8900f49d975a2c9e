"""compile=true against eager, side by side in one run: per-step time of SGD, SAM and GNM on the embedded preset's
model and batch, the first compile cold (an empty Inductor cache) and warm (the cache the cold one filled), and
the wall time of whole training runs of the preset both ways (what `make demo` is made of).

    python bench/compile_cost.py [--steps 30] [--optimizers sgd,sam,gnm] [--runs sgd,gnm] [--threads 1]

Every measurement runs in its own process (a fresh torch, so a compile is never shared by accident); the cold
and warm cache are TORCHINDUCTOR_CACHE_DIR set to a new temporary directory, then reused. Compiled graphs draw
dropout masks from their own generator, so a compiled run is a different (equally valid) run than the eager one.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def child_steps(name: str, compile_: bool, steps: int) -> dict:
    import torch

    from common import embedded

    from ltlab.optim import create_optimizer, make_closure
    from ltlab.train.compiled import compiled

    model, loss_fn, (x, y), cfg = embedded(128, device="cpu", loss="train")
    model.train()
    opt = create_optimizer(name, model.trainable_parameters(), base="sgd", lr=0.01, momentum=0.9,
                           weight_decay=1e-3, seed=0, class_counts=[1] * 64)
    forward = compiled(model) if compile_ else model
    closure = make_closure(opt, model, loss_fn, x, y, forward=forward)
    t0 = time.perf_counter()
    opt.step(closure)
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.step(closure)
        times.append(time.perf_counter() - t0)
    return {"first": first, "step": statistics.median(times), "threads": torch.get_num_threads()}


def child_run(name: str, compile_: bool, out: str) -> dict:
    from ltlab.config import load_config
    from ltlab.train import fit

    t0 = time.perf_counter()
    s = fit(load_config("synthetic", [f"optimizer.name={name}", f"compile={str(compile_).lower()}", "save_every=0",
                                      "log=jsonl"]), out=out, overwrite=True, progress=False)
    return {"wall": time.perf_counter() - t0, "overall": s["overall"], "sec_per_step": s["sec_per_step"]}


def spawn(args: list[str], cache: str | None, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
    out = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="timed steps after the first (default 30)")
    ap.add_argument("--optimizers", default="sgd,sam,gnm", help="methods timed per step (default sgd,sam,gnm)")
    ap.add_argument("--runs", default="sgd,gnm", help="methods trained as whole preset runs both ways ('' = none)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per process (default 2: the whole CPU)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, name, comp, *rest = a.child
        import torch

        torch.set_num_threads(a.threads)
        res = child_steps(name, comp == "1", int(rest[0])) if kind == "steps" else child_run(name, comp == "1", rest[0])
        print(json.dumps(res))
        return
    cache = tempfile.mkdtemp(prefix="inductor-cache-")
    print(f"embedded preset model, batch 128, {a.threads} thread(s) per process; median of {a.steps} steps after the "
          f"first; Inductor cache {cache} (cold = empty, warm = filled by the cold run)\n")
    print("| method | eager s/step | compiled s/step | speed-up | first step eager s | first compiled step, cold cache s "
          "| warm cache s | steps to repay the warm compile |")
    print("|---|---|---|---|---|---|---|---|")
    for name in a.optimizers.split(","):
        eager = spawn(["steps", name, "0", str(a.steps)], None, a.threads)
        cold = spawn(["steps", name, "1", str(a.steps)], cache, a.threads)
        warm = spawn(["steps", name, "1", str(a.steps)], cache, a.threads)
        gain = eager["step"] - warm["step"]
        repay = (warm["first"] - eager["first"]) / gain if gain > 0 else float("inf")
        print(f"| {name} | {eager['step']:.4f} | {warm['step']:.4f} | {eager['step'] / warm['step']:.2f}x | "
              f"{eager['first']:.2f} | {cold['first']:.1f} | {warm['first']:.1f} | {repay:.0f} |")
    runs = [n for n in a.runs.split(",") if n]
    if runs:
        out = tempfile.mkdtemp(prefix="compile-runs-")
        print("\nWhole runs of the embedded preset (8 epochs, 160 steps, validation twice, test once), warm cache:\n")
        print("| method | eager wall s | compiled wall s | ratio | eager s/step | compiled s/step | test overall eager / "
              "compiled |")
        print("|---|---|---|---|---|---|---|")
        for name in runs:
            e = spawn(["run", name, "0", f"{out}/{name}-eager"], None, a.threads)
            c = spawn(["run", name, "1", f"{out}/{name}-compiled"], cache, a.threads)
            print(f"| {name} | {e['wall']:.1f} | {c['wall']:.1f} | {c['wall'] / e['wall']:.2f} | "
                  f"{e['sec_per_step']:.4f} | {c['sec_per_step']:.4f} | {e['overall']:.2f} / {c['overall']:.2f} |")


if __name__ == "__main__":
    main()
