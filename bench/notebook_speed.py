"""Wall time of a notebook at full size, cell by cell (what a user waits for when exploring).

Executes the notebook with the project's kernel (LTLAB_SMOKE=0), from the notebooks/ folder, and
prints the slowest cells and the total. The runs the notebook reads (runs/demo from `make demo`)
must exist, or the notebook trains them first (that time is counted too, and reported apart).

    python bench/notebook_speed.py notebooks/02_flatness.ipynb [--target 240]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook", nargs="?", default="notebooks/02_flatness.ipynb")
    ap.add_argument("--target", type=float, default=240.0, help="seconds the full-size run should stay under")
    ap.add_argument("--smoke", action="store_true", help="LTLAB_SMOKE=1 instead (the test-suite size)")
    ap.add_argument("--timeout", type=int, default=1800)
    a = ap.parse_args()

    import nbformat
    from nbclient import NotebookClient

    from kernel_client import wake_after_plain_send

    wake_after_plain_send()  # or a cell can wait its whole timeout for a reply already there (tests/kernel_client.py)

    path = Path(a.notebook).resolve()
    nb = nbformat.read(path, as_version=4)
    os.environ["LTLAB_SMOKE"] = "1" if a.smoke else "0"
    client = NotebookClient(nb, timeout=a.timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    times: list[tuple[float, int, str]] = []
    t_all = time.perf_counter()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t0 = time.perf_counter()
            client.execute_cell(cell, i)
            first = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")), "")
            times.append((time.perf_counter() - t0, i, first[:70]))
    total = time.perf_counter() - t_all
    print(f"{path.name} ({'smoke' if a.smoke else 'full'} size), {os.cpu_count()} CPUs\n")
    print("| cell | seconds | first line |\n|---|---|---|")
    for t, i, first in sorted(times, reverse=True)[:8]:
        print(f"| {i} | {t:.1f} | `{first}` |")
    print(f"\ntotal {total:.0f} s (kernel start included); target <= {a.target:.0f} s: "
          f"{'met' if total <= a.target else 'NOT met'}")


if __name__ == "__main__":
    main()
