"""The optimizer registry (one entry per method, as timm's OptimInfo) and `create_optimizer`.

The registry is the only list of methods: config validation, the CLI's ``--optimizers``, the fixed
colours, the figures' order and the report read it. A method's options and their defaults are the
keyword arguments of its class (``method_options``), never a second table. A method defined outside
ltlab is named by its import path, ``"mypkg.mymethod:HalvedSAM"`` (any `PerturbedOptimizer` subclass),
and works everywhere a registered name does, ``compare -j N`` processes included.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from .asam import ASAM
from .base import CONTEXT_ARGS, PerturbedOptimizer, Plain
from .ccsam import CCSAM
from .class_aware import FocalSAM, ImbSAM
from .gnm import GNM
from .rsam import RSAM
from .sam import SAM


@dataclass(frozen=True)
class OptimInfo:
    """One method: its name, class, paper, fixed colour (Okabe & Ito) and, for the plain base optimizers,
    the base they always use."""

    name: str
    cls: type[PerturbedOptimizer]
    paper: str
    color: str | None = None
    base: str | None = None  # sgd / adamw: a plain base optimizer, whatever optimizer.base says

    @property
    def closures_per_step(self) -> int:
        return self.cls.closures_per_step

    @property
    def label(self) -> str:
        """The default name of its runs (an import path's class name, lower case)."""
        return self.name.rsplit(":", 1)[-1].lower() if ":" in self.name else self.name

    def options(self) -> dict[str, Any]:
        """{option: default}, read from the class's signature."""
        return self.cls.method_options()


OPTIMIZERS: dict[str, OptimInfo] = {
    i.name: i
    for i in [
        OptimInfo("sgd", Plain, "SGD with momentum", "#555555", base="sgd"),
        OptimInfo("adamw", Plain, "Loshchilov & Hutter, ICLR 2019", "#999999", base="adamw"),
        OptimInfo("sam", SAM, "Foret et al., ICLR 2021", "#E69F00"),
        OptimInfo("asam", ASAM, "Kwon et al., ICML 2021", "#CC79A7"),
        OptimInfo("rsam", RSAM, "Liu et al., NeurIPS 2022", "#56B4E9"),
        OptimInfo("gnm", GNM, "Li et al., NeurIPS 2024", "#D55E00"),
        OptimInfo("imbsam", ImbSAM, "Zhou et al., ICCV 2023", "#009E73"),
        OptimInfo("ccsam", CCSAM, "Zhou et al., CVPR 2023", "#F0E442"),
        OptimInfo("focalsam", FocalSAM, "Li et al., ICML 2025", "#0072B2"),
    ]
}
BASES = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}
PAPER_COMPARISON = ("sam", "rsam", "gnm")  # what `compare` runs beside the base optimizer unless told otherwise
PROMPT_TENSORS = ("prompts", "group_prompts")  # the parameters optimizer.prompt_lr applies to


def list_optimizers() -> list[str]:
    return list(OPTIMIZERS)


def optimizer_info(name: str) -> OptimInfo:
    """The registry entry of `name`, or an entry made for an import path ``package.module:Class``."""
    if name in OPTIMIZERS:
        return OPTIMIZERS[name]
    if ":" not in name:
        import difflib

        near = difflib.get_close_matches(name, list(OPTIMIZERS), n=1)
        raise ConfigError(f"optimizer {name!r} is unknown; choose one of {', '.join(OPTIMIZERS)}"
                          + (f" (did you mean '{near[0]}'?)" if near else "")
                          + ", or name your own class as 'package.module:Class'")
    module, _, attr = name.partition(":")
    if not all(p.isidentifier() for p in module.split(".")) or not attr.isidentifier():
        raise ConfigError(f"optimizer {name!r}: an import path is package.module:Class (a module and a class name, "
                          "e.g. mymethods:HalvedSAM)")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except Exception as e:  # noqa: BLE001 -- a missing module, a syntax error, a module that raises on import
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"optimizer {name!r}: cannot import it ({type(e).__name__}: {first}); the module must be "
                          "importable (on sys.path or installed), import without error and define the class") from None
    if not (isinstance(cls, type) and issubclass(cls, PerturbedOptimizer)):
        raise ConfigError(f"optimizer {name!r} is not a subclass of ltlab.optim.PerturbedOptimizer")
    doc = (cls.__doc__ or "").strip().splitlines()
    return OptimInfo(name, cls, doc[0] if doc else cls.__name__)


def method_options(name: str, given: dict[str, Any] | None = None, key: str = "optimizer.method") -> dict[str, Any]:
    """Every option of method `name` with its value: `given` over the class's defaults, read by the
    class's annotations and checked by building the class once on a dummy parameter. An unknown option
    or a value the class refuses is a ConfigError that names `key` and the valid options."""
    from ..values import coerce

    info = optimizer_info(name)
    defaults, types = info.options(), info.cls.option_types()
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) if defaults else "none (a plain base optimizer has no method options)"
        raise ConfigError(f"{key}.{unknown[0]}: {name} has no option {unknown[0]!r}; its options: {valid}")
    out = {k: coerce(f"{key}.{k}", given[k], types[k]) if k in given else v for k, v in defaults.items()}
    try:
        create_optimizer(name, [("weight", torch.nn.Parameter(torch.zeros(2)))], class_counts=[2, 1], **out)
    except ValueError as e:
        raise ConfigError(f"{key} of {name}: {e}") from None
    except Exception as e:  # noqa: BLE001 -- a method's own constructor failing on valid options is its bug
        raise ConfigError(f"{key} of {name}: building {name} with these options raised {type(e).__name__}: {e}; "
                          "check the class's __init__") from None
    return out


def create_optimizer(name: str, params: Iterable, base: str = "sgd", lr: float = 0.01, momentum: float = 0.9,
                     weight_decay: float = 0.0, seed: int | None = None, prompt_lr: float | None = None,
                     max_grad_norm: float | None = None, class_counts=None, ascent: str = "sync",
                     grad_scaler: Any = None, **options: Any) -> PerturbedOptimizer:
    """Build an optimizer by registry name (sgd, adamw, sam, asam, rsam, gnm, imbsam, ccsam, focalsam) or
    import path ``package.module:Class``.

    Sharpness-aware ones wrap `base` (sgd | adamw); `options` are the method's own (its ``__init__``
    keyword arguments; left out: the class's defaults). `class_counts` (training images per class) goes to
    the methods that ask for it. `params` may be tensors or (name, tensor) pairs
    (``model.named_parameters()``): ASAM's adaptive_on="weights" (the authors' rule) uses the names, and so
    does `prompt_lr`: tensors named ``prompts`` / ``group_prompts`` get their own param group at that
    learning rate (VPT sweeps the prompts' lr apart from the head's); group 0 holds the others at `lr`.
    `max_grad_norm` clips the global L2 norm of the update gradient. `ascent` ("sync" | "local") is what
    the ascent gradient means under DDP (see ``PerturbedOptimizer.step``); `grad_scaler` is fp16 AMP's scaler;
    the three go to the constructor (``PerturbedOptimizer.__init__``), as every method's options do. Every optimizer returned has one
    interface: ``step(closure)``, ``schedule(...)``, ``refuses(setting)``, ``closures_per_step`` and
    ``base_optimizer`` (the plain ones are `Plain`).

    >>> opt = create_optimizer("gnm", [torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    >>> type(opt).__name__, opt.closures_per_step, opt.param_groups[0]["rho"]
    ('GNM', 1, 0.005)
    """
    info = optimizer_info(name)
    base = info.base or base
    context: dict[str, Any] = {k: options.pop(k) for k in CONTEXT_ARGS if k in options}  # given by hand
    if base not in BASES:
        raise ConfigError(f"base optimizer {base!r} is unknown; choose one of {', '.join(BASES)}")
    unknown = sorted(set(options) - set(info.options()))
    if unknown:
        raise ConfigError(f"create_optimizer: {name} has no option {', '.join(unknown)}; its options: "
                          f"{', '.join(info.options()) or 'none'}")
    wants = set(inspect.signature(info.cls.__init__).parameters)
    params = list(params)
    if params and isinstance(params[0], tuple):  # named parameters: ASAM's "weights" mode and prompt_lr need names
        if "weight_params" in wants and context.get("weight_params") is None:
            context["weight_params"] = [p for n, p in params if "weight" in n]
        prompts = [p for n, p in params if n.split(".")[-1] in PROMPT_TENSORS]
        params = [p for _, p in params]
        if prompt_lr is not None and prompts and len(prompts) < len(params):
            ids = {id(p) for p in prompts}
            params = [{"params": [p for p in params if id(p) not in ids]},
                      {"params": prompts, "lr": prompt_lr}]
    elif prompt_lr is not None:
        raise ConfigError("create_optimizer: prompt_lr needs named parameters (model.named_parameters())")
    if "class_counts" in wants and context.get("class_counts") is None:
        context["class_counts"] = class_counts
    base_kwargs: dict[str, Any] = dict(lr=lr, weight_decay=weight_decay)
    if BASES[base] is torch.optim.SGD:
        base_kwargs["momentum"] = momentum
    defaults = info.options()
    given = {k: v for k, v in options.items() if v is not None or defaults[k] is None}  # None: the class default
    if ascent not in ("sync", "local"):
        raise ConfigError(f"ascent={ascent!r}: use 'sync' (all-reduced ascent gradient) or 'local' (each rank's own)")
    return info.cls(params, BASES[base], seed=seed, max_grad_norm=max_grad_norm, ascent=ascent,
                    grad_scaler=grad_scaler, **given, **context, **base_kwargs)


__all__ = ["OptimInfo", "OPTIMIZERS", "BASES", "PAPER_COMPARISON", "CONTEXT_ARGS", "create_optimizer", "list_optimizers",
           "method_options", "optimizer_info"]
