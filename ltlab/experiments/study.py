"""The fair study: every method tuned on validation with the same budget, then evaluated on fresh seeds.

    python -m ltlab tune  studies/synthetic.yaml --out runs/study [-j 2] [--resume]   # selection (validation only)
    python -m ltlab study studies/synthetic.yaml --out runs/study [-j 2] [--resume]   # tune, evaluate, probe, report

A study file (YAML) declares, before anything is trained: the preset, the methods (the first is the base),
the selection score, the primary endpoint of the evaluation (`endpoint`, default overall), the tuning seeds, the
shared lr values, the base's lr values, each method's own option values, and the evaluation (seeds, whether a
seed redraws the task sample, reference rows, probe images and the trace's Hutch++ products, the failure rule).
`load_study` checks the file: every grid has the same number of configurations.

Tuning runs (OUT/tune/<method>/<config>-s<seed>) train with `eval.test=false`: the trainer withholds the test
split (any read raises), so selection reads validation only. OUT/tune/tuned.yaml is the selected
configuration of every method as a preset with one block per method (`methods:`), with the grid, every score
and the command beside it in OUT/tune/tune.json and OUT/tune/tune.md, and the figure OUT/tune/tune.png.
Evaluation runs go to OUT/eval (a paired comparison; `ltlab.reports.study` writes its report).
Everything is resumable: a rerun trains only what is missing.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import yaml

from ..config import ExperimentConfig, load_config, method_configs
from ..errors import ConfigError
from ..probes.budget import BUDGET
from ..results import ACCURACY, PRIMARY, REFERENCES, run_name
from ..results.tables import tuning_table
from ..experiments.compare import compare, run_jobs

TUNE_OVERRIDES = ("eval.test=false", "save_every=0")  # tuning runs: validation only, no trajectory checkpoints


@dataclasses.dataclass
class Study:
    """A declared study (see the module docstring); `path` is the file it came from."""

    path: Path
    preset: str
    methods: list[str]
    score: str
    tuning_seeds: list[int]
    lr: list[float]
    base_lr: list[float]
    options: dict[str, dict[str, list[Any]]]
    seeds: list[int]
    redraw_data: bool = True
    references: list[str] = dataclasses.field(default_factory=lambda: ["linear", "compute"])
    probe_images: int = 128
    trace_hvps: int = BUDGET.scalar_trace_hvps  # Hutch++ products of each probed run's trace column
    failure_points: float = 10.0
    contrasts: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (a, b): a − b paired directly
    endpoint: str = PRIMARY  # the test metric Holm covers (a confirmation may declare a tail metric)

    @property
    def base(self) -> str:
        return self.methods[0]

    def grid(self, method: str) -> list[dict[str, Any]]:
        """The method's configurations, in grid order: {"optimizer.lr": v, "optimizer.method.<k>": v, ...}."""
        if method == self.base:
            return [{"optimizer.lr": v} for v in self.base_lr]
        own = self.options.get(method, {})
        keys = ["optimizer.lr", *(f"optimizer.method.{k}" for k in own)]
        return [dict(zip(keys, values)) for values in itertools.product(self.lr, *own.values())]


def config_id(values: dict[str, Any]) -> str:
    """A configuration's directory name, e.g. lr0.1_rho0.05."""
    return "_".join(f"{k.rsplit('.', 1)[-1]}{v}" for k, v in values.items())


def _list(where: str, value: Any, kind: type, allow_empty: bool = False) -> list[Any]:
    if not isinstance(value, list) or (not value and not allow_empty):
        key = where.rsplit(": ", 1)[-1].rsplit(".", 1)[-1]
        example = {int: "[0, 1, 2]", float: "[0.1, 0.2]"}.get(kind, "[a, b]")
        raise ConfigError(f"{where}: expected a{'' if allow_empty else ' non-empty'} list, e.g. {key}: {example}; "
                          f"got {value!r}")
    if kind is int and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{where}: {value!r} holds a value that is not a whole number")  # int(0.5) would be 0
    try:
        out = [kind(v) if kind is not str else str(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} holds a value that is not a {kind.__name__}") from None
    if len(set(map(str, out))) != len(out):
        raise ConfigError(f"{where}: {value!r} repeats a value; each value once (a repeat would count twice)")
    return out


STUDY_KEYS = ("preset", "methods", "score", "endpoint", "tuning_seeds", "lr", "base_lr", "options", "contrasts",
              "evaluation")
EVALUATION_KEYS = ("seeds", "redraw_data", "references", "probe_images", "trace_hvps", "failure_points")


def load_study(path: str | Path) -> Study:
    """Read and check a study file; every error names the key and the fix."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a study file" if path.is_dir() else "does not exist"
        raise ConfigError(f"study file {str(path)!r} {what}; give a YAML file such as studies/synthetic.yaml")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping (preset:, methods:, lr:, ...)")
    for k in data:
        if k not in STUDY_KEYS:
            raise ConfigError(f"{path}: unknown key {k!r}; a study file has {', '.join(STUDY_KEYS)}")
    ev = data.get("evaluation") or {}
    if not isinstance(ev, dict):
        raise ConfigError(f"{path}: evaluation must be a mapping (seeds:, references:, ...)")
    for k in ev:
        if k not in EVALUATION_KEYS:
            raise ConfigError(f"{path}: unknown key evaluation.{k}; it has {', '.join(EVALUATION_KEYS)}")
    methods = _list(f"{path}: methods", data.get("methods"), str)
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: options must map a method to its option values, e.g. sam: {{rho: [0.01, 0.05]}}")
    study = Study(
        path=path, preset=str(data.get("preset", "synthetic")), methods=methods,
        score=str(data.get("score", "overall")), endpoint=str(data.get("endpoint", PRIMARY)),
        tuning_seeds=_list(f"{path}: tuning_seeds", data.get("tuning_seeds", [0, 1, 2]), int),
        lr=_list(f"{path}: lr", data.get("lr"), float), base_lr=_list(f"{path}: base_lr", data.get("base_lr"), float),
        options={str(m): {str(k): _list(f"{path}: options.{m}.{k}", v, lambda x: x) for k, v in (o or {}).items()}
                 for m, o in options.items()},
        seeds=_list(f"{path}: evaluation.seeds", ev.get("seeds", list(range(100, 112))), int),
        redraw_data=_scalar(f"{path}: evaluation.redraw_data", ev.get("redraw_data", True), bool),
        references=_list(
            f"{path}: evaluation.references", ev.get("references", ["linear", "compute"]), str, allow_empty=True),
        probe_images=_scalar(f"{path}: evaluation.probe_images", ev.get("probe_images", 128), int),
        trace_hvps=_scalar(f"{path}: evaluation.trace_hvps", ev.get("trace_hvps", BUDGET.scalar_trace_hvps), int),
        failure_points=_scalar(f"{path}: evaluation.failure_points", ev.get("failure_points", 10.0), float),
        contrasts=[_contrast(f"{path}: contrasts", c) for c in _list(f"{path}: contrasts", data.get("contrasts", []),
                                                                       lambda x: x, allow_empty=True)])
    _check(study)
    return study


def _scalar(where: str, value: Any, kind: type) -> Any:
    """A YAML boolean, or a positive number (an int where kind is int); "false" as a string is not false."""
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    ok = isinstance(value, int) or (kind is float and isinstance(value, float))
    if isinstance(value, bool) or not ok or value <= 0:
        raise ConfigError(f"{where}: expected a positive {'whole ' if kind is int else ''}number, got {value!r}")
    return kind(value)


def _contrast(where: str, pair: Any) -> tuple[str, str]:
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
        raise ConfigError(f"{where}: each contrast is a pair of methods [a, b] (a − b, paired by seed), e.g. [gnm, sam]; "
                          f"got {pair!r}")
    return pair[0], pair[1]


def _check(s: Study) -> None:
    where = str(s.path)
    for a, b in s.contrasts:
        for m in (a, b):
            if m not in s.methods:
                raise ConfigError(f"{where}: contrasts: {m} is not in methods ({', '.join(s.methods)})")
    if s.score not in ACCURACY:
        raise ConfigError(f"{where}: score={s.score!r}; choose one of {', '.join(ACCURACY)} (validation accuracy)")
    if s.endpoint not in ACCURACY:
        raise ConfigError(f"{where}: endpoint={s.endpoint!r}; choose one of {', '.join(ACCURACY)} (test accuracy)")
    for m, opts in s.options.items():
        if m not in s.methods:
            raise ConfigError(f"{where}: options.{m}: {m} is not in methods ({', '.join(s.methods)})")
        if m == s.base and opts:
            raise ConfigError(f"{where}: options.{m}: the base's grid is lr alone (base_lr); remove its options")
    overlap = set(s.tuning_seeds) & set(s.seeds)
    if overlap:
        raise ConfigError(f"{where}: evaluation.seeds and tuning_seeds share {sorted(overlap)}; evaluation seeds must "
                          "be fresh (disjoint from the tuning seeds)")
    for k in s.references:
        if k not in REFERENCES:
            raise ConfigError(f"{where}: evaluation.references: {k!r} is unknown; choose from {', '.join(REFERENCES)}")
    sizes = {m: len(s.grid(m)) for m in s.methods}
    if len(set(sizes.values())) > 1:
        raise ConfigError(f"{where}: the grids differ in size ({', '.join(f'{m} {n}' for m, n in sizes.items())}); "
                          "every method gets the same number of configurations (the base's base_lr has as many "
                          "values as lr x each method's options)")
    for m in s.methods:  # every configuration builds (an unknown method or option names both)
        for values in s.grid(m):
            try:
                load_config(s.preset, [f"optimizer.name={m}", *(f"{k}={v}" for k, v in values.items())])
            except ConfigError as e:
                raise ConfigError(f"{where}: {m} {config_id(values)}: {e}") from None


# -- tuning ------------------------------------------------------------------------------------------------
def tuning_jobs(study: Study, out: str | Path) -> list[tuple[str, dict[str, Any], ExperimentConfig, str]]:
    """(method, values, config, run directory) of every tuning run."""
    jobs = []
    for m in study.methods:
        for values in study.grid(m):
            cfg = load_config(study.preset, [f"optimizer.name={m}", *TUNE_OVERRIDES,
                                             *(f"{k}={v}" for k, v in values.items())])
            for seed in study.tuning_seeds:
                path = Path(out) / "tune" / m / run_name(config_id(values), seed)
                jobs.append((m, values, dataclasses.replace(cfg, seed=seed), str(path)))
    return jobs


def validation_score(run_dir: str | Path, score: str) -> float:
    """The last epoch's validation accuracy of a tuning run (its summary holds no test metric)."""
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    if summary.get("test", "absent") is not None:
        raise ConfigError(f"{run_dir} is not a validation-only run (eval.test=false); tuning reads only those")
    return float(summary["val"][score])


def tune(study: Study, out: str | Path, workers: int = 1, progress: bool = True, command: str = "",
         overwrite: bool = False) -> dict[str, Any]:
    """Train what is missing of every grid on the tuning seeds, select each method's best configuration by mean
    validation score, and write OUT/tune/{tuned.yaml, tune.json, tune.md, tune.png}; returns tune.json's dict.
    overwrite=True trains every run again."""
    jobs = tuning_jobs(study, out)
    run_jobs([(cfg, path) for _, _, cfg, path in jobs], progress=progress, workers=workers, keep=True,
             overwrite=overwrite)
    table: dict[str, list[dict[str, Any]]] = {m: [] for m in study.methods}
    for m in study.methods:
        for values in study.grid(m):
            runs = [p for mm, v, _, p in jobs if mm == m and v == values]
            scores = [validation_score(p, study.score) for p in runs]
            table[m].append({"values": values, "id": config_id(values), "scores": scores,
                             "mean": statistics.fmean(scores),
                             "sd": statistics.stdev(scores) if len(scores) > 1 else float("nan")})
    chosen = {m: max(rows, key=lambda r: r["mean"]) for m, rows in table.items()}  # ties: the first in grid order
    result = {"study": str(study.path), "command": command, "score": f"validation {study.score} accuracy (%), last "
              f"epoch, mean over tuning seeds {study.tuning_seeds}", "grid": table,
              "selected": {m: c["values"] for m, c in chosen.items()}}
    tdir = Path(out) / "tune"
    tdir.mkdir(parents=True, exist_ok=True)
    (tdir / "tune.json").write_text(json.dumps(result, indent=2))
    (tdir / "tuned.yaml").write_text(tuned_yaml(study, chosen, command))
    (tdir / "tune.md").write_text(tune_markdown(study, table, command))
    from ..plots import save
    from ..plots.headtail import tuning_curves

    save(tuning_curves(table, study.score, study.tuning_seeds), "tune", tdir)
    return result


def tuned_yaml(study: Study, chosen: dict[str, dict[str, Any]], command: str = "") -> str:
    """The selected configurations as a preset: the study's preset as base, one block per method."""
    blocks: dict[str, Any] = {}
    for m, c in chosen.items():
        opt: dict[str, Any] = {}
        for k, v in c["values"].items():
            node = opt
            parts = k.split(".")[1:]
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = v
        blocks[m] = {"optimizer": opt}
    head = [f"# Selected on validation by `{command or 'python -m ltlab tune ' + str(study.path)}`",
            f"# (study {study.path}; score: validation {study.score} accuracy at the last epoch, mean over tuning",
            f"# seeds {study.tuning_seeds}; every method {len(study.grid(study.base))} configurations; the test split "
            "was withheld). Grid and scores: tune.json / tune.md beside the study's runs."]
    preset = str(Path(study.preset).resolve()) if Path(study.preset).suffix else study.preset  # a file: absolute
    body = yaml.safe_dump({"base": preset, "methods": blocks}, sort_keys=False)
    return "\n".join(head) + "\n" + body


def tune_markdown(study: Study, table: dict[str, list[dict[str, Any]]], command: str = "") -> str:
    seeds = ", ".join(map(str, study.tuning_seeds))
    lines = ["# ltlab tune: selection on validation", ""]
    if command:
        lines += [f"Made by `{command}` from the study file `{study.path}`.", ""]
    lines += [f"Score: validation {study.score} accuracy (%) at the last epoch, mean ± sd over the tuning seeds "
              f"({seeds}), and each seed's score. Every method has {len(study.grid(study.base))} configurations; "
              "the test split was withheld from every run. ▶ marks the selected configuration (ties: the first).", "",
              *tuning_table(table)]
    return "\n".join(lines) + "\n"


# -- evaluation --------------------------------------------------------------------------------------------
def evaluate(study: Study, tuned: str | Path, out: str | Path, workers: int = 1, progress: bool = True,
             overwrite: bool = False) -> list[dict[str, Any]]:
    """Every method at its selected configuration (the preset `tuned`) on the evaluation seeds, with the
    reference rows, into OUT/eval; then the probes of every prompted run. Finished runs of the same config are
    kept (a rerun trains only what is missing); overwrite=True trains every run again."""
    configs = method_configs(str(tuned), study.methods)
    base = configs[study.base]
    rows = compare(base, study.methods, seeds=study.seeds, out=Path(out) / "eval", progress=progress, workers=workers,
                   reuse=not overwrite, overwrite=overwrite, reference=study.references, configs=configs, redraw_data=study.redraw_data)
    from ..results.probing import add_flatness_columns

    add_flatness_columns(rows, study.probe_images, progress=progress, workers=workers, trace_hvps=study.trace_hvps)
    return rows
