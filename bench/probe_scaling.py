"""Probes at scale, measured side by side in one run: memory against the number of images, 2 gloo ranks
against 1 process, and an HVP's cost in gradients.

    python bench/probe_scaling.py [--run runs/demo/gnm-s0] [--small 1000] [--large 6000] [--batch-size 250]

1. Peak memory (RSS, each measurement in a fresh process, the peak reset after the run and its data are
   loaded, Linux's /proc/self/clear_refs) of the eig probe on the validation split over
   `small` vs `large` images streamed in batches of `batch-size`: the probe set is a DataLoader walked on
   every product, so the ratio should stay near 1 (issue 24's target: <= 1.1x). The Lanczos iteration is
   capped (`--iters` products): memory does not depend on how many products are made.
2. The same probe (lambda_max, `--iters` products, `small` images) on 2 gloo ranks with 1 thread each
   (torchrun) vs 1 process with 2 threads, on this machine; results must agree, and the time ratio is
   stated whatever it is (the speed-up is for many GPUs).
3. A 5 x 5 loss surface on 2 gloo ranks, data-parallel per grid point (ltlab's layout) vs split by grid point.
4. One HVP's cost in units of one gradient (forward + backward) on the same batch: curvlinops' convention.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def probe_job(run: str, images: int, batch_size: int, iters: int, threads: int) -> dict:
    """Load the run, stream `images` validation images, lambda_max with `iters` products; RSS and timings."""
    from ltlab.probes import top_eigenvalues
    from ltlab.results.probing import probe_set
    from ltlab.train.runs import load_run
    from ltlab.utils import dist_rank_world

    torch.set_num_threads(threads)
    r = load_run(run)
    model, data, _ = r.build(r.headline_checkpoint)
    before = reset_peak()  # building the data set peaks higher than the probe: measure the probe's part alone
    loader = probe_set(data.val, images, batch_size, seed=0)
    t0 = time.perf_counter()
    res = top_eigenvalues(model, torch.nn.CrossEntropyLoss(), loader, k=1, max_iter=iters, tol=1e-12)
    seconds = time.perf_counter() - t0
    peak = status_mb("VmHWM")
    return {"images": images, "rss_before_mb": before, "rss_peak_mb": peak, "seconds": seconds,
            "lambda_max": float(res.eigenvalues[0]), "hvps": res.hvps, "world": dist_rank_world()[1]}


def surface_layouts(run: str, images: int, batch_size: int, steps: int) -> dict:
    """Under torchrun: a steps x steps loss surface over `images` validation images, laid out two ways and timed.
    data: every rank evaluates every grid point on its shard (ltlab's layout); grid: every rank evaluates its share
    of the grid points on all the images. Both give the same surface."""
    import torch.distributed as dist

    from ltlab.probes import random_direction, surface_2d
    from ltlab.probes.hvp import probe_mode, select_params
    from ltlab.results.probing import probe_set
    from ltlab.train.runs import load_run

    r = load_run(run)
    model, data, _ = r.build(r.headline_checkpoint)
    loss_fn = torch.nn.CrossEntropyLoss()
    dist.barrier()
    t0 = time.perf_counter()
    a = surface_2d(model, loss_fn, probe_set(data.val, images, batch_size, seed=0), steps=steps, progress=False)
    dist.barrier()
    t_data = time.perf_counter() - t0
    # the other layout, written out here: the grid split over ranks, every rank reading every image
    from torch.utils.data import DataLoader, Subset

    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.val), generator=g)[:images].tolist()
    loader = DataLoader(Subset(data.val, idx), batch_size=batch_size, shuffle=False)
    ps = [p for _, p in select_params(model)]
    gen = torch.Generator().manual_seed(0)
    dirs = [random_direction(ps, gen), random_direction(ps, gen)]
    coords = [(i, j) for i in range(steps) for j in range(steps)]
    xs = a.x
    rank, world = dist.get_rank(), dist.get_world_size()
    t0 = time.perf_counter()
    mine = {}
    with probe_mode(model, ps, loss_fn), torch.no_grad():
        base = [p.detach().clone() for p in ps]
        for i, j in coords[rank::world]:
            for k, p in enumerate(ps):
                p.copy_(base[k] + float(xs[j]) * dirs[0][k] + float(xs[i]) * dirs[1][k])
            total = sum(float(loss_fn(model(x), y)) * len(y) for x, y in loader)
            mine[(i, j)] = total / len(idx)
    parts = [None] * world
    dist.all_gather_object(parts, mine)
    t_grid = time.perf_counter() - t0
    grid = {k: v for part in parts for k, v in part.items()}
    diff = max(abs(grid[(i, j)] - a.loss[i, j]) for i, j in coords)
    return {"data_s": t_data, "grid_s": t_grid, "max_abs_diff": diff}


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak() -> float:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux: /proc/self/clear_refs 5); returns the RSS in MB."""
    Path("/proc/self/clear_refs").write_text("5")
    return status_mb("VmRSS")


def in_fresh_process(args: list[str], env: dict | None = None, torchrun: int = 0) -> dict:
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--nproc_per_node", str(torchrun), "--master_port",
                               "29533"] if torchrun else []) + [__file__, "--job", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {}),
                                                                    "PYTHONPATH": str(ROOT)}, timeout=3600)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def hvp_in_gradients(run: str, images: int, repeats: int = 5) -> tuple[float, float, float]:
    from ltlab.probes.hvp import hessian_operator
    from ltlab.results.probing import probe_batch
    from ltlab.train.runs import load_run

    r = load_run(run)
    model, data, _ = r.build(r.headline_checkpoint)
    x, y = probe_batch(data.val, images, seed=0)
    loss_fn = torch.nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    from ltlab.models import set_fused_attention

    previous = set_fused_attention(model, False)  # the same math attention path the probes use
    grad_s = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        torch.autograd.grad(loss_fn(model(x), y), params)
        grad_s.append(time.perf_counter() - t0)
    for m, f in previous.items():
        m.fused_attn = f
    v = torch.randn(sum(p.numel() for p in params), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stream_s, cached_s = [], []
    with hessian_operator(model, loss_fn, [(x, y)]) as op:  # a list of one batch: streamed (forward every product)
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            op.matvec(v)
            stream_s.append(time.perf_counter() - t0)
    with hessian_operator(model, loss_fn, (x, y)) as op:  # one batch: gradient graph cached once
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            op.matvec(v)
            cached_s.append(time.perf_counter() - t0)
    med = lambda s: sorted(s[1:])[len(s[1:]) // 2]  # noqa: E731 (first call warms up)
    return med(grad_s), med(stream_s), med(cached_s)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/demo/gnm-s0")
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=6000)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--iters", type=int, default=6, help="Lanczos products per measurement")
    ap.add_argument("--job", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.job is not None:
        run, images, bs, iters, threads = a.job[:5]
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch.distributed as dist

            dist.init_process_group("gloo")
        torch.set_num_threads(int(threads))
        out = (surface_layouts(run, int(images), int(bs), int(iters)) if a.job[5:] == ["surface"]
               else probe_job(run, int(images), int(bs), int(iters), int(threads)))
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(out))
        return
    if not (Path(a.run) / "checkpoints" / "last.pt").exists():
        raise SystemExit(f"no run at {a.run}: run `make demo` first (or pass --run RUN_DIR)")
    print(f"run {a.run}; validation images streamed in batches of {a.batch_size}; lambda_max with {a.iters} HVPs")
    small = in_fresh_process([a.run, str(a.small), str(a.batch_size), str(a.iters), "2"])
    large = in_fresh_process([a.run, str(a.large), str(a.batch_size), str(a.iters), "2"])
    print("\n| images | RSS after loading run and data (MB) | peak RSS during the probe (MB) | probe's own (MB) | s |")
    print("|---|---|---|---|---|")
    for r in (small, large):
        print(f"| {r['images']} | {r['rss_before_mb']:.0f} | {r['rss_peak_mb']:.0f} | "
              f"{r['rss_peak_mb'] - r['rss_before_mb']:.0f} | {r['seconds']:.1f} |")
    print(f"peak memory {a.large} / {a.small} images: {large['rss_peak_mb'] / small['rss_peak_mb']:.3f}x "
          f"(one batch of {a.batch_size} at a time; target <= 1.1x)")

    one = in_fresh_process([a.run, str(a.small), str(a.batch_size), str(a.iters), "2"])
    two = in_fresh_process([a.run, str(a.small), str(a.batch_size), str(a.iters), "1"], env={"OMP_NUM_THREADS": "1"},
                           torchrun=2)
    print(f"\nlambda_max over {a.small} images, {a.iters} HVPs: 1 process x 2 threads {one['seconds']:.1f} s "
          f"({one['lambda_max']:.6g}); 2 gloo ranks x 1 thread {two['seconds']:.1f} s ({two['lambda_max']:.6g}, "
          f"world_size {two['world']}); time ratio 2 ranks / 1 process = {two['seconds'] / one['seconds']:.2f}; "
          f"relative difference {abs(two['lambda_max'] - one['lambda_max']) / abs(one['lambda_max']):.1e} (float32)")

    lay = in_fresh_process([a.run, str(a.small), str(a.batch_size), "5", "1", "surface"], env={"OMP_NUM_THREADS": "1"},
                           torchrun=2)
    print(f"\n5 x 5 surface over {a.small} images on 2 gloo ranks: data-parallel per grid point (ltlab) "
          f"{lay['data_s']:.1f} s, split by grid point {lay['grid_s']:.1f} s (ratio {lay['grid_s'] / lay['data_s']:.2f}); "
          f"largest difference between the two surfaces {lay['max_abs_diff']:.1e}")

    torch.set_num_threads(2)
    g, s, c = hvp_in_gradients(a.run, a.batch_size)
    print(f"\none HVP on {a.batch_size} images: {s / g:.2f} gradients streamed (forward + double backward each "
          f"product), {c / g:.2f} gradients with the one-batch cached graph (gradient {g * 1e3:.0f} ms, "
          f"HVP {s * 1e3:.0f} / {c * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
