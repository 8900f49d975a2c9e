"""Are two trainings of the same runs identical? Compares every run directory found in both A and B.

config.yaml value by value (keys only one side has are named: a newer ltlab adds options), metrics.jsonl row by
row (fields only one side logs are named) and summary.json, both apart from their timing fields (step times,
memory, wall time) and provenance, the scalar values of the TensorBoard files (tb/) where both runs have
them (probe/... scalars only where both runs were probed), and every tensor of every checkpoint with torch.equal.
Exit code 1 when anything differs.
Runs are reproducible on machines whose torch CPU kernels agree (provenance.cpu_capability, e.g. AVX2); a pair
trained with different ones is named (their floats differ in the last bits, and a run's accuracies in the second
decimal).

    python bench/same_runs.py runs/demo runs/family      # the family retrains the demo's runs
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from ltlab.train.runs import TIMING_FIELDS as TIMING  # noqa: E402
from ltlab.train.runs import read_jsonl  # noqa: E402


def flat(tree: dict, prefix: str = "") -> dict:
    """{'data.seed': 0, ...}: a nested config as dotted keys."""
    out = {}
    for k, v in tree.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def tb_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run / "tb"))
    ea.Reload()
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"] if t not in TIMING}


def compare_run(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """What differs between run directories a and b (empty: identical), and notes: the config keys only one of
    them has (a newer ltlab adds options; not a difference when everything the runs wrote is equal), and CPU
    kernels that differ (then equal runs are not expected)."""
    diffs, notes = [], []
    if (a / "config.yaml").read_bytes() != (b / "config.yaml").read_bytes():
        ca, cb = (flat(yaml.safe_load((d / "config.yaml").read_text())) for d in (a, b))
        changed = sorted(k for k in ca.keys() & cb.keys() if ca[k] != cb[k])
        if changed:
            diffs.append("config.yaml (" + ", ".join(f"{k}: {ca[k]!r} -> {cb[k]!r}" for k in changed) + ")")
        for side, keys in (("A", ca.keys() - cb.keys()), ("B", cb.keys() - ca.keys())):
            if keys:  # a newer ltlab adds options; the runs are compared on everything they wrote
                notes.append(f"config keys only {side} has: {', '.join(sorted(keys))}")
    ra, rb = ([{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(d / "metrics.jsonl")] for d in (a, b))
    fa, fb = (set().union(*rows) if rows else set() for rows in (ra, rb))
    # a field only one side logs (a newer ltlab's step diagnostics) is named; the rows are compared on the rest
    notes += [f"metrics fields only {side} logs: {', '.join(sorted(f))}" for side, f in (("A", fa - fb), ("B", fb - fa))
              if f]
    if len(ra) != len(rb) or any({k: r[k] for k in r if k in fb} != {k: q[k] for k in q if k in fa}
                                 for r, q in zip(ra, rb)):
        diffs.append("metrics.jsonl")
    if (a / "tb").exists() and (b / "tb").exists():
        sa, sb = tb_scalars(a), tb_scalars(b)
        # probe/... scalars exist only where a run was probed (make probes after make demo), diag/... only where
        # the run logged step diagnostics: compared where both have them
        trained = [{t for t in s if not t.startswith(("probe/", "diag/"))} for s in (sa, sb)]
        if trained[0] != trained[1] or any(sa[t] != sb[t] for t in sa.keys() & sb.keys()):
            diffs.append("tb/ scalars")
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    if {k: v for k, v in sa.items() if k not in TIMING} != {k: v for k, v in sb.items() if k not in TIMING}:
        diffs.append("summary.json")
    # None: a run from before ltlab recorded its kernels
    kernels = {s.get("provenance", {}).get("cpu_capability") for s in (sa, sb)} - {None}
    if len(kernels) > 1:
        notes.append(f"trained with different CPU kernels {sorted(kernels)}; equal runs are not expected")
    names = sorted(p.name for p in (a / "checkpoints").glob("*.pt"))
    if names != sorted(p.name for p in (b / "checkpoints").glob("*.pt")):
        diffs.append("checkpoint files")
    for ck in names:
        ta, tb = (torch.load(d / "checkpoints" / ck, weights_only=False)["model"] for d in (a, b))
        if ta.keys() != tb.keys() or not all(torch.equal(ta[k], tb[k]) for k in ta):
            diffs.append(f"checkpoints/{ck}")
    return diffs, notes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    common = sorted({p.parent.name for p in Path(args.a).glob("*/summary.json")}
                    & {p.parent.name for p in Path(args.b).glob("*/summary.json")})
    bad = 0
    for name in common:
        diffs, notes = compare_run(Path(args.a) / name, Path(args.b) / name)
        for note in notes:
            print(f"{name}: {note}")
        bad += bool(diffs)
        print(f"{name}: " + ("identical" if not diffs else "DIFFERS in " + ", ".join(diffs)))
    print(f"{len(common) - bad} of {len(common)} runs identical (timing fields and provenance aside)")
    sys.exit(1 if bad or not common else 0)


if __name__ == "__main__":
    main()
