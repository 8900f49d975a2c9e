"""Are two trainings of the same runs identical? Compares every run directory found in both A and B.

metrics.jsonl and config.yaml byte for byte, summary.json apart from its timing fields and provenance, and every
tensor of every checkpoint with torch.equal. Exit code 1 when anything differs.

    python bench/same_runs.py runs/demo runs/family      # the family retrains the demo's runs
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

TIMING = {"sec_per_step", "images_per_sec", "peak_memory_mb", "process_peak_rss_mb", "wall_seconds", "provenance"}


def compare_run(a: Path, b: Path) -> list[str]:
    """What differs between run directories a and b (empty: identical)."""
    diffs = [f for f in ("metrics.jsonl", "config.yaml") if (a / f).read_bytes() != (b / f).read_bytes()]
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    if {k: v for k, v in sa.items() if k not in TIMING} != {k: v for k, v in sb.items() if k not in TIMING}:
        diffs.append("summary.json")
    names = sorted(p.name for p in (a / "checkpoints").glob("*.pt"))
    if names != sorted(p.name for p in (b / "checkpoints").glob("*.pt")):
        diffs.append("checkpoint files")
    for ck in names:
        ta, tb = (torch.load(d / "checkpoints" / ck, weights_only=False)["model"] for d in (a, b))
        if ta.keys() != tb.keys() or not all(torch.equal(ta[k], tb[k]) for k in ta):
            diffs.append(f"checkpoints/{ck}")
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    common = sorted({p.parent.name for p in Path(args.a).glob("*/summary.json")}
                    & {p.parent.name for p in Path(args.b).glob("*/summary.json")})
    bad = 0
    for name in common:
        diffs = compare_run(Path(args.a) / name, Path(args.b) / name)
        bad += bool(diffs)
        print(f"{name}: " + ("identical" if not diffs else "DIFFERS in " + ", ".join(diffs)))
    print(f"{len(common) - bad} of {len(common)} runs identical (timing fields and provenance aside)")
    sys.exit(1 if bad or not common else 0)


if __name__ == "__main__":
    main()
