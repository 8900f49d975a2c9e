"""The one mechanism every sharpness-aware optimizer shares.

    e      = perturbation(closure)          # each method: how it builds e (may call the closure)
    w     <- w + e                           # saved copies of exactly these parameters
    g      = perturbed_gradient(closure)     # one closure call (default: grad L(w + e))
    w     <- saved copies                    # bit-exact restore, same parameter list
    finish_gradient()                        # hook (ImbSAM adds the head-class gradient taken at w)
    base optimizer step with g               # weight decay, momentum, lr schedule act at w

The closure contract. Class-agnostic optimizers (SAM, ASAM, RSAM, GNM) call ``closure()``: it
zeroes the gradients, runs forward and backward, and returns the loss. Class-aware optimizers
(``class_aware = True``: ImbSAM, Focal-SAM, CC-SAM) need the loss split by class, so they call
``closure(per_sample=True)``: the closure zeroes the gradients, runs the forward pass only and
returns ``SampleLosses(losses, targets, norm)`` (the batch loss is ``losses.sum() / norm``); the
optimizer reduces and back-propagates the parts itself. Optimizers that perturb the classifier
(``needs_features = True``: CC-SAM) also need ``features`` (the classifier's input, graph
attached), ``head`` (the classifier module) and ``loss_of(logits, targets)`` (per-sample losses,
same normaliser). `make_closure` builds the one closure that serves all three kinds (the trainer and the benches
use it); written out by hand it is:

    def closure(per_sample=False):
        optimizer.zero_grad()
        feats = model.classifier_input(x)
        ce_per_sample = lambda logits, t: F.cross_entropy(logits, t, reduction="none")
        losses = ce_per_sample(model.head(feats), y)
        if per_sample:
            return SampleLosses(losses, y, torch.tensor(float(len(y))),
                                features=feats, head=model.head, loss_of=ce_per_sample)
        loss = losses.mean()
        loss.backward()
        return loss

Schedules belong to the optimizer. Before every step the trainer calls
``optimizer.schedule(step=, total_steps=, epoch=, reweight_epoch=)`` without knowing the method:
the base class sets this step's rho (times the method's `epoch_factor`, following the lr when
``rho_schedule="lr"``), and a method with its own schedule (RSAM's noise ramp) extends it.
What a method cannot serve it declares in ``refused`` ({setting: why}); the trainer only asks
``optimizer.refuses("lpt")`` / ``optimizer.refuses("ddp")``.

A method's options are its ``__init__`` keyword arguments (`method_options()` reads them from the
signatures, so the defaults live once, in the class); ``class_counts`` and ``weight_params`` are
context the factory supplies, not options.
"""
from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from contextlib import nullcontext
from typing import Any

import torch
from torch.optim import Optimizer

from ..errors import counted

Perturbation = dict[torch.Tensor, torch.Tensor]


@dataclass
class SampleLosses:
    """What a closure returns to a class-aware optimizer: per-sample loss terms (graph attached),
    their targets, and the normaliser of the batch mean (batch loss = losses.sum() / norm)."""

    losses: torch.Tensor
    targets: torch.Tensor
    norm: torch.Tensor
    features: torch.Tensor | None = None  # the classifier's input (CC-SAM)
    head: torch.nn.Module | None = None  # the classifier
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # (logits, targets) -> per sample

    def weighted(self, weights: torch.Tensor) -> torch.Tensor:
        """sum_i weights_i * losses_i / norm: a weighted share of the batch loss (weights 0/1: a class split)."""
        with torch.enable_grad():  # optimizer steps run under no_grad; the share must stay differentiable
            return (self.losses * weights).sum() / self.norm


_CLOSURE_HELP = (
    "{name}.step() needs a closure: a function that zeroes the gradients, runs forward and backward, "
    "and returns the loss, e.g.\n"
    "    def closure():\n"
    "        optimizer.zero_grad()\n"
    "        loss = loss_fn(model(x), y)\n"
    "        loss.backward()\n"
    "        return loss\n"
    "    optimizer.step(closure)\n"
    "{name} calls it {calls} per step (it needs the gradient at perturbed weights)."
)


CONTEXT_ARGS = ("class_counts", "weight_params")  # supplied by the factory from the data / the model, not options
# how the step is run (the training config's, the same for every method), constructor arguments but not options
TRAINING_ARGS = ("max_grad_norm", "ascent", "grad_scaler")
# The training settings a method may refuse (its class's `refused` maps a setting to why); the trainer asks
# `refuses(setting)` for every one it uses, before the first step.
REFUSABLE = {
    "lpt": "LPT's dual sampling or key-query term (method=lpt, dual_sampling=true or a prompt pool)",
    "ddp": "several processes (torchrun, WORLD_SIZE > 1)",
    "accum": "gradient accumulation (accum_steps > 1)",
    "local": "each rank's own ascent gradient under DDP (optimizer.ascent=local)",
}
RHO_SCHEDULES = ("constant", "lr")
# class-aware methods reduce the whole batch's per-sample losses themselves (graph attached), so a step cannot be
# split into micro-batches without holding every micro-batch's graph at once, which is what accumulation avoids
NO_ACCUMULATION = ("splits the whole batch's per-sample losses by class in one graph, so a step cannot be split into "
                   "micro-batches; use accum_steps=1 (a smaller batch_size, or more processes under DDP)")


class PerturbedOptimizer(Optimizer):
    """Wraps a base optimizer built on the same param groups; subclasses define `perturbation`.

    rho_schedule="lr" (RSAM's official code, GSAM): rho_t = rho_min + (rho - rho_min) * lr_t / lr_0.
    """

    closures_per_step = 1
    class_aware = False
    needs_features = False
    # True where `perturbation`'s first call is closure() of the whole batch at w (SAM, ASAM): the step's step
    # diagnostics then read L(w) and ||g(w)|| from it; every other method pays one extra pass on diagnosed steps
    ascent_at_w = False
    stochastic = False  # True where the perturbation is drawn at random (RSAM, GNM): runs differ by seed
    refused: dict[str, str] = {}  # setting (a key of REFUSABLE) -> why this optimizer cannot serve it

    def __init__(
        self,
        params: Iterable,
        base_optimizer: type[Optimizer] = torch.optim.SGD,
        defaults: dict[str, Any] | None = None,
        seed: int | None = None,
        rho_schedule: str = "constant",
        rho_min: float = 0.0,
        max_grad_norm: float | None = None,
        ascent: str = "sync",
        grad_scaler: Any = None,
        **base_kwargs: Any,
    ):
        """max_grad_norm: global L2 clipping of the update gradient (None: off). ascent: under DDP, "sync"
        all-reduces the ascent gradient, "local" keeps each rank's own (see `step`). grad_scaler: fp16 AMP's
        torch.amp.GradScaler, used by every step (a step may pass its own)."""
        if rho_schedule not in RHO_SCHEDULES:
            raise ValueError(f"rho_schedule={rho_schedule!r}: use 'constant' or 'lr' (rho follows the lr schedule)")
        check_nonnegative("rho_min", rho_min)
        self.rho_schedule, self.rho_min = rho_schedule, float(rho_min)
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise TypeError(f"base_optimizer={base_optimizer!r}: give a torch.optim.Optimizer class (not an instance "
                            "or a name), e.g. torch.optim.SGD; its options go as keywords, e.g. lr=0.01, momentum=0.9")
        super().__init__(params, dict(defaults or {}))
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        # one set of groups and one state: schedulers may drive either object, state_dict holds both
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.defaults.update(self.base_optimizer.defaults)
        # the random methods own a generator per device; without a seed it is drawn from torch's global RNG
        self.seed = int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        self._generators: dict[str, torch.Generator] = {}
        if ascent not in ("sync", "local"):
            raise ValueError(f"ascent={ascent!r}: use 'sync' (all-reduced ascent gradient) or 'local' (each rank's own)")
        self.max_grad_norm, self.ascent, self.grad_scaler = max_grad_norm, ascent, grad_scaler
        self._step_scaler: Any = None  # the scaler of the step in progress (its closure's backward uses it)
        for g in self.param_groups:  # the configured radius, which `schedule` scales step by step
            if "rho" in g:
                g.setdefault("initial_rho", g["rho"])

    @classmethod
    def method_options(cls) -> dict[str, Any]:
        """{option: default} from the keyword arguments of every ``__init__`` in the class's ancestry (the most
        derived default wins); what ``optimizer.method`` may hold. Context arguments are not options."""
        out: dict[str, Any] = {}
        for klass in cls.__mro__:
            if klass is Optimizer or not issubclass(klass, PerturbedOptimizer) or "__init__" not in vars(klass):
                continue
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if (p.default is not p.empty and p.kind is not p.VAR_KEYWORD and name not in out
                        and name not in ("base_optimizer", "defaults", "seed", *CONTEXT_ARGS, *TRAINING_ARGS)):
                    out[name] = p.default
        return out

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """{option: its annotation} (for reading config values)."""
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if issubclass(klass, PerturbedOptimizer) and "__init__" in vars(klass):
                out.update(typing.get_type_hints(klass.__init__))
        return {k: out.get(k, Any) for k in cls.method_options()}

    def refuses(self, setting: str) -> str | None:
        """Why this optimizer cannot serve a training setting (one of `REFUSABLE`), or None."""
        if setting not in REFUSABLE:
            raise ValueError(f"refuses({setting!r}): the refusable settings are {', '.join(REFUSABLE)}")
        return self.refused.get(setting)

    # -- schedules -----------------------------------------------------------------------------
    def epoch_factor(self, epoch: int, reweight_epoch: int | None) -> float:
        """Multiplies the configured rho during `epoch` (a method's own epoch schedule; 1 = none)."""
        return 1.0

    def schedule(self, step: int, total_steps: int, epoch: int, reweight_epoch: int | None = None) -> None:
        """Set this step's hyper-parameters in the param groups; call it before every step.

        step: global step (0-based); total_steps: of the run; epoch: 0-based; reweight_epoch: the epoch from
        which the loss re-weights classes (DRW), or None. The base rule: rho = initial rho x epoch_factor,
        then, with rho_schedule="lr", rho_min + (rho - rho_min) * lr / initial lr.
        """
        factor = self.epoch_factor(epoch, reweight_epoch)
        for g in self.param_groups:
            if "initial_rho" not in g:
                continue
            rho = g["initial_rho"] * factor
            if self.rho_schedule == "lr":
                frac = g["lr"] / g["initial_lr"] if g.get("initial_lr") else 1.0
                rho = self.rho_min + (rho - self.rho_min) * frac
            g["rho"] = rho

    def logged(self) -> dict[str, float]:
        """This step's radius and noise scale where the method has them (what metrics.jsonl records)."""
        g = self.param_groups[0]
        return {k: float(g[k]) for k in ("rho", "sigma") if isinstance(g.get(k), (int, float))}

    # -- subclass hook -------------------------------------------------------------------------
    def perturbation(self, closure: Callable[[], torch.Tensor]) -> tuple[Perturbation, torch.Tensor | None]:
        """Return ({param: e}, loss if the method already evaluated it at a point it reports)."""
        raise NotImplementedError

    # -- shared mechanics ------------------------------------------------------------------------
    def generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def trainable(self) -> list[tuple[dict, torch.Tensor]]:
        return [(g, p) for g in self.param_groups for p in g["params"] if p.requires_grad]

    def with_grad(self) -> list[tuple[dict, torch.Tensor]]:
        return [(g, p) for g in self.param_groups for p in g["params"] if p.grad is not None]

    @staticmethod
    def global_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
        """One L2 norm across every tensor (all groups), on the first tensor's device."""
        if not tensors:
            return torch.tensor(0.0)
        device = tensors[0].device
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t).to(device) for t in tensors]))

    @torch.no_grad()
    def evaluate_at(self, closure: Callable[[], torch.Tensor], perturbation: Perturbation,
                    gradient: Callable | None = None) -> torch.Tensor:
        """gradient(closure) (default: closure()) at w + e, then restore exactly the parameters that were moved."""
        saved = [(p, p.detach().clone()) for p in perturbation]
        try:
            for p, e in perturbation.items():
                p.add_(e)
            loss = torch.enable_grad()(gradient or (lambda c: c()))(closure)
        finally:
            for p, w in saved:
                p.copy_(w)
        return loss

    def perturbed_gradient(self, closure: Callable) -> torch.Tensor:
        """The gradient the update uses, taken at w + e (default: the whole batch loss)."""
        return closure()

    def finish_gradient(self) -> None:
        """Hook after the weights are restored, before clipping and the base step."""

    def sample_losses(self, closure: Callable) -> SampleLosses:
        """Call a class-aware closure; a clear error if it does not follow the contract."""
        out = closure(per_sample=True)
        if not isinstance(out, SampleLosses):
            raise TypeError(f"{type(self).__name__} is class-aware: its closure must accept per_sample=True and then "
                            "return SampleLosses(losses, targets, norm) without calling backward (see ltlab.optim.base)")
        return out

    def backward(self, loss: torch.Tensor, retain_graph: bool = False) -> None:
        """loss.backward(), through the fp16 GradScaler when the step was given one.

        Under torch.distributed the gradients are then averaged over the processes: the class-aware
        methods back-propagate parts of the loss themselves (several backward passes per forward, which
        DDP's own hooks do not all-reduce), and `make_closure` runs their forward outside DDP.
        """
        scaler = self._step_scaler
        (scaler.scale(loss) if scaler is not None else loss).backward(retain_graph=retain_graph)
        world = _world()
        if world > 1:
            import torch.distributed as dist

            for _, p in self.trainable():
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad.div_(world)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None, grad_scaler: Any = None,
             diagnose: bool = False) -> torch.Tensor:
        """One update; returns the loss the method evaluated first (at w for SAM/ASAM, else perturbed).

        diagnose=True also records `last_diagnostics` (`diagnostics`): ||g|| at w, ||e|| / ||w|| and the loss
        rise L(w + e) - L(w); the update is bit for bit the same as without it.

        With fp16 AMP give ``grad_scaler`` (here or to the constructor): the closure calls ``scaler.scale(loss).backward()``, the
        base step goes through ``scaler.step`` (unscale, skip on inf); call ``scaler.update()`` after.
        With ``ascent="local"`` the closure calls made while building the perturbation are
        ``closure(sync=False)`` (under DDP: no all-reduce, each rank's own ascent gradient; m-sharpness
        with m = the rank's batch); the descent gradient at w + e is all-reduced as always.
        """
        if closure is None:
            raise ValueError(_CLOSURE_HELP.format(name=type(self).__name__, calls=counted(self.closures_per_step, 'time')))
        closure = torch.enable_grad()(closure)
        grad_scaler = grad_scaler if grad_scaler is not None else self.grad_scaler
        self._step_scaler = grad_scaler
        ascent = functools.partial(closure, sync=False) if self.ascent == "local" else closure
        perturbation, first_loss = self.perturbation(ascent)
        at_w = None
        if diagnose and (perturbation or self.class_aware):
            at_w = (self._grad_norm(grad_scaler), first_loss) if self.ascent_at_w else self._pass_at_w(closure, grad_scaler)
        loss = self.evaluate_at(closure, perturbation, self.perturbed_gradient)
        if diagnose:
            if at_w is None:  # no perturbation: the update's own pass is at w
                at_w = (self._grad_norm(grad_scaler), loss)
            self.last_diagnostics = self.diagnostics(perturbation, at_w, loss)
        self.finish_gradient()
        clip_gradients(self.base_optimizer, self.max_grad_norm, grad_scaler)
        if grad_scaler is not None:
            grad_scaler.step(self.base_optimizer)
        else:
            self.base_optimizer.step()
        return (first_loss if first_loss is not None else loss).detach()

    # -- step diagnostics (what makes SAM vs GNM teachable) ----------------------------------------------------
    def _grad_norm(self, grad_scaler: Any = None) -> float:
        norm = float(self.global_norm([p.grad for _, p in self.with_grad()]))
        return norm / float(grad_scaler.get_scale()) if grad_scaler is not None else norm

    def _pass_at_w(self, closure: Callable, grad_scaler: Any = None) -> tuple[float, torch.Tensor]:
        """(||g(w)||, L(w)) from one extra closure call at w with the global RNG forked, so that its dropout
        draws are those of the pass that follows and the run's trajectory is unchanged."""
        p0 = next(p for _, p in self.trainable())
        devices = [p0.device] if p0.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=p0.device.type):
            loss = torch.enable_grad()(closure)()
            norm = self._grad_norm(grad_scaler)
        return norm, loss

    def diagnostics(self, perturbation: Perturbation, at_w: tuple[float, torch.Tensor | None],
                    loss_perturbed: torch.Tensor) -> dict[str, float]:
        """grad_norm = ||g(w)|| (global L2 over every trainable tensor with a gradient), rel_perturbation =
        ||e|| / ||w|| over the perturbed tensors, loss_rise = L(w + e) - L(w) on the same batch (for the
        class-agnostic methods; a class-aware method's perturbed pass is not the batch loss, so none)."""
        norm, loss_w = at_w
        out = {"grad_norm": float(norm)}
        if perturbation:
            w = self.global_norm([p.detach() for p in perturbation])
            out["rel_perturbation"] = float(self.global_norm(list(perturbation.values())) / w) if w > 0 else 0.0
        else:
            out["rel_perturbation"] = 0.0
        if not self.class_aware and loss_w is not None:
            out["loss_rise"] = float(loss_perturbed) - float(loss_w) if perturbation else 0.0
        return out

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        sd = self.base_optimizer.state_dict()
        sd["perturbation_rng"] = {"seed": self.seed, **{k: g.get_state() for k, g in self._generators.items()}}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        rng = state_dict.pop("perturbation_rng", {})
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.seed = int(rng.get("seed", self.seed))
        self._generators = {}
        for key, st in rng.items():
            if key != "seed":
                self.generator(torch.device(key)).set_state(st.cpu() if hasattr(st, "cpu") else st)


def mean_diagnostics(steps: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each step diagnostic over the diagnosed steps given (an epoch's), and their number."""
    keys = dict.fromkeys(k for d in steps for k in d)
    out = {k: sum(d[k] for d in steps if k in d) / sum(k in d for d in steps) for k in keys}
    return {**out, "steps": len(steps)}


class Plain(PerturbedOptimizer):
    """A plain base optimizer (SGD, AdamW) behind the same interface: no perturbation, no options, one
    closure call. ``step(closure)`` evaluates it, clips (``max_grad_norm``) and steps; ``step()`` without
    a closure steps on the gradients already there (after your own ``loss.backward()``)."""

    def __init__(self, params, base_optimizer=torch.optim.SGD, seed=None, **base_kwargs):
        super().__init__(params, base_optimizer, None, 0 if seed is None else seed, **base_kwargs)

    @classmethod
    def method_options(cls) -> dict[str, Any]:
        return {}

    def perturbation(self, closure):
        return {}, None

    @torch.no_grad()
    def step(self, closure=None, grad_scaler: Any = None, diagnose: bool = False):
        if closure is not None:
            return super().step(closure, grad_scaler, diagnose)
        clip_gradients(self.base_optimizer, self.max_grad_norm, grad_scaler)
        (grad_scaler.step if grad_scaler is not None else lambda o: o.step())(self.base_optimizer)
        return None


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def any_over_ranks(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True when `flag` holds on any process (every rank takes the same branch, so collectives stay matched)."""
    if _world() == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def make_closure(optimizer: Optimizer, model: torch.nn.Module, loss_fn: Callable, x: torch.Tensor,
                 y: torch.Tensor, *, forward: Callable | None = None, batch_loss: Callable | None = None,
                 autocast: Callable[[], Any] | None = None, grad_scaler: Any = None, accum_steps: int = 1) -> Callable:
    """The closure for ``optimizer.step``: plain (zero, forward, backward, return the loss), class-aware
    (``per_sample=True``: SampleLosses, no backward) and, for optimizers with ``needs_features``, the
    features + head form (the model's public ``classifier_input(x)`` and ``head``).

    forward: what computes the logits (a DDP / compiled wrapper of model; default model).
    loss_fn: the loss module; class-aware optimizers need its ``sample_losses(logits, y) -> (losses, norm)``.
    batch_loss(logits, y): the scalar loss of the plain form (default ``loss_fn(logits, y)``).
    autocast: a context-manager factory (mixed precision); grad_scaler: fp16's GradScaler (scales backward).
    accum_steps: the plain form runs the batch as this many micro-batches, one at a time, each term divided
    by the whole batch's normaliser (``loss_fn.normaliser(y)``: the DRW weights' sum, or the count), so the
    gradient is the whole batch's; under DDP only the last backward all-reduces. It needs ``loss_fn``'s
    ``sample_losses`` form (not ``batch_loss``); the class-aware form cannot be split (see ``refused``).
    ``closure(sync=False)`` runs the forward passes under DDP's ``no_sync`` (this rank's gradient alone:
    the optimizer's ``ascent="local"``).
    """
    forward = model if forward is None else forward  # a compiled module has no truth value
    autocast = autocast or nullcontext
    batch_loss = batch_loss or loss_fn
    local = getattr(forward, "no_sync", None)

    def backward(loss: torch.Tensor) -> None:
        (grad_scaler.scale(loss) if grad_scaler is not None else loss).backward()

    def closure(per_sample: bool = False, sync: bool = True):
        optimizer.zero_grad(set_to_none=True)
        with (local() if not sync and local is not None else nullcontext()):
            if per_sample:
                if getattr(optimizer, "needs_features", False):  # the optimizer re-runs the classifier on these
                    with autocast():
                        feats = model.classifier_input(x)
                    feats = _at_least_float32(feats)
                    losses, norm = loss_fn.sample_losses(model.head(feats), y)
                    return SampleLosses(losses, y, norm, features=feats, head=model.head,
                                        loss_of=lambda z, t: loss_fn.sample_losses(z, t)[0])
                with autocast():  # the model itself, not a DDP wrapper: the optimizer averages its own backward passes
                    logits = _at_least_float32(model(x))
                losses, norm = loss_fn.sample_losses(logits, y)
                return SampleLosses(losses, y, norm)
            if accum_steps <= 1:
                with autocast():
                    logits = _at_least_float32(forward(x))
                loss = batch_loss(logits, y)
                backward(loss)
                return loss
            norm = loss_fn.normaliser(y, torch.float64)  # cast to the logits' dtype below
            parts = [(xs, ys) for xs, ys in zip(x.tensor_split(accum_steps), y.tensor_split(accum_steps)) if len(ys)]
            total = torch.zeros((), device=y.device, dtype=torch.float64)
            for i, (xs, ys) in enumerate(parts):
                last = i == len(parts) - 1
                with (local() if local is not None and sync and not last else nullcontext()):
                    with autocast():
                        logits = _at_least_float32(forward(xs))
                    loss = loss_fn.sample_losses(logits, ys)[0].sum() / norm.to(logits.dtype)
                    backward(loss)
                total = total + loss.detach()
            return total

    return closure


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs of autocast in float32 for the loss; float32 and float64 as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def clip_gradients(optimizer: Optimizer, max_norm: float | None, grad_scaler: Any = None) -> None:
    """Clip the global L2 norm of every gradient the optimizer holds to max_norm (None: nothing).

    With fp16 AMP the gradients are unscaled first (``scaler.unscale_``), so the clip sees true
    gradients; ``scaler.step`` then knows they are unscaled and does not unscale them twice.
    """
    if not max_norm:
        return
    if grad_scaler is not None:
        grad_scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, max_norm)


def check_nonnegative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name}={value}: must be >= 0 ({name}=0 reduces to the base optimizer)")
