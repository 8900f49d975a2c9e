"""How often does nbclient's kernel client lose a reply's wake-up, with jupyter_client as shipped and with the fix?
(the cause of make test's 300-s stall: tests/kernel_client.py)

Runs notebooks of small cells through nbclient, as nbmake and papermill do, again and again in -j processes, next to
--load processes that keep the cores busy (make test runs the notebooks beside a second pytest worker). Two kinds of
notebook: "plain" cells (print, display, a torch matmul) and "widget" cells that draw into an ipywidgets Output
widget the way ltlab.widgets does (clear_output(wait=True), then display), for which nbclient sends a state update on
the shell channel while it waits there for the reply. Each kind runs with jupyter_client as shipped and with the fix
(tests/kernel_client.py's wake_after_plain_send), --minutes each, one after another. Every poll runs in slices of
--slice seconds, and a slice that ends with a message queued and no wake-up pending is a lost wake-up, seen
directly; without the slices each would have cost the whole cell timeout (300 s in make test).

    python bench/kernel_wakeups.py --minutes 2 -j 2 --load 1
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SETUP = ("import time, torch\nimport ipywidgets as W\nfrom IPython.display import display, Markdown\n"
         "out = W.Output()\ndisplay(out)")
CELLS = {
    "plain": ["print('x' * 80)", "display(Markdown('**cell**'))", "a = torch.randn(64, 64); (a @ a).sum().item()",
              "for i in range(3):\n    print(i)"],
    "widget": ["out.clear_output(wait=True)\nwith out:\n    display(Markdown('**figure**'))",  # as ltlab.widgets._show
               "with out:\n    print('x' * 80)", "a = torch.randn(64, 64); (a @ a).sum().item()",
               "out.clear_output(wait=True)\nwith out:\n    print(time.time())"],
}


def notebook(kind: str, repeats: int):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [SETUP] + CELLS[kind] * repeats]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def worker(kind: str, fixed: bool, seconds: float, slice_s: float, repeats: int, out: mp.Queue) -> None:
    from nbclient import NotebookClient

    import kernel_client

    kernel_client.poll_in_slices(slice_s)
    if fixed:
        kernel_client.wake_after_plain_send()
    cells, runs, slowest, end = 0, 0, 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        nb = notebook(kind, repeats)
        t0 = time.monotonic()
        NotebookClient(nb, timeout=300, kernel_name="python3").execute()
        runs += 1
        cells += len(nb.cells)
        slowest = max(slowest, time.monotonic() - t0)
    out.put({"runs": runs, "cells": cells, "slowest_notebook_s": slowest, "missed": dict(kernel_client.MISSED)})


def burn(seconds: float) -> None:
    end, x = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        x = (x * 1103515245 + 12345) % 2**31


def measure(kind: str, fixed: bool, a: argparse.Namespace) -> dict:
    seconds = 60 * a.minutes
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=worker, args=(kind, fixed, seconds, a.slice, a.repeats, out)) for _ in range(a.jobs)]
    procs += [mp.Process(target=burn, args=(seconds,)) for _ in range(a.load)]
    for p in procs:
        p.start()
    results = [out.get() for _ in range(a.jobs)]
    for p in procs:
        p.join()
    missed: dict[str, int] = {}
    for r in results:
        for k, v in r["missed"].items():
            missed[k] = missed.get(k, 0) + v
    return {"runs": sum(r["runs"] for r in results), "cells": sum(r["cells"] for r in results), "missed": missed,
            "slowest": max(r["slowest_notebook_s"] for r in results)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="per notebook kind and client (4 measurements)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="processes executing notebooks (default 2)")
    ap.add_argument("--load", type=int, default=1, help="processes that only burn CPU beside them")
    ap.add_argument("--slice", type=float, default=1.0, help="poll slice in seconds")
    ap.add_argument("--repeats", type=int, default=10, help="copies of the 4 cells per notebook")
    ap.add_argument("--kinds", default="plain,widget", help="notebook kinds to run (plain, widget)")
    a = ap.parse_args()
    print(f"{a.jobs} processes running notebooks beside {a.load} CPU burner(s), {a.minutes:g} min per row, "
          f"{a.slice:g}-s poll slices\n")
    print("| cells | jupyter_client | notebooks | cells run | lost wake-ups (by socket) | per 1,000 cells | "
          "slowest notebook |")
    print("|---|---|---|---|---|---|---|")
    for kind in a.kinds.split(","):
        for fixed in (False, True):
            r = measure(kind, fixed, a)
            total = sum(r["missed"].values())
            print(f"| {kind} | {'fixed' if fixed else 'as shipped'} | {r['runs']} | {r['cells']} | "
                  f"{total} {r['missed'] or ''} | {1000 * total / max(r['cells'], 1):.2f} | {r['slowest']:.1f} s |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
