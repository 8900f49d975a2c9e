"""ltlab's probes against PyHessian and the loss-landscapes package, same model, same batch, one run.

    python bench/probes_vs_peers.py [--run runs/demo/gnm-s0] [--grid 41] [--quick]

Prints: lambda_max to 0.1% (HVPs, seconds) for ltlab Lanczos vs PyHessian power iteration at the
tolerances each needs; the top 5; the trace at equal standard error; a grid x grid surface against
the floor (the same number of plain forward passes) and against loss-landscapes; and how costs
grow with the number of trainable parameters (prompt length) and with the grid size.
PyHessian and loss-landscapes are optional (GPL-3.0 / MIT), imported only here.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import embedded  # noqa: E402

from ltlab.models import set_fused_attention  # noqa: E402
from ltlab.probes import hessian_trace, surface_2d, top_eigenvalues  # noqa: E402
from ltlab.probes.hvp import HessianOperator, probe_mode  # noqa: E402


class PyHessianCounter:
    """PyHessian with its HVP calls counted (it does not report them)."""

    def __init__(self, model, loss_fn, batch):
        import importlib

        ph = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports a class of that name)
        self.ph, self.count = ph, 0
        self.original = original = ph.hessian_vector_product

        def counted(*args, **kw):
            self.count += 1
            return original(*args, **kw)

        ph.hessian_vector_product = counted
        self.previous = set_fused_attention(model, False)  # PyHessian needs the math attention path too
        model.eval()
        self.h = ph.hessian(model, loss_fn, data=batch, cuda=False)

    def close(self):
        self.ph.hessian_vector_product = self.original
        for m, f in self.previous.items():
            m.fused_attn = f


def relerr(a, b):
    return abs(a - b) / abs(b)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/demo/gnm-s0", help="run directory whose last (headline) checkpoint is probed")
    ap.add_argument("--grid", type=int, default=41)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="small sizes (used by the test suite)")
    a = ap.parse_args()
    if a.quick:
        a.grid, a.images = 5, 32
    model, loss_fn, batch, cfg = embedded(a.images, split="val", run=a.run)
    trained = (Path(a.run) / "checkpoints" / "last.pt").exists()
    print(f"model: embedded prompted ViT, {model.parameter_report()['trainable']:,} trainable parameters, "
          f"{'checkpoint ' + a.run if trained else 'untrained prompts (no run found)'}; {a.images} held-out images; "
          f"{torch.get_num_threads()} threads\n")

    # ---- lambda_max -----------------------------------------------------------------------
    ref = top_eigenvalues(model, loss_fn, batch, k=5, tol=1e-9, max_iter=200)
    lam = ref.eigenvalues[0]
    print(f"reference (Lanczos, tol 1e-9): top-5 {np.round(ref.eigenvalues, 5).tolist()}\n")
    rows = []
    for tol in (1e-2, 1e-3, 1e-4):
        r = top_eigenvalues(model, loss_fn, batch, k=1, tol=tol)
        rows.append(("ltlab lanczos", tol, r.eigenvalues[0], r.hvps, r.seconds))
    try:
        for tol in (1e-3, 1e-4, 1e-5):
            ph = PyHessianCounter(model, loss_fn, batch)
            torch.manual_seed(0)
            t0 = time.perf_counter()
            ev, _ = ph.h.eigenvalues(top_n=1, tol=tol, maxIter=200)
            rows.append(("pyhessian power", tol, ev[0], ph.count, time.perf_counter() - t0))
            ph.close()
        have_pyhessian = True
    except ImportError:
        have_pyhessian = False
        print("(PyHessian not installed: pip install pyhessian)")
    print("| method | tol | lambda_max | rel. error | HVPs | seconds |")
    print("|---|---|---|---|---|---|")
    for name, tol, v, n, s in rows:
        print(f"| {name} | {tol:g} | {v:.6g} | {relerr(v, lam):.2e} | {n} | {s:.2f} |")
    ok = {name: min((n for nm, _, v, n, _ in rows if nm == name and relerr(v, lam) < 1e-3), default=None)
          for name in ("ltlab lanczos", "pyhessian power")}
    if have_pyhessian and ok["ltlab lanczos"] and ok["pyhessian power"]:
        print(f"\nHVPs to reach lambda_max within 0.1%: ltlab {ok['ltlab lanczos']}, PyHessian {ok['pyhessian power']} "
              f"(ratio {ok['ltlab lanczos'] / ok['pyhessian power']:.2f}; target <= 0.5)")

    # ---- top 5 ------------------------------------------------------------------------------
    r5 = top_eigenvalues(model, loss_fn, batch, k=5, tol=1e-3)
    line = f"\ntop-5: ltlab {r5.hvps} HVPs, {r5.seconds:.2f} s, max rel. error {max(relerr(r5.eigenvalues, ref.eigenvalues)):.1e}"
    if have_pyhessian:
        ph = PyHessianCounter(model, loss_fn, batch)
        torch.manual_seed(0)
        t0 = time.perf_counter()
        ev5, _ = ph.h.eigenvalues(top_n=5, tol=1e-3, maxIter=100)
        line += (f"; PyHessian {ph.count} HVPs, {time.perf_counter() - t0:.2f} s, max rel. error "
                 f"{max(relerr(np.sort(ev5)[::-1], ref.eigenvalues)):.1e} (target: ltlab <= 40 HVPs)")
        ph.close()
    print(line)

    # ---- trace at equal standard error ----------------------------------------------------------
    n = 30 if a.quick else 99
    hpp = hessian_trace(model, loss_fn, batch, method="hutch++", num_hvps=n)
    hut = hessian_trace(model, loss_fn, batch, method="hutchinson", num_hvps=n)
    need = (np.std(hut.samples, ddof=1) / hpp.stderr) ** 2
    print(f"\ntrace: hutch++ {hpp.estimate:.5g} ± {hpp.stderr:.2g} ({hpp.hvps} HVPs, {hpp.seconds:.2f} s); "
          f"hutchinson {hut.estimate:.5g} ± {hut.stderr:.2g} ({hut.hvps} HVPs)")
    print(f"Hutchinson (PyHessian's estimator) needs ~{need:.0f} HVPs for hutch++'s standard error "
          f"({need / hpp.hvps:.1f}x)")
    if have_pyhessian:
        ph = PyHessianCounter(model, loss_fn, batch)
        torch.manual_seed(0)
        t0 = time.perf_counter()
        samples = ph.h.trace(maxIter=n, tol=-1.0)  # never stop early: n samples
        sec = time.perf_counter() - t0
        ph.close()
        print(f"PyHessian trace {np.mean(samples):.5g} ± {np.std(samples, ddof=1) / np.sqrt(len(samples)):.2g} "
              f"({len(samples)} HVPs, {sec:.2f} s; it reports no error bar)")

    # ---- surfaces ------------------------------------------------------------------------------
    points = a.grid * a.grid
    model.eval()
    with torch.inference_mode():
        model(batch[0])
        t0 = time.perf_counter()
        for _ in range(points):
            model(batch[0])
        floor = time.perf_counter() - t0
    s = surface_2d(model, loss_fn, batch, steps=a.grid, progress=False)
    print(f"\n{a.grid}x{a.grid} surface on {a.images} images: ltlab {s.seconds:.1f} s; floor ({points} plain forward "
          f"passes) {floor:.1f} s; ratio {s.seconds / floor:.3f} (target <= 1.1)")
    try:
        import loss_landscapes
        import loss_landscapes.metrics

        metric = loss_landscapes.metrics.Loss(loss_fn, batch[0], batch[1])
        t0 = time.perf_counter()
        with torch.no_grad():
            loss_landscapes.random_plane(model, metric, distance=1.0, steps=a.grid, normalization="filter",
                                         deepcopy_model=True)
        print(f"loss-landscapes random_plane (same grid): {time.perf_counter() - t0:.1f} s "
              f"(it perturbs every parameter, frozen backbone included)")
    except ImportError:
        print("(loss-landscapes not installed: pip install loss-landscapes)")

    # ---- scaling -----------------------------------------------------------------------------------
    print("\nHVP cost against trainable parameters (one batch, graph built once):")
    print("| prompt length | trainable params | s per HVP | s per gradient | ratio |")
    print("|---|---|---|---|---|")
    for L in ([1, 10] if a.quick else [1, 5, 10, 20, 50]):
        m, lf, b, _ = embedded(a.images, split="val", prompt_length=L)
        ps = m.trainable_parameters()
        with probe_mode(m, ps, lf):
            op = HessianOperator(m, lf, [b], ps)
            v = torch.randn(op.dim, dtype=torch.float64)
            op.matvec(v)
            t0 = time.perf_counter()
            for _ in range(5):
                op.matvec(v)
            hvp = (time.perf_counter() - t0) / 5
        m.eval()
        t0 = time.perf_counter()
        for _ in range(5):
            torch.autograd.grad(lf(m(b[0]), b[1]), ps)
        grad = (time.perf_counter() - t0) / 5
        print(f"| {L} | {sum(p.numel() for p in ps):,} | {hvp:.4f} | {grad:.4f} | {hvp / grad:.2f} |")
    print("\nsurface time against grid size:")
    print("| grid | points | seconds | s per point |")
    print("|---|---|---|---|")
    for g in ([3, 5] if a.quick else [5, 11, 21]):
        s = surface_2d(model, loss_fn, batch, steps=g, progress=False)
        print(f"| {g}x{g} | {g * g} | {s.seconds:.2f} | {s.seconds / (g * g):.4f} |")


if __name__ == "__main__":
    main()
