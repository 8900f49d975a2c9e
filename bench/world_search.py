"""Search for the embedded world: is the task in the paper's regime? (issue 21)

One candidate world = the embedded preset plus overrides (task, backbone, recipe). For each candidate
this trains ONLY the base optimizer with VPT and the linear probe (the same config with
`model.prompt_length=0`) on paired seeds, and prints the properties that favour no sharpness method:

  (a) VPT - probe, mean paired difference overall and its 95 % t-interval  (target >= 3, lower end > 0)
  (b) many - few of the VPT base run                                         (target >= 15)
  (c) relative drop of the training CE at w over the last quarter of epochs  (target < 5 %)
  (d) standard error of one run's test accuracy, overall and few             (target <= 0.5 / <= 1)
  (e) the demo's time estimated from the base run: 3 seeds x (base + 2 + 2 + 1 (sam, rsam, gnm) + probe
      run times) / 2 workers, in units of `bench/optimizer_cost.py`'s SGD step (target <= 4,800)

SAM, RSAM and GNM are never run here: the world is chosen on (a)-(e) alone.

    python bench/world_search.py NAME [key=value ...] [--seeds 3] [--sgd-step 0.12] [--out runs/world]
    python bench/world_search.py --table [--sgd-step 0.0874]   # the design-search table from the log
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ltlab.config import load_config
from ltlab.stats import mean_std, paired_difference
from ltlab.experiments.compare import compare


def quarter_drop(run: Path, epochs: int) -> float:
    """Relative drop of train_ce_at_w over the last quarter of the epochs (percent)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    ce = {int(r["epoch"]): r["train_ce_at_w"] for r in rows if "train_ce_at_w" in r}
    last = max(ce)
    start = last - max(1, epochs // 4)  # the loss after epoch `start`, i.e. when the last quarter begins
    return 100.0 * (ce[start] - ce[last]) / ce[start]


def table(log: str, sgd_step: float) -> str:
    """Markdown: one row per candidate world in the log, its numbers on (a)-(e)."""
    lines = ["| candidate | overrides | VPT val | VPT overall | probe overall | (a) VPT − probe [95 % CI] | (b) many − few | "
             "(c) last-quarter drop | (d) s.e. overall / few | (e) demo est. s (SGD steps) |", "|" + "---|" * 10]
    for line in Path(log).read_text().splitlines():
        r = json.loads(line)
        a = r["a_diff"]
        steps = r["e_demo_seconds_est"] / sgd_step if sgd_step == sgd_step else float("nan")
        lines.append(f"| {r['name']} | {' '.join(r['overrides']) or '(today’s preset)'} | "
                     f"{r.get('vpt_val_overall', float('nan')):.2f} | {r['vpt_overall'][0]:.2f} | "
                     f"{r['probe_overall'][0]:.2f} | {a[0]:+.2f} [{a[1]:+.2f}, {a[2]:+.2f}] | "
                     f"{r['b_many_minus_few']:.1f} | {r['c_last_quarter_drop_pct']:+.1f} % | "
                     f"{r['d_se_overall']:.2f} / {r['d_se_few']:.2f} | {r['e_demo_seconds_est']:.0f} ({steps:.0f}) |")
    return "\n".join(lines)


def last_val(run: Path) -> float:
    """Overall validation accuracy at the last epoch (what chooses among settings: never the test set)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r["val"]["overall"] for r in rows if "val" in r][-1]


def main() -> None:
    if "--table" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--table", action="store_true")
        ap.add_argument("--sgd-step", type=float, default=float("nan"))
        ap.add_argument("--log", default="bench/world_search.jsonl")
        a = ap.parse_args()
        print(table(a.log, a.sgd_step))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--config", default="synthetic")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("-j", "--jobs", type=int, default=2, help="runs trained at once")
    ap.add_argument("--sgd-step", type=float, default=float("nan"), help="today's SGD step of optimizer_cost.py (s)")
    ap.add_argument("--out", default="runs/world")
    ap.add_argument("--log", default="bench/world_search.jsonl")
    a = ap.parse_args()
    cfg = load_config(a.config, a.overrides)
    probe_cfg = load_config(a.config, a.overrides + ["model.prompt_length=0"])
    out = Path(a.out) / a.name
    base = cfg.optimizer.name
    vpt = compare(cfg, [base], a.seeds, out / "vpt", workers=a.jobs, reuse=True)
    lin = compare(probe_cfg, [base], a.seeds, out / "probe", workers=a.jobs, reuse=True)
    diff = paired_difference([r["overall"] for r in lin], [r["overall"] for r in vpt])
    gap = [r["many"] - r["few"] for r in vpt]
    drops = [quarter_drop(Path(r["run"]), cfg.epochs) for r in vpt]
    t_vpt = mean_std([r["wall_seconds"] for r in vpt])[0]
    t_lin = mean_std([r["wall_seconds"] for r in lin])[0]
    demo_s = a.seeds * (t_vpt * (1 + 2 + 2 + 1) + t_lin) / a.jobs
    rec = {
        "name": a.name, "overrides": a.overrides, "seeds": a.seeds,
        "vpt_overall": mean_std([r["overall"] for r in vpt])[:2],
        "probe_overall": mean_std([r["overall"] for r in lin])[:2],
        "a_diff": [diff.mean, diff.lo, diff.hi], "a_per_seed": [v["overall"] - p["overall"] for v, p in zip(vpt, lin)],
        "b_many_minus_few": mean_std(gap)[0], "vpt_many_medium_few": [mean_std([r[g] for r in vpt])[0]
                                                                      for g in ("many", "medium", "few")],
        "c_last_quarter_drop_pct": max(drops),
        "d_se_overall": max(r["se_overall"] for r in vpt), "d_se_few": max(r["se_few"] for r in vpt),
        "e_demo_seconds_est": demo_s, "e_in_sgd_steps": demo_s / a.sgd_step,
        "run_seconds": {"vpt": t_vpt, "probe": t_lin},
        "vpt_val_overall": mean_std([last_val(Path(r["run"])) for r in vpt])[0],
    }
    line = json.dumps(rec)
    print(line)
    with open(a.log, "a") as f:
        f.write(line + "\n")
    ok = (diff.mean >= 3 and diff.lo > 0, rec["b_many_minus_few"] >= 15, rec["c_last_quarter_drop_pct"] < 5,
          rec["d_se_overall"] <= 0.5 and rec["d_se_few"] <= 1, rec["e_in_sgd_steps"] <= 4800)
    print(f"{a.name}: (a) {diff.mean:+.2f} [{diff.lo:+.2f}, {diff.hi:+.2f}]  (b) {rec['b_many_minus_few']:.1f}  "
          f"(c) {rec['c_last_quarter_drop_pct']:.1f} %  (d) {rec['d_se_overall']:.2f} / {rec['d_se_few']:.2f}  "
          f"(e) {demo_s:.0f} s = {rec['e_in_sgd_steps']:.0f} SGD steps  ->  " + " ".join("ok" if o else "NO" for o in ok),
          file=sys.stderr)


if __name__ == "__main__":
    main()
