"""Does a method's flatness depend on which loss the Hessian is taken of? Plain CE against the run's own loss.

    python bench/flatness_by_loss.py [--runs runs/study_gcl_confirm/eval] [--base sgd] [--images N] [-j 2]
                                     [--out OUT]

Every study probes its runs under plain cross-entropy (`compare --probe`, RUN_DIR/probes/scalars.json), so that
runs trained with different losses are measured alike. A run trained with GCL + DRW minimises another function,
though: cosine logits with GCL's margins, class-balanced weights after the DRW epoch. This script measures the same
scalars (λ_max, λ_min, Hutch++ trace, Gaussian sharpness, λ_max per class group; the same images, seed and budget)
under each run's own training loss in its deterministic form (no GCL noise, the DRW weights of the checkpoint's
epoch; RUN_DIR/probes/scalars_train.json, reused on a rerun), and prints both side by side: each method's mean ±
std, each method − the base paired by seed, how well the two losses rank the runs alike, and the within-seed
association of few-class λ_max with few-class test accuracy under each. Exploratory (each table states its
count of intervals). Writes OUT/flatness_by_loss.md (default: beside the runs directory).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from ltlab.probes.budget import BUDGET
from ltlab.reports.study import FLAT_SHOWN, spearman, within_seed_spearman
from ltlab.results import aggregate, finished_runs, is_reference, learning_rates, paired_table, summary_row
from ltlab.results.probing import add_flatness_columns
from ltlab.results.tables import format_table, lr_sentence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="runs/study_gcl_confirm/eval", help="a directory of finished, probed runs")
    ap.add_argument("--base", default="sgd", help="the method the others are paired against")
    ap.add_argument("--images", type=int, default=None,
                    help="probe images (default: the count the runs' plain-CE scalars were measured on)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="runs probed at once")
    ap.add_argument("--out", default=None, help="where flatness_by_loss.md goes (default: the runs' parent)")
    a = ap.parse_args()
    runs = Path(a.runs)
    found = finished_runs(runs)
    rows = [r for r in (summary_row(run.summary, run.path) for run in found) if not is_reference(r["label"])]
    if not rows or any(r.get("lambda_max") is None for r in rows):
        sys.exit(f"{runs}: needs finished runs probed under plain CE (`ltlab compare --probe`, or a study)")
    if a.base not in {r["label"] for r in rows}:
        sys.exit(f"--base {a.base}: no such method in {runs}; choose from {sorted({r['label'] for r in rows})}")
    rows.sort(key=lambda r: r["label"] != a.base)  # the base first: format_table's ratios and pairs use it
    ce = json.loads((Path(rows[0]["run"]) / "probes" / "scalars.json").read_text())
    images = a.images or ce["images_requested"]
    hvps = ce.get("trace_hvps", BUDGET.scalar_trace_hvps)  # the trace budget the plain-CE column was measured with
    train = add_flatness_columns(copy.deepcopy(rows), images, workers=a.jobs, loss="train", trace_hvps=hvps)
    labels = list(dict.fromkeys(r["label"] for r in rows))
    text = [f"# Flatness under plain CE and under the training loss (`{' '.join(['python', *sys.argv])}`)", "",
            f"{len(rows)} runs of {', '.join(labels)} in `{runs}` (seeds {min(r['seed'] for r in rows)}–"
            f"{max(r['seed'] for r in rows)}), each probed at its reported checkpoint on the same {images} training "
            f"images (evaluation transforms, probe seed 0), the trace from {hvps} Hutch++ products, the group λ_max "
            "on equal-size group batches. "
            f"Training loss: {loss_of(found[0].config)}, in its deterministic form.", ""]
    for name, rs in (("plain cross-entropy (what the studies report)", rows), ("the run's own training loss", train)):
        text += [f"## Under {name}", "",
                 format_table(aggregate(rs, extra=FLAT_SHOWN), paired_table(rs, a.base, metrics=FLAT_SHOWN),
                              columns=FLAT_SHOWN), ""]
    note = lr_sentence(learning_rates(found), a.base)
    text += [note, ""] if note else []
    text += ["## Do the two losses rank the runs alike?", "",
             "| measure | Spearman ρ across runs, CE vs training loss [95 %] | within a seed (methods only) |",
             "|---|---|---|"]
    for c in FLAT_SHOWN:
        x, y, seeds = [r[c] for r in rows], [r[c] for r in train], [r["seed"] for r in rows]
        rho, lo, hi = spearman(x, y)
        w, wlo, whi = within_seed_spearman(x, y, seeds)
        text.append(f"| {c} | {rho:+.2f} [{lo:+.2f}, {hi:+.2f}] | {w:+.2f} [{wlo:+.2f}, {whi:+.2f}] |")
    text += ["", "## Few-class λ_max against few-class test accuracy, within a seed", "",
             "| loss of the Hessian | n | Spearman ρ [95 %, 2,000 resamples of seeds] |", "|---|---|---|"]
    for name, rs in (("plain CE", rows), ("training loss", train)):
        rho, lo, hi = within_seed_spearman([r["lambda_max_few"] for r in rs], [r["few"] for r in rs],
                                           [r["seed"] for r in rs])
        text.append(f"| {name} | {len(rs)} | {rho:+.2f} [{lo:+.2f}, {hi:+.2f}] |")
    out = Path(a.out) if a.out else runs.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "flatness_by_loss.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def loss_of(config: dict) -> str:
    """The training loss a run's config names, with DRW where it uses it."""
    loss = config["loss"]
    return loss["name"] + (f" + DRW from epoch {loss['drw_epoch']}" if loss.get("drw_epoch") else "")


if __name__ == "__main__":
    main()
