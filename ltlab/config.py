"""Typed experiment config: dataclass defaults, YAML presets, dotted `key=value` overrides.

>>> cfg = load_config("synthetic", ["optimizer.name=gnm", "epochs=3"])
>>> cfg.optimizer.name, cfg.epochs
('gnm', 3)
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import values
from .errors import ConfigError

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass
class DataConfig:
    name: str = "synthetic"  # synthetic | cifar10_lt | cifar100_lt | imagenet_lt | places_lt | inat2018
    root: str = "data"
    num_classes: int = 50  # synthetic only (benchmarks know their own)
    n_max: int = 200  # images of the largest class (CIFAR-LT: 500)
    imbalance_ratio: float = 50.0
    profile: str = "exp"
    val_per_class: int = 10  # balanced validation split carved from the training data, for model selection
    test_per_class: int = 30  # synthetic only
    image_size: int = 32
    many: int = 100  # many: > many images; few: < few images
    few: int = 20
    split_convention: str = "count"  # count | gnm_index
    seed: int = 0  # the data set's own seed: fixes the task independently of the training seed
    download: bool = False
    augment: bool = True
    train_list: str = ""  # txt-list data sets: "relative/path label" per line
    val_list: str = ""
    test_list: str = ""
    num_workers: int = 0


@dataclass
class ModelConfig:
    backbone: str = "ltlab-tiny"  # the bundled backbone, or any timm VisionTransformer name
    pretrained: bool = False  # timm weights from the hub (online); off by default
    checkpoint_path: str = ""  # local weights file for a timm backbone
    prompt_length: int = 10
    mode: str = "deep"  # deep | shallow
    head: str = "cosine"  # cosine | linear
    head_scale: float = 25.0  # cosine head: logits = scale * cos (GCL's s = 25 in GNM-PT)
    pool: str = "cls+prompts"  # cls | cls+prompts (GNM-PT: mean of [CLS] and last-layer prompts)
    dropout: float = 0.1
    # LPT group prompts (Dong et al. 2023); pool_size = 0 switches them off
    pool_size: int = 0
    group_prompt_length: int = 10
    group_layers: int = 6
    top_k: int = 2
    freeze_shared_prompt: bool = False  # LPT phase 2 trains the group prompts, keys and head only


@dataclass
class LossConfig:
    name: str = "ce"  # ce | ldam | gcl | agcl | logit_adjusted | balanced_softmax
    drw_epoch: int | None = None  # class-balanced weights from this (0-based) epoch on; None = off
    beta: float = 0.9999  # effective-number beta for the class-balanced weights
    m: float = 0.1  # GCL target margin (in cosine units)
    max_m: float = 0.5  # LDAM largest margin
    noise_mul: float = 1.0  # GCL Gaussian-cloud scale
    tau: float = 1.0  # logit adjustment temperature
    gamma: float = 0.0  # focal term on top of GCL (ltlab's earlier LPT variant)
    # agcl (LPT's asymmetric GCL): focusing of the target / other classes, label smoothing; the instance-balanced
    # batch of LPT's dual sampling has its own focusing (the authors' criterion_ibs)
    gamma_pos: float = 0.0
    gamma_neg: float = 4.0
    smoothing: float = 0.1
    ibs_gamma_pos: float = 0.5
    ibs_gamma_neg: float = 8.0


@dataclass
class OptimizerConfig:
    name: str = "sgd"  # a registry name (sgd | adamw | sam | asam | rsam | gnm | imbsam | ccsam | focalsam) or an
    #                    import path package.module:Class of your own PerturbedOptimizer subclass
    base: str = "sgd"  # base optimizer the sharpness-aware ones wrap: sgd | adamw
    lr: float = 0.05
    prompt_lr: float | None = None  # the prompts' own learning rate (None = lr; the head keeps lr)
    momentum: float = 0.9
    weight_decay: float = 1e-3
    schedule: str = "cosine"  # cosine | constant (per step, after warm-up)
    warmup_epochs: float = 0.0
    clip_grad_norm: float | None = None  # global L2 clipping of the update gradient (RSAM official: 1.0)
    ascent: str = "sync"  # under DDP: sync = the ascent gradient is all-reduced (one perturbation for the global
    #                       batch); local = each rank perturbs with its own gradient (m-sharpness, m = the rank's
    #                       batch), and only the descent gradient is all-reduced. Nothing changes in one process.
    # the method's own options (rho, sigma, ...), validated by its class; validation fills in every default,
    # so a run's config.yaml lists them all. A plain base optimizer has none. On the command line:
    # optimizer.method.rho=0.1
    method: dict[str, Any] = field(default_factory=dict)


# keys that moved into optimizer.method (old run directories and YAML files are read through this map)
LEGACY_OPTIMIZER_KEYS: dict[str, tuple[str, Any]] = {  # old key -> (option, the old default = the method's default)
    "rho": ("rho", None), "sigma": ("sigma", None), "truncate": ("truncate", 1.0), "eta": ("eta", 0.01),
    "asam_adaptive_on": ("adaptive_on", "all"), "rsam_mix": ("mix", "gradient"), "sigma_end": ("sigma_end", None),
    "rho_schedule": ("rho_schedule", "constant"), "rho_min": ("rho_min", 0.0),
    "tail_threshold": ("tail_threshold", 20), "flat_ratio": ("flat_ratio", 0.5), "flat_gamma": ("flat_gamma", 5.5),
    "sharpness": ("sharpness", 0.8), "gnm_halve_at_drw": ("halve_at_drw", False),
    "gnm_epoch0_doubling": ("epoch0_doubling", False),
}


@dataclass
class EvalConfig:
    select: str = "last"  # headline checkpoint: last (the fixed schedule's last epoch) | best_val (opt-in)
    train_images: int = 512  # fixed, seeded training subset on which the loss at w is logged every epoch
    test: bool = True  # false: the test split is never evaluated (tuning runs: selection reads validation only)
    # step diagnostics every N optimizer steps (0 = off): ||g|| at w, ||e|| / ||w||, and the loss rise
    # L(w + e) - L(w) the method penalises; means over the epoch's logged steps go into its metrics row ("diag")
    diagnostics_every: int = 50


@dataclass
class ExperimentConfig:
    seed: int = 0
    label: str = ""  # the run's name in tables, pairing, run directories, figures ("" = the optimizer's name)
    epochs: int = 10
    batch_size: int = 128  # the batch of one optimizer step (per process under DDP)
    accum_steps: int = 1  # split each step's batch into this many micro-batches (gradient accumulation); the
    #                       update is that of the whole batch, so a run means the same for every value
    eval_every: int = 1
    save_every: int = 0  # also keep checkpoints/epoch<NNN>.pt every N epochs (trajectories); 0 = off
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 | fp16
    compile: bool = False
    method: str = "vpt"  # vpt | lpt (two phases from one command)
    lpt_phase1_epochs: int = 10  # LPT: epochs of phase 1 (shared prompt); `epochs` is phase 2
    # LPT phase 2 (DongSky/LPT train_dual_dualloss.py): each step a class-balanced batch and an instance-balanced
    # batch of batch_size each; loss = L_cb - k * sim_cb + w(e) * (L_ibs - k * sim_ibs), w(e) = dual_ibs_weight *
    # (epochs - e) / epochs at 0-based epoch e, k = lpt_key_weight (the key-query similarity term)
    dual_sampling: bool = False
    dual_ibs_weight: float = 0.5
    lpt_key_weight: float = 0.5
    # where the epoch rows go besides metrics.jsonl: tensorboard (RUN_DIR/tb), mlflow (pip install ltlab[mlflow];
    # RUNS_DIR/mlruns). On the command line: log=jsonl,tensorboard,mlflow
    log: list[str] = field(default_factory=lambda: ["jsonl", "tensorboard"])
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


_CHOICES: dict[str, tuple[str, ...]] = {
    "data.name": ("synthetic", "cifar10_lt", "cifar100_lt", "imagenet_lt", "places_lt", "inat2018"),
    "data.profile": ("exp", "step"),
    "data.split_convention": ("count", "gnm_index"),
    "model.mode": ("deep", "shallow"),
    "model.head": ("cosine", "linear"),
    "model.pool": ("cls", "cls+prompts"),
    "loss.name": ("ce", "ldam", "gcl", "agcl", "logit_adjusted", "balanced_softmax"),
    "optimizer.schedule": ("cosine", "constant"),
    "optimizer.ascent": ("sync", "local"),
    "precision": ("fp32", "bf16", "fp16"),
    "method": ("vpt", "lpt"),
    "eval.select": ("last", "best_val"),
    "log": ("jsonl", "tensorboard", "mlflow"),
}


def _choices(key: str) -> tuple[str, ...] | None:
    """The allowed values of a key with a fixed set; optimizer.base: the registry's plain base optimizers."""
    if key == "optimizer.base":
        from .optim import OPTIMIZERS

        return tuple(n for n, info in OPTIMIZERS.items() if info.base == n)
    return _CHOICES.get(key)


# key -> (lowest allowed, inclusive?)
_LOWER: dict[str, tuple[float, bool]] = {
    "epochs": (1, True), "batch_size": (1, True), "accum_steps": (1, True), "eval_every": (1, True), "save_every": (0, True),
    "eval.train_images": (1, True), "eval.diagnostics_every": (0, True), "lpt_phase1_epochs": (1, True),
    "dual_ibs_weight": (0, True), "lpt_key_weight": (0, True), "loss.smoothing": (0, True),
    "data.num_classes": (1, True), "data.n_max": (1, True), "data.imbalance_ratio": (1, True),
    "data.val_per_class": (1, True), "data.test_per_class": (1, True), "data.image_size": (8, True),
    "data.num_workers": (0, True),
    "model.prompt_length": (0, True), "model.head_scale": (0, False), "model.dropout": (0, True),
    "model.pool_size": (0, True), "model.group_prompt_length": (1, True), "model.group_layers": (1, True),
    "model.top_k": (1, True),
    "loss.drw_epoch": (0, True), "loss.beta": (0, True), "loss.m": (0, True), "loss.max_m": (0, True),
    "loss.noise_mul": (0, True), "loss.tau": (0, True), "loss.gamma": (0, True), "loss.gamma_pos": (0, True),
    "loss.gamma_neg": (0, True), "loss.ibs_gamma_pos": (0, True), "loss.ibs_gamma_neg": (0, True),
    "data.many": (0, True), "data.few": (0, True),
    "optimizer.lr": (0, False), "optimizer.prompt_lr": (0, False), "optimizer.momentum": (0, True), "optimizer.weight_decay": (0, True),
    "optimizer.warmup_epochs": (0, True), "optimizer.clip_grad_norm": (0, False),
}
_UPPER: dict[str, float] = {"model.dropout": 1.0, "loss.beta": 1.0, "optimizer.momentum": 1.0, "loss.smoothing": 1.0}
# keys of earlier versions that no longer exist; a saved config holding one still loads (the key is ignored)
DROPPED_KEYS = ("dual_weight_end",)


def _all_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _all_keys(hints[f.name], prefix + f.name + ".")
        else:
            keys.append(prefix + f.name)
    return keys


def _unknown(key: str) -> ConfigError:
    same_name = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]  # a key in the wrong section
    near = same_name[:1] or difflib.get_close_matches(key, _all_keys(), n=1, cutoff=0.5)
    section = key.rsplit(".", 1)[0] + "." if "." in key else ""
    same = [k for k in _all_keys() if k.startswith(section) and k.count(".") == key.count(".")]
    hint = (f"; did you mean '{near[0]}'?" if near
            else f"; valid keys here: {', '.join(same[:12])}{' ...' if len(same) > 12 else ''}")
    return ConfigError(f"unknown config key '{key}'{hint}")


def coerce(key: str, value: Any, tp: Any) -> Any:
    """`value` read as type `tp` for config key `key` (its choices checked; `ltlab.values.coerce`)."""
    return values.coerce(key, value, tp, _choices(key))


def _apply(obj: Any, data: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    legacy = {}
    for k, v in data.items():
        key = prefix + str(k)
        if isinstance(obj, OptimizerConfig) and k in LEGACY_OPTIMIZER_KEYS:
            legacy[k] = v
            continue
        if not prefix and k in DROPPED_KEYS:
            continue
        if k not in names:
            raise _unknown(key)
        if dataclasses.is_dataclass(hints[k]):
            if not isinstance(v, dict):
                raise ConfigError(f"{key} must be a mapping of sub-keys, got {v!r}")
            _apply(getattr(obj, k), v, key + ".")
        elif typing.get_origin(hints[k]) is dict:
            if v is None:
                v = {}
            if not isinstance(v, dict):
                raise ConfigError(f"{key} must be a mapping, e.g. {key}: {{rho: 0.05}} (or {key}.rho=0.05), got {v!r}")
            setattr(obj, k, {str(a): b for a, b in v.items()})
        else:
            setattr(obj, k, coerce(key, v, hints[k]))
    if legacy:
        _map_legacy(obj, legacy)


def _map_legacy(oc: OptimizerConfig, legacy: dict[str, Any]) -> None:
    """Old flat optimizer keys (runs made before optimizer.method existed) into optimizer.method."""
    from .optim import optimizer_info

    options = optimizer_info(oc.name).options()
    for old, value in legacy.items():
        new, old_default = LEGACY_OPTIMIZER_KEYS[old]
        if value is None or value == old_default:
            continue  # the old default is the method's default (or the key did not apply to it)
        if new not in options:
            raise ConfigError(f"optimizer.{old}={value!r}: this key moved to optimizer.method.{new}, and "
                              f"optimizer.name={oc.name} has no option {new!r} (its options: "
                              f"{', '.join(options) or 'none'}); remove the key")
        oc.method.setdefault(new, value)


def moved_key_error(key: str, value: Any) -> ConfigError:
    new = LEGACY_OPTIMIZER_KEYS[key][0]
    return ConfigError(f"optimizer.{key} moved: a method's own options live under optimizer.method; write "
                       f"optimizer.method.{new}={value}")


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check choices and ranges; the error names the key, the value and what is allowed."""
    for key in _all_keys():
        value = get_key(cfg, key)
        if isinstance(value, list):
            coerce(key, value, list[str])  # each item checked against the choices
            continue
        allowed = _choices(key)
        if allowed is not None and value not in allowed:
            near = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}{hint}")
        if value is None or isinstance(value, (str, bool)):
            continue
        if key in _LOWER:
            lo, inclusive = _LOWER[key]
            if value < lo or (not inclusive and value == lo):
                rel = ">=" if inclusive else ">"
                raise ConfigError(f"{key}={value} is out of range; it must be {rel} {lo}")
        if key in _UPPER and value > _UPPER[key]:
            raise ConfigError(f"{key}={value} is out of range; it must be <= {_UPPER[key]}")
    _check_optimizer(cfg.optimizer)
    _check_consistency(cfg)
    _warn_schedule(cfg)
    _warn_unread(cfg)
    return cfg


def _warn_schedule(cfg: ExperimentConfig) -> None:
    """A schedule that a shortened run never reaches is legal (quick looks shorten epochs on purpose), but it is
    not the recipe the preset names: say so (a UserWarning, shown once per message)."""
    drw, warmup = cfg.loss.drw_epoch, cfg.optimizer.warmup_epochs
    if drw is not None and drw >= cfg.epochs:
        warnings.warn(f"loss.drw_epoch={drw} is not before the last epoch (epochs={cfg.epochs}; 0-based): DRW never "
                      "switches on in this run; lower loss.drw_epoch, or set loss.drw_epoch=null for no DRW",
                      UserWarning, stacklevel=3)
    if warmup > cfg.epochs:
        warnings.warn(f"optimizer.warmup_epochs={warmup:g} is longer than the run (epochs={cfg.epochs}): the lr never "
                      "reaches optimizer.lr; shorten the warm-up", UserWarning, stacklevel=3)


# LPT's keys that nothing reads without the part of LPT they belong to: key -> (what reads it, how to switch it on)
LPT_ONLY = {
    "model.group_prompt_length": ("pool", "model.pool_size"), "model.group_layers": ("pool", "model.pool_size"),
    "model.top_k": ("pool", "model.pool_size"), "lpt_key_weight": ("pool", "model.pool_size"),
    "dual_ibs_weight": ("dual", "dual_sampling=true"), "lpt_phase1_epochs": ("lpt", "method=lpt"),
}
_LPT_PART = {"pool": "a group-prompt pool (model.pool_size=0)", "dual": "dual sampling",
             "lpt": "LPT's two phases (method=vpt trains one phase of `epochs`)"}


def _warn_unread(cfg: ExperimentConfig) -> None:
    """An LPT key set away from its default in a run without the part of LPT that reads it (a group-prompt pool,
    dual sampling, or LPT's two phases) changes nothing: say so, as for a loss option the loss does not read."""
    default = ExperimentConfig()
    on = {"pool": cfg.model.pool_size > 0, "dual": cfg.dual_sampling, "lpt": cfg.method == "lpt"}
    for key, (part, switch) in LPT_ONLY.items():
        if not on[part] and get_key(cfg, key) != get_key(default, key):
            warnings.warn(f"{key}={get_key(cfg, key)!r} has no effect without {_LPT_PART[part]}; set {switch} "
                          "(LPT's presets, such as lpt_synthetic, set it), or leave it out", UserWarning, stacklevel=3)


def without_lpt_keys(cfg: ExperimentConfig) -> ExperimentConfig:
    """A copy of cfg with every key of LPT_ONLY at its default (LPT's phase 1 is a one-phase run with no pool and
    no dual sampling, so its config says what it used)."""
    out, default = copy.deepcopy(cfg), ExperimentConfig()
    for key in LPT_ONLY:
        owner, _, name = key.rpartition(".")
        setattr(get_key(out, owner) if owner else out, name, get_key(default, key))
    return out


def _check_optimizer(oc: OptimizerConfig) -> None:
    """The name is a registry entry or an import path; optimizer.method becomes every option of that method,
    checked by its class (an unknown option names the valid ones)."""
    from .optim import OPTIMIZERS, method_options

    if oc.name not in OPTIMIZERS and ":" not in oc.name:
        near = difflib.get_close_matches(oc.name, list(OPTIMIZERS), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise ConfigError(f"optimizer.name={oc.name!r} is not allowed; choose one of {', '.join(OPTIMIZERS)}{hint}, "
                          "or name your own class as package.module:Class")
    oc.method = method_options(oc.name, oc.method)


def run_label(cfg: ExperimentConfig) -> str:
    """The run's name in tables, pairing, run directories and figures: cfg.label, else the method's."""
    from .optim import optimizer_info

    return cfg.label or optimizer_info(cfg.optimizer.name).label


def with_optimizer(cfg: ExperimentConfig, name: str, method: dict[str, Any] | None = None,
                   **changes: Any) -> ExperimentConfig:
    """cfg with another optimizer (its own options `method`, default: the class's) and other top-level
    `changes`, validated. A method's options never carry over to another method."""
    oc = dataclasses.replace(cfg.optimizer, name=name, method=dict(method or {}))
    return validate(dataclasses.replace(cfg, optimizer=oc, **changes))


SYNTHETIC_MAX_CLASSES = 8 * 8 * 6  # shapes x hues x textures


LABEL_FORM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")  # a label names run directories: LABEL-sSEED


def _check_consistency(cfg: ExperimentConfig) -> None:
    """Checks that need more than one key; each names the keys and a fix."""
    d, m = cfg.data, cfg.model
    if cfg.label and not LABEL_FORM.fullmatch(cfg.label):
        raise ConfigError(f"label={cfg.label!r}: a label names run directories (LABEL-sSEED), so it is letters, digits "
                          "and . _ + = - only, starting with a letter or digit; e.g. label=gnm_rho0.05")
    if d.many < d.few:
        raise ConfigError(f"data.many={d.many} < data.few={d.few}: a class would be both many (> many images) and few "
                          "(< few images); use many >= few (standard: many=100, few=20)")
    if d.name == "synthetic" and d.num_classes > SYNTHETIC_MAX_CLASSES:
        raise ConfigError(f"data.num_classes={d.num_classes}: the synthetic task has at most {SYNTHETIC_MAX_CLASSES} "
                          "classes (8 shapes x 8 hues x 6 textures)")
    if d.name == "synthetic" and d.num_classes == 1 and d.imbalance_ratio != 1:
        raise ConfigError("data.num_classes=1 cannot have an imbalance ratio: use at least 2 classes")
    if m.backbone == "ltlab-tiny" and d.image_size != 32:
        raise ConfigError(f"data.image_size={d.image_size}: the bundled backbone ltlab-tiny takes 32 px images; "
                          "set data.image_size=32 or choose a timm backbone")
    if "jsonl" not in cfg.log:
        raise ConfigError(f"log={','.join(cfg.log)}: metrics.jsonl is the run's record (report, compare and resume "
                          "read it); keep jsonl, e.g. log=jsonl,tensorboard")
    if cfg.accum_steps > cfg.batch_size:
        raise ConfigError(f"accum_steps={cfg.accum_steps} > batch_size={cfg.batch_size}: more micro-batches than "
                          "images in a step; batch_size is the step's whole batch, accum_steps splits it")
    if cfg.accum_steps > 1 and (cfg.dual_sampling or m.pool_size):
        raise ConfigError(f"accum_steps={cfg.accum_steps}: LPT's dual-sampling halves and key-query term are not split "
                          "into micro-batches; use accum_steps=1 with method=lpt / dual_sampling / model.pool_size")
    if m.pool_size and m.top_k > m.pool_size:
        raise ConfigError(f"model.top_k={m.top_k} > model.pool_size={m.pool_size}: cannot pick more group prompts "
                          "than the pool holds")
    dev = str(cfg.device)
    if dev != "auto" and not (dev == "cpu" or dev == "cuda" or dev.startswith("cuda:") or dev == "mps"):
        raise ConfigError(f"device={dev!r} is not a device ltlab runs on; use auto, cpu, cuda or cuda:N")
    if dev.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device={dev}: no CUDA GPU is visible here; use device=cpu (or auto)")


def get_key(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def parse_overrides(overrides: typing.Iterable[str]) -> dict[str, Any]:
    """['a.b=1', 'c=x'] -> nested dict, values parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. optimizer.lr=0.01")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
            if isinstance(value, dict) and not raw.lstrip().startswith("{"):  # "mod:" or "a: b" is text (an import
                value = raw.strip()                                             # path), not a mapping
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value is not valid YAML; quote it, e.g. {key}='{raw}'") from None
        if not key.strip() or any(not p for p in key.strip().split(".")):
            raise ConfigError(f"override {item!r}: the key is empty; write it like optimizer.lr=0.01")
        node = nested
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with {'.'.join(parts[:i + 1])}={node!r}: a section "
                                  "takes sub-keys, not a value")
        node[parts[-1]] = value
    return nested


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


MAX_BASE_DEPTH = 8


def _read_yaml(name_or_path: str, depth: int = 0, relative_to: Path | None = None,
               chain: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ConfigError(f"base: {name_or_path!r} must name a preset or a YAML file")
    path = Path(name_or_path)
    if not path.suffix and (PRESET_DIR / f"{name_or_path}.yaml").exists():
        path = PRESET_DIR / f"{name_or_path}.yaml"
    elif relative_to is not None and not path.is_absolute():
        path = relative_to / path  # a base: path is relative to the YAML file that names it
    if str(path.resolve()) in chain:
        raise ConfigError(f"base: cycle in the config chain ({' -> '.join(chain)} -> {path})")
    if depth > MAX_BASE_DEPTH:
        raise ConfigError(f"base: the chain of base configs is deeper than {MAX_BASE_DEPTH}: {' -> '.join(chain)}")
    if path.exists() and not path.is_file():
        raise ConfigError(f"config {str(path)!r} is a directory; give a preset name or a YAML file")
    if not path.exists():
        near = difflib.get_close_matches(str(name_or_path), list_presets(), n=1) or sorted(
            (p for p in list_presets() if str(name_or_path) in p), key=len)[:1]  # 'gcl' -> synthetic_gcl
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(
            f"config {name_or_path!r} is neither a preset ({', '.join(list_presets())}) nor a YAML file{hint}"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path} is not a valid YAML config ({first}); fix the file or give a preset name") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys (key: value lines), not {type(data).__name__}")
    hints = typing.get_type_hints(ExperimentConfig)
    for k, v in data.items():  # before any merge: an override must not hide a malformed section
        if dataclasses.is_dataclass(hints.get(k)) and not isinstance(v, dict):
            sub = dataclasses.fields(hints[k])[0].name
            raise ConfigError(f"{path}: {k} must be a mapping of sub-keys, one 'key: value' per indented line "
                              f"(e.g. '{k}:' then '  {sub}: ...'), got {v!r}")
    base = data.pop("base", None)
    if base is not None:
        merged = _read_yaml(base, depth + 1, path.parent, chain + (str(path.resolve()),))
        _merge(merged, data)
        return merged
    return data


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    """src over dst (a config over its base, overrides over a config). A method's options never carry over to
    another method: when src names another optimizer, dst's optimizer.method (and old flat method keys) go."""
    new, old = src.get("optimizer"), dst.get("optimizer")
    if isinstance(new, dict) and isinstance(old, dict) and "name" in new and new["name"] != old.get("name", OptimizerConfig.name):
        for k in ("method", *LEGACY_OPTIMIZER_KEYS):
            old.pop(k, None)
    _deep_update(dst, src)


def _deep_update(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


METHOD_BLOCK_SECTIONS = ("optimizer",)  # what a method's block may set: its optimizer (the task stays shared)


def _method_blocks(data: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Pop and check a YAML's `methods:` mapping {method: {optimizer: {...}}}; each block is validated by
    building that method's config (an unknown method or option names the method and the option)."""
    blocks = data.pop("methods", None) or {}
    if not isinstance(blocks, dict):
        raise ConfigError(f"{where}: methods must map a method name to its own options, e.g. "
                          "methods: {sam: {optimizer: {lr: 0.1, method: {rho: 0.02}}}}")
    from .optim import optimizer_info

    for name, block in blocks.items():
        try:
            optimizer_info(str(name))
        except ConfigError as e:
            raise ConfigError(f"{where}: methods.{name}: {e}") from None
        if not isinstance(block, dict) or not isinstance(block.get("optimizer", {}), dict):
            raise ConfigError(f"{where}: methods.{name} must be a mapping like {{optimizer: {{lr: 0.1}}}}, got {block!r}")
        for k in block:
            if k not in METHOD_BLOCK_SECTIONS:
                raise ConfigError(f"{where}: methods.{name}.{k}: a method's block holds only its optimizer options "
                                  f"(e.g. methods.{name}.optimizer.lr); the task (data, model, loss, epochs) is shared")
        if "name" in (block.get("optimizer") or {}):
            raise ConfigError(f"{where}: methods.{name}.optimizer.name: the block's key already names the method; "
                              "remove optimizer.name")
    return {str(k): v for k, v in blocks.items()}


def method_blocks(name_or_path: str = "synthetic") -> dict[str, dict[str, Any]]:
    """The per-method blocks of a preset or YAML file ({} when it has none), each checked."""
    blocks = _method_blocks(_read_yaml(name_or_path), str(name_or_path))
    for name in blocks:  # every option of every block is checked against its method now, not at its turn
        load_config(name_or_path, [f"optimizer.name={name}"])
    return blocks


def method_configs(name_or_path: str, names: typing.Iterable[str], overrides: typing.Iterable[str] = ()
                   ) -> dict[str, ExperimentConfig]:
    """{method: its config}: the preset, the method's own block (if the preset has one), then the overrides."""
    method_blocks(name_or_path)  # every block checked up front
    overrides = [o for o in overrides if not o.startswith("optimizer.name=")]
    return {n: load_config(name_or_path, [f"optimizer.name={n}", *overrides]) for n in dict.fromkeys(names)}


def load_config(name_or_path: str = "synthetic", overrides: typing.Iterable[str] = ()) -> ExperimentConfig:
    """Preset name or YAML path, then the named method's own block (`methods:` in the YAML, if any), then
    `key.sub=value` overrides, validated. The command line wins over a block, a block over the preset."""
    data = _read_yaml(name_or_path)
    blocks = _method_blocks(data, str(name_or_path))
    given = parse_overrides(overrides)
    for k, v in (given.get("optimizer") or {}).items() if isinstance(given.get("optimizer"), dict) else ():
        if k in LEGACY_OPTIMIZER_KEYS:
            raise moved_key_error(k, v)
    named = (given.get("optimizer") or {}).get("name") if isinstance(given.get("optimizer"), dict) else None
    if named is not None:
        _merge(data, {"optimizer": {"name": named}})
    name = str((data.get("optimizer") or {}).get("name", OptimizerConfig.name))
    if name in blocks:
        try:
            _merge(data, copy.deepcopy(blocks[name]))
            _apply(probe := ExperimentConfig(), copy.deepcopy(data))
            validate(probe)
        except ConfigError as e:
            raise ConfigError(f"{name_or_path}: methods.{name}: {e}") from None
    _merge(data, given)
    cfg = ExperimentConfig()
    _apply(cfg, data)
    _warn_data_keys(cfg, given.get("data"))
    return validate(cfg)


# data keys a data set does not read, because its own files fix them: data.name -> (keys, what fixes them)
_CIFAR_FIX = (("num_classes", "test_per_class"), "the data set fixes its classes (cifar10_lt: 10, cifar100_lt: 100) "
              "and its test split")
_LISTS_FIX = (("num_classes", "n_max", "imbalance_ratio", "profile", "test_per_class"),
              "the image lists (data.train_list, data.test_list) fix the classes, their counts and the test split")
_FILES_FIX = {"cifar10_lt": _CIFAR_FIX, "cifar100_lt": _CIFAR_FIX,
              "imagenet_lt": _LISTS_FIX, "places_lt": _LISTS_FIX, "inat2018": _LISTS_FIX}


def _warn_data_keys(cfg: ExperimentConfig, typed: Any) -> None:
    """A data key typed as an override that the chosen data set does not read changes nothing: say so. (Only the
    typed ones: a list data set's preset inherits the CIFAR recipe's n_max and imbalance_ratio, unread and harmless.)"""
    keys, fixed_by = _FILES_FIX.get(cfg.data.name, ((), ""))
    for key in (k for k in keys if isinstance(typed, dict) and k in typed):
        warnings.warn(f"data.{key}={get_key(cfg.data, key)!r} has no effect with data.name={cfg.data.name}: "
                      f"{fixed_by}; leave it out", UserWarning, stacklevel=3)


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    cfg = ExperimentConfig()
    _apply(cfg, data)
    return validate(cfg)


def apply_overrides(cfg: ExperimentConfig, overrides: typing.Iterable[str]) -> ExperimentConfig:
    """cfg with dotted `key=value` overrides applied (as on the command line), validated."""
    data = to_dict(cfg)
    _merge(data, parse_overrides(overrides))
    return config_from_dict(data)


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
