"""Regenerate figures from run directories (what `python -m ltlab figures`, `report` and notebook 04 call)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import plots
from ..errors import DataError
from ..stats import mean_std
from ..results.tables import rule_sentence
from ..results import (ACCURACY, aggregate, finished_runs, is_reference, paired_table, per_seed, pick_base,
                       runs_by_method, summary_row)
from ..results.probing import load_probes
from ..train.runs import Run

def per_class_means(runs: list[Run]) -> dict[str, np.ndarray]:
    """{optimizer: per-class test accuracy of the headline, averaged over its seeds}."""
    return {m: np.nanmean(np.array([[np.nan if a is None else a for a in r.summary["per_class"]] for r in rs],
                                   dtype=float), 0) for m, rs in runs_by_method(runs).items()}


def figure_tag(run: Run) -> str:
    """Figure names follow the task: the data set's name (so benchmark runs never overwrite the demo's)."""
    return str(run.config["data"]["name"])


def compare_figures(runs_dir: str | Path, out: str | Path = "figures", tag: str | None = None,
                    base: str | None = None, method: str = "t") -> list[Path]:
    """Per-class accuracy, many/medium/few bars (whiskers: paired intervals against `base`, by default the
    report's), curves and cost for a compare directory (mean over seeds)."""
    import matplotlib.pyplot as plt

    runs = finished_runs(runs_dir)
    tag = tag or figure_tag(runs[0])
    rows = [summary_row(r.summary, r.path) for r in runs]
    agg = aggregate(rows)
    note = rule_sentence(agg, runs[0].config.get("epochs"))
    mean_note = rule_sentence(agg, runs[0].config.get("epochs"), spread="mean")
    labels = [a["label"] for a in agg]
    base = pick_base([n for n in labels if not is_reference(n)] or labels,
                     base or (runs[0].config.get("optimizer") or {}).get("base"))
    by_method = runs_by_method(runs)
    per_class = per_class_means(runs)
    paths: list[Path] = []
    paths += plots.save(plots.per_class_accuracy(per_class, runs[0].summary["class_counts"],
                                                 splits=runs[0].summary.get("splits"),
                                                 note=mean_note), f"perclass_{tag}", out)
    effects = paired_table(rows, base, metrics=ACCURACY, method=method, references=True)
    paths += plots.save(plots.group_bars(agg, note=mean_note + " Dots: the seeds. " + plots.paired_note(base, method),
                                         points=per_seed(rows), effects=effects, base=base),
                        f"headtail_{tag}", out)
    drw = (runs[0].config.get("loss") or {}).get("drw_epoch")
    paths += plots.save(plots.training_curves({m: [r.metrics for r in rs] for m, rs in by_method.items()},
                                              drw_epoch=drw, note=note.split(";")[-1].strip()), f"curves_{tag}", out)
    paths += plots.save(plots.cost_bars(agg, note="each run's median seconds per step, relative to the base; " + note.split(";")[-1].strip()),
                        f"cost_{tag}", out)
    plt.close("all")
    return paths


SETUP_ORDER = ("vpt+sgd", "vpt+adamw", "vpt+gnm", "lpt+sgd", "lpt+adamw", "lpt+gnm")


def setup_rows(setups_dir: str | Path, spread: str = "mean ± std") -> tuple[list[dict], dict[str, list[dict]], str]:
    """Runs named <setup>-s<seed> (bench/lpt_vs_vpt.py): (rows of mean ± std per setup, {setup: summaries by
    seed}, the rule sentence, naming `spread` as what is shown over the seeds). Only seeds every setup finished
    are kept, so the pairing holds."""
    found: dict[str, dict[int, dict]] = {}
    for p in sorted(Path(setups_dir).glob("*-s*/summary.json")):
        setup, seed = p.parent.name.rsplit("-s", 1)
        found.setdefault(setup, {})[int(seed)] = json.loads(p.read_text())
    if not found:
        raise DataError(f"{setups_dir} holds no finished setup runs; make them with python bench/lpt_vs_vpt.py")
    seeds = sorted(set.intersection(*(set(v) for v in found.values())))
    names = [n for n in SETUP_ORDER if n in found] + [n for n in found if n not in SETUP_ORDER]
    per_seed = {n: [found[n][s] for s in seeds] for n in names}
    rows = []
    for n, vals in per_seed.items():
        row = {"method": n, "n": len(vals)}
        for k in ("overall", "many", "medium", "few", "sec_per_step"):
            row[k], row[k + "_std"], _ = mean_std([v.get(k) for v in vals])
        rows.append(row)
    rule = (f"test accuracy (%) at the last epoch (LPT: of phase 2), {spread} over {len(seeds)} paired seeds "
            f"({', '.join(map(str, seeds))})")
    return rows, per_seed, rule


def setup_figure(setups_dir: str | Path, out: str | Path = "figures", tag: str = "synthetic") -> list[Path]:
    """figures/lpt_vs_vpt_<tag>: many / medium / few bars of the VPT / LPT x base / GNM setups, re-plotted
    from their run directories (nothing is trained)."""
    import matplotlib.pyplot as plt

    rows, by_setup, rule = setup_rows(setups_dir, spread="bars: the mean")
    base = rows[0]["method"]
    seed_rows = [{**s, "label": n} for n, summaries in by_setup.items() for s in summaries]
    effects = paired_table(seed_rows, base, metrics=ACCURACY, references=True)
    note = "Headline: " + rule + ". Dots: the seeds. " + plots.paired_note(base)
    paths = plots.save(plots.group_bars(rows, label="method", note=note, effects=effects, base=base,
                                        points=per_seed(seed_rows)),
                       f"lpt_vs_vpt_{tag}", out)
    plt.close("all")
    return paths


def all_figures(runs_dir: str | Path = "runs/demo", out: str | Path = "figures",
                setups_dir: str | Path | None = "runs/lpt_vs_vpt") -> list[Path]:
    """Every figure that can be made from the runs found under `runs_dir` (and their saved probe results),
    plus LPT vs VPT from `setups_dir` when that directory holds finished runs."""

    paths = compare_figures(runs_dir, out)
    paths += probe_figures(runs_dir, out, tag=figure_tag(finished_runs(runs_dir)[0]))
    if setups_dir is not None and any(Path(setups_dir).glob("*-s*/summary.json")):
        paths += setup_figure(setups_dir, out)
    return paths


def probe_figures(runs_dir: str | Path, out: str | Path, tag: str) -> list[Path]:
    """Figures from saved probe results (no recomputation); `tag` is the task's name."""
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    makers = [("surface2d", plots.surfaces_2d, "landscape2d"), ("surface1d", plots.surfaces_1d, "landscape1d"),
              ("density", plots.spectra, "spectrum"), ("ratio", plots.eigen_ratio, "eigratio"),
              ("per-class", plots.per_class_values, "perclass_lambda")]
    for name, fn, fig_name in makers:
        results = load_probes(runs_dir, name)
        if results:
            paths += plots.save(fn(results), f"{fig_name}_{tag}", out)
            plt.close("all")
    return paths
