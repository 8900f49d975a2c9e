"""How often does nbclient's kernel client lose a reply's wake-up? (the cause of make test's 300-s stall)

Runs a notebook of small cells (print, display, short sleeps, a torch matmul) through nbclient, as nbmake and
papermill do, again and again in -j processes, next to --load processes that keep the cores busy (make test runs
the notebooks beside a second pytest worker). Every kernel channel polls in slices of --slice seconds
(tests/kernel_client.py); a slice that ends with a message already waiting on its socket is a lost wake-up, seen
directly: ZMQ_EVENTS has POLLIN while the poll slept. Without the slices each of them would have waited for the whole
cell timeout (300 s in make test).

    python bench/kernel_wakeups.py --minutes 10 -j 2 --load 1
    python bench/kernel_wakeups.py --notebook notebooks/00_playground.ipynb   # a real notebook, in smoke mode
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CELLS = [
    "import time, torch\nfrom IPython.display import display, Markdown",
    "print('x' * 80)",
    "display(Markdown('**cell**'))",
    "time.sleep(0.02)",
    "a = torch.randn(64, 64); (a @ a).sum().item()",
    "for i in range(3):\n    print(i)",
]


def notebook(repeats: int):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELLS[0])] + [nbformat.v4.new_code_cell(c) for c in CELLS[1:] * repeats]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def worker(seconds: float, slice_s: float, repeats: int, path: str | None, out: mp.Queue) -> None:
    import nbformat
    from nbclient import NotebookClient

    import kernel_client

    kernel_client.poll_in_slices(slice_s)
    cells, runs, slowest, end = 0, 0, 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        nb = nbformat.read(path, as_version=4) if path else notebook(repeats)
        where = {"path": str(Path(path).parent)} if path else {}
        t0 = time.monotonic()
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": where}).execute()
        runs += 1
        cells += len(nb.cells)
        slowest = max(slowest, time.monotonic() - t0)
    out.put({"runs": runs, "cells": cells, "slowest_notebook_s": slowest, "missed": dict(kernel_client.MISSED)})


def burn(seconds: float) -> None:
    end, x = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        x = (x * 1103515245 + 12345) % 2**31


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("-j", "--jobs", type=int, default=2, help="processes executing notebooks (default 2)")
    ap.add_argument("--load", type=int, default=1, help="processes that only burn CPU beside them")
    ap.add_argument("--slice", type=float, default=1.0, help="poll slice in seconds")
    ap.add_argument("--repeats", type=int, default=10, help="copies of the 5 small cells per notebook")
    ap.add_argument("--notebook", help="execute this notebook instead (in smoke mode, LTLAB_SMOKE=1); it must not "
                    "write where another copy of it is running")
    a = ap.parse_args()
    seconds = 60 * a.minutes
    if a.notebook:
        os.environ["LTLAB_SMOKE"] = "1"
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=worker, args=(seconds, a.slice, a.repeats, a.notebook, out)) for _ in range(a.jobs)]
    procs += [mp.Process(target=burn, args=(seconds,)) for _ in range(a.load)]
    for p in procs:
        p.start()
    results = [out.get() for _ in range(a.jobs)]
    for p in procs:
        p.join()
    cells = sum(r["cells"] for r in results)
    missed: dict[str, int] = {}
    for r in results:
        for k, v in r["missed"].items():
            missed[k] = missed.get(k, 0) + v
    total = sum(missed.values())
    print("| processes | load | minutes | notebooks | cells | lost wake-ups (by socket) | per 1,000 cells | "
          "slowest notebook |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {a.jobs} | {a.load} | {a.minutes:g} | {sum(r['runs'] for r in results)} | {cells} | "
          f"{total} {missed or ''} | {1000 * total / max(cells, 1):.2f} | "
          f"{max(r['slowest_notebook_s'] for r in results):.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
