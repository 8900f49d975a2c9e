"""Optimizer registry (by data, as timm's OptimInfo) and `create_optimizer`."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from .asam import ASAM
from .gnm import GNM
from .ccsam import CCSAM
from .class_aware import FocalSAM, ImbSAM
from .rsam import RSAM
from .sam import SAM


@dataclass(frozen=True)
class OptimInfo:
    name: str
    cls: type | None  # None: a plain base optimizer
    closures_per_step: int
    paper: str
    method_args: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)


OPTIMIZERS: dict[str, OptimInfo] = {
    i.name: i
    for i in [
        OptimInfo("sgd", None, 1, "SGD with momentum"),
        OptimInfo("adamw", None, 1, "Loshchilov & Hutter, ICLR 2019"),
        OptimInfo("sam", SAM, 2, "Foret et al., ICLR 2021", ("rho",), {"rho": 0.05}),
        OptimInfo("asam", ASAM, 2, "Kwon et al., ICML 2021", ("rho", "eta", "adaptive_on", "weight_params"),
                  {"rho": 0.5, "eta": 0.01, "adaptive_on": "all", "weight_params": None}),
        OptimInfo("rsam", RSAM, 2, "Liu et al., NeurIPS 2022", ("rho", "sigma", "mix"),
                  {"rho": 0.05, "sigma": 0.01, "mix": "gradient"}),
        OptimInfo("gnm", GNM, 1, "Li et al., NeurIPS 2024", ("rho", "sigma", "truncate"),
                  {"rho": 0.005, "sigma": 1 / 3, "truncate": 1.0}),
        OptimInfo("imbsam", ImbSAM, 2, "Zhou et al., ICCV 2023", ("rho", "class_counts", "tail_threshold"),
                  {"rho": 0.05, "class_counts": None, "tail_threshold": 20}),
        OptimInfo("ccsam", CCSAM, 1, "Zhou et al., CVPR 2023", ("rho", "class_counts", "flat_ratio"),
                  {"rho": 1e-6, "class_counts": None, "flat_ratio": 0.5}),
        OptimInfo("focalsam", FocalSAM, 2, "Li et al., ICML 2025", ("rho", "class_counts", "flat_gamma", "sharpness"),
                  {"rho": 0.05, "class_counts": None, "flat_gamma": 5.5, "sharpness": 0.8}),
    ]
}
BASES = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}
PROMPT_TENSORS = ("prompts", "group_prompts")  # the parameters optimizer.prompt_lr applies to


def list_optimizers() -> list[str]:
    return list(OPTIMIZERS)


def create_optimizer(name: str, params: Iterable, base: str = "sgd", lr: float = 0.01, momentum: float = 0.9,
                     weight_decay: float = 0.0, seed: int | None = None, prompt_lr: float | None = None,
                     **method_kwargs: Any) -> torch.optim.Optimizer:
    """Build an optimizer by name: sgd, adamw, sam, asam, rsam, gnm, imbsam, ccsam, focalsam.

    Sharpness-aware ones wrap `base` (sgd | adamw); method arguments left as None take the paper default.
    `params` may be tensors or (name, tensor) pairs (``model.named_parameters()``); ASAM's
    adaptive_on="weights" (the authors' rule) uses the names, and so does `prompt_lr`: with names, tensors
    named ``prompts`` / ``group_prompts`` get their own param group at that learning rate (VPT sweeps the
    prompts' lr apart from the head's); group 0 always holds the others at `lr`.
    Every returned optimizer has ``closures_per_step`` and ``base_optimizer`` (itself for plain ones).

    >>> opt = create_optimizer("gnm", [torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    >>> type(opt).__name__, opt.closures_per_step, opt.param_groups[0]["rho"]
    ('GNM', 1, 0.005)
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer {name!r} is unknown; choose one of {', '.join(OPTIMIZERS)}")
    if base not in BASES:
        raise ConfigError(f"base optimizer {base!r} is unknown; choose one of {', '.join(BASES)}")
    params = list(params)
    if params and isinstance(params[0], tuple):  # named parameters: ASAM's "weights" mode needs the names
        if name == "asam" and method_kwargs.get("weight_params") is None:
            method_kwargs["weight_params"] = [p for n, p in params if "weight" in n]
        prompts = [p for n, p in params if n.split(".")[-1] in PROMPT_TENSORS]
        params = [p for _, p in params]
        if prompt_lr is not None and prompts and len(prompts) < len(params):
            ids = {id(p) for p in prompts}
            params = [{"params": [p for p in params if id(p) not in ids]},
                      {"params": prompts, "lr": prompt_lr}]
    elif prompt_lr is not None:
        raise ConfigError("create_optimizer: prompt_lr needs named parameters (model.named_parameters())")
    info = OPTIMIZERS[name]
    plain = BASES["adamw" if name == "adamw" else ("sgd" if name == "sgd" else base)]
    base_kwargs: dict[str, Any] = dict(lr=lr, weight_decay=weight_decay)
    if plain is torch.optim.SGD:
        base_kwargs["momentum"] = momentum
    if info.cls is None:
        opt = plain(params, **base_kwargs)
        opt.closures_per_step = 1
        opt.base_optimizer = opt
        return opt
    unknown = set(method_kwargs) - {a for i in OPTIMIZERS.values() for a in i.method_args}
    if unknown:
        raise ConfigError(f"create_optimizer: unknown method argument(s) {sorted(unknown)}")
    kwargs = {k: method_kwargs[k] if method_kwargs.get(k) is not None else v for k, v in info.defaults.items()}
    return info.cls(params, plain, seed=seed, **kwargs, **base_kwargs)
