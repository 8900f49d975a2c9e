"""The fit loop: schedule, AMP, per-class evaluation, atomic checkpoints, exact resume, progress bar.

Selection rule (DESIGN.md, comparison protocol): the headline of summary.json is the test accuracy
of the checkpoint `eval.select` names: "last" (default, the fixed schedule's last epoch) or
"best_val" (opt-in, the best validation epoch; ties keep the earlier epoch). Both are always
recorded with their epochs under summary["last"] and summary["best_val"]; the test set never
selects anything.

Interrupts: Ctrl-C (SIGINT) and SIGTERM ask the loop to stop at the next step boundary (or after
the epoch's evaluation); the state saved there resumes to exactly the uninterrupted run. After the
last epoch's evaluation only the test evaluation is left, so a stop asked for then lets the run finish.
A second Ctrl-C stops at once and keeps the last checkpoint already on disk.

>>> from ltlab.config import load_config
>>> summary = fit(load_config("synthetic", ["epochs=1"]), out="runs/doc")   # doctest: +SKIP
"""
from __future__ import annotations

import math
import signal
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..config import ExperimentConfig, to_dict
from ..data import build_dataset
from ..data.samplers import dual_batches
from ..errors import LtlabError
from ..losses import build_loss
from ..models import build_model
from ..optim import create_optimizer
from ..optim.base import SampleLosses, clip_gradients
from ..stats import binomial_stderr, group_stderr
from ..utils import resolve_device, rng_restore, rng_snapshot, seed_everything
from .metrics import classification_metrics
from .runs import RunDir, load_checkpoint_file, loss_kwargs, provenance


class TrainingDiverged(LtlabError):
    """The loss became NaN or infinite."""


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up, then cosine to 0 (or constant)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def gnm_noise_factor(epoch: int, drw_epoch: int | None, halve_at_drw: bool, epoch0_doubling: bool) -> float:
    """Official GNM-PT schedule: 0.5 ** ((epoch - 1) // reweight_epoch) with 0-based epochs.

    That formula halves the noise once DRW starts and, as an artefact of floor division, doubles it
    in epoch 0; each part is a separate switch here (the artefact is off by default).
    """
    f = 1.0
    if halve_at_drw and drw_epoch is not None and epoch >= drw_epoch:
        f *= 0.5
    if epoch0_doubling and epoch == 0:
        f *= 2.0
    return f


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory of this run; NaN on the CPU, where only a process-wide peak exists
    (bench/optimizer_cost.py measures CPU memory per optimizer in separate processes)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return float("nan")


class _Stopped(KeyboardInterrupt):
    """A requested stop at a step boundary (the exact state is already saved)."""


RESUME_MAY_CHANGE = ("device", "data.num_workers", "data.root", "compile")


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """'key: old -> new' for every key that differs, except those a resume may change."""
    out = []
    for k in sorted(set(old) | set(new)):
        key = prefix + str(k)
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, key + ".")
        elif a != b and key not in RESUME_MAY_CHANGE:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


class Trainer:
    """Owns one run: data, model, loss, optimizer, schedule, and the run directory.

    Args:
        cfg: the experiment config.
        out: run directory (default runs/<data>-<optimizer>-s<seed>).
        progress: show a tqdm bar (renders in Jupyter too).
        callbacks: called as cb(trainer, row) after every evaluation.
    """

    def __init__(self, cfg: ExperimentConfig, out: str | Path | None = None, progress: bool = True,
                 callbacks: tuple[Callable[["Trainer", dict], None], ...] = (), init_from: str | Path | None = None):
        self.cfg = cfg
        self.progress, self.callbacks = progress, callbacks
        default = f"runs/{cfg.data.name}-{cfg.label or cfg.optimizer.name}-s{cfg.seed}"
        self.run = RunDir(out or default)
        seed_everything(cfg.seed)
        self.rank, self.world = _dist_rank_world()
        self.is_main = self.rank == 0
        self.device = resolve_device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.rank % torch.cuda.device_count())
        self.data = build_dataset(cfg.data)
        self.model = build_model(cfg.model, self.data.num_classes).to(self.device)
        if init_from is not None:  # e.g. LPT phase 2 starts from phase 1's trained tensors
            self.model.load_state_dict(load_checkpoint_file(init_from)["model"], strict=False)
        self.loss_fn = build_loss(cfg.loss.name, self.data.class_counts, cfg.loss.drw_epoch, cfg.loss.beta,
                                  **loss_kwargs(cfg)).to(self.device)
        oc = cfg.optimizer
        self.optimizer = create_optimizer(
            oc.name, [(n, p) for n, p in self.model.named_parameters() if p.requires_grad], base=oc.base, lr=oc.lr,
            prompt_lr=oc.prompt_lr,
            momentum=oc.momentum, weight_decay=oc.weight_decay, rho=oc.rho, sigma=oc.sigma, truncate=oc.truncate,
            eta=oc.eta, adaptive_on=oc.asam_adaptive_on, mix=oc.rsam_mix, class_counts=self.data.class_counts,
            tail_threshold=oc.tail_threshold, flat_ratio=oc.flat_ratio, flat_gamma=oc.flat_gamma, sharpness=oc.sharpness,
            seed=cfg.seed,  # the same perturbation stream on every rank keeps DDP replicas identical
        )
        for g in self.optimizer.param_groups:
            if "rho" in g:
                g.setdefault("initial_rho", g["rho"])
            if "sigma" in g:
                g.setdefault("initial_sigma", g["sigma"])
        self.optimizer.max_grad_norm = oc.clip_grad_norm
        if getattr(self.optimizer, "class_aware", False) and (cfg.dual_sampling or self.model.pool_size > 0):
            from ..errors import ConfigError

            raise ConfigError(f"optimizer.name={oc.name} splits the loss by class; it does not combine with LPT's "
                              "dual sampling or key-query term: use method=vpt")
        self.rho_factor = 1.0  # GNM's epoch schedule (set_epoch)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.train_targets = [int(t) for t in getattr(self.data.train, "targets")]
        self.steps_per_epoch = math.ceil(len(self.data.train) / (cfg.batch_size * self.world))
        self.total_steps = cfg.epochs * self.steps_per_epoch
        warmup = int(oc.warmup_epochs * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer.base_optimizer, lambda s: lr_factor(s, self.total_steps, warmup, oc.schedule))
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.precision == "fp16" else None
        self.forward = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            if getattr(self.optimizer, "needs_features", False):
                raise LtlabError(f"optimizer {oc.name!r} re-runs the classifier outside DistributedDataParallel, so "
                                 "its gradients would not be averaged across processes; run it on one process")

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.model, device_ids=ids,
                                                   find_unused_parameters=self.model.pool_size > 0)
            seed_everything(cfg.seed + 1000 * self.rank)  # different augmentation / dropout per rank
        if cfg.compile:
            self.forward = torch.compile(self.forward)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_val, self.best_epoch = -1.0, -1
        self.step_times: list[float] = []
        self.epoch_losses: list[float] = []  # step losses of the current epoch (kept across a resume)
        self._stop_requested = False

    # -- data ----------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's shuffled batches, a pure function of (seed, epoch): resumable mid-epoch."""
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        if self.cfg.dual_sampling:
            batches = dual_batches(self.train_targets, self.cfg.batch_size * self.world, g)
        else:
            perm = torch.randperm(len(self.data.train), generator=g)
            batches = [b.tolist() for b in perm.split(self.cfg.batch_size * self.world)]
        if self.world == 1:
            return batches
        # DDP: every rank takes its contiguous share of each global batch (global = batch_size x world)
        return [b[self.rank * len(b) // self.world:(self.rank + 1) * len(b) // self.world] for b in batches]

    def dual_weight(self) -> float:
        """LPT: weight of the class-balanced half, decaying linearly over training."""
        t = self.global_step / max(1, self.total_steps)
        return 1.0 - (1.0 - self.cfg.dual_weight_end) * t

    def loader(self, dataset, batches=None, batch_size: int = 256) -> DataLoader:
        # an own generator: iterating a DataLoader must not consume the global RNG (exact resume)
        kw = dict(num_workers=self.cfg.data.num_workers, pin_memory=self.device.type == "cuda",
                  generator=torch.Generator().manual_seed(self.cfg.seed))
        if batches is not None:
            return DataLoader(dataset, batch_sampler=batches, **kw)
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, **kw)

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- one step ------------------------------------------------------------------------------
    def compute_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            logits = self.forward(x).float()
        if self.cfg.dual_sampling:  # first half instance-balanced, second half class-balanced
            h = len(y) // 2
            loss = self.loss_fn(logits[:h], y[:h]) + self.dual_weight() * self.loss_fn(logits[h:], y[h:])
        else:
            loss = self.loss_fn(logits, y)
        sim = getattr(self.model, "last_key_similarity", None)
        if self.model.pool_size > 0 and sim is not None:  # LPT: pull matched keys towards the queries
            loss = loss - 0.5 * sim
        return loss

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        def closure(per_sample: bool = False):
            self.optimizer.zero_grad(set_to_none=True)
            if per_sample:  # a class-aware optimizer splits the loss by class (contract: ltlab.optim.base)
                if self.optimizer.needs_features:  # CC-SAM re-runs the classifier on these features
                    with self.autocast():
                        feats = self.model.dropout(self.model.features(x))
                    feats = feats.float()
                    losses, norm = self.loss_fn.sample_losses(self.model.head(feats), y)
                    return SampleLosses(losses, y, norm, features=feats, head=self.model.head,
                                        loss_of=lambda z, t: self.loss_fn.sample_losses(z, t)[0])
                with self.autocast():
                    logits = self.forward(x).float()
                losses, norm = self.loss_fn.sample_losses(logits, y)
                return SampleLosses(losses, y, norm)
            loss = self.compute_loss(x, y)
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            return loss

        self.apply_rho()
        if hasattr(self.optimizer, "perturbation"):  # the sharpness-aware family clips inside its step
            loss = self.optimizer.step(closure, grad_scaler=self.scaler)
        else:
            loss = closure()
            clip_gradients(self.optimizer, self.cfg.optimizer.clip_grad_norm, self.scaler)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
            else:
                self.optimizer.step()
        if self.scaler is not None:
            self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def apply_rho(self) -> None:
        """rho of this step: the configured rho, x GNM's epoch factor, following the lr if rho_schedule=lr.

        rho_schedule=lr (RSAM's official code, GSAM): rho_t = rho_min + (rho - rho_min) * lr_t / lr_0.
        """
        oc = self.cfg.optimizer
        for g in self.optimizer.param_groups:
            if "initial_rho" not in g:
                continue
            rho = g["initial_rho"] * self.rho_factor
            if oc.rho_schedule == "lr":
                frac = g["lr"] / g["initial_lr"] if g.get("initial_lr") else 1.0
                rho = oc.rho_min + (rho - oc.rho_min) * frac
            g["rho"] = rho
            if oc.sigma_end is not None and "initial_sigma" in g:  # RSAM official: noise std ramps linearly
                t = self.global_step / max(1, self.total_steps - 1)
                g["sigma"] = g["initial_sigma"] + (oc.sigma_end - g["initial_sigma"]) * min(1.0, t)

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = self.model.training
        self.model.eval()
        logits, targets = [], []
        shard = None
        if self.world > 1:  # each rank predicts a shard; the shards are gathered (metrics over all data)
            from torch.utils.data import Subset

            shard = list(range(self.rank, len(dataset), self.world))
            dataset = Subset(dataset, shard)
        for x, y in self.loader(dataset):
            with self.autocast():
                logits.append(self.model(x.to(self.device, non_blocking=True)).float().cpu())
            targets.append(torch.as_tensor(y))
        self.model.train(was_training)
        logits, targets = torch.cat(logits), torch.cat(targets)
        if shard is not None:
            import torch.distributed as dist

            parts = [None] * self.world
            dist.all_gather_object(parts, (logits, targets))
            logits, targets = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return logits, targets

    def evaluate(self, split: str = "val") -> dict[str, Any]:
        logits, y = self.predict(getattr(self.data, split))
        return classification_metrics(logits, y, self.data.splits)

    def clean_train_subset(self):
        """A fixed, seeded subset of the training images with evaluation transforms (same for every method)."""
        import copy

        from torch.utils.data import Subset

        train, eval_tf = self.data.train, getattr(self.data.test, "transform", None)
        n = min(self.cfg.eval.train_images, len(train))
        idx = sorted(torch.randperm(len(train), generator=torch.Generator().manual_seed(self.cfg.data.seed))[:n].tolist())
        if hasattr(train, "subset"):
            return train.subset(idx, eval_tf)
        view = copy.copy(train)
        if hasattr(view, "transform"):
            view.transform = eval_tf
        return Subset(view, idx)

    def loss_at_w(self) -> float:
        """Plain cross-entropy at the unperturbed weights w on the fixed training subset (eval mode).

        This is the curve that compares across methods: the step loss GNM and RSAM return is L(w + e).
        """
        logits, y = self.predict(self.clean_train_subset())
        return float(torch.nn.functional.cross_entropy(logits, y))

    # -- checkpoints ---------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen backbone: prompts (shared, group, keys) and head; a few MB even for ViT-B."""
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
                if not k.startswith("backbone.")}

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "model": self.trainable_state(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "best_val": self.best_val, "best_epoch": self.best_epoch, "rng": rng_snapshot(),
            "step_times": self.step_times, "epoch_losses": list(self.epoch_losses), "config": to_dict(self.cfg),
        }

    def load_checkpoint_state(self, st: dict[str, Any]) -> None:
        self.model.load_state_dict(st["model"], strict=False)
        self.optimizer.load_state_dict(st["optimizer"])
        self.scheduler.load_state_dict(st["scheduler"])
        if self.scaler and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.epoch, self.step_in_epoch, self.global_step = st["epoch"], st["step_in_epoch"], st["global_step"]
        self.best_val, self.best_epoch = st["best_val"], st["best_epoch"]
        self.step_times = list(st.get("step_times", []))
        self.epoch_losses = list(st.get("epoch_losses", []))
        rng_restore(st["rng"])

    def resume(self) -> None:
        """Continue from checkpoints/last.pt: model, optimizer, schedule, data order and every RNG.

        The checkpoint's config must equal this one, except keys that do not change the maths
        (RESUME_MAY_CHANGE); anything else is refused with the list of differences.
        """
        st = self.run.load_checkpoint("last")
        changed = config_changes(st.get("config", {}), to_dict(self.cfg))
        if changed:
            from ..errors import ConfigError

            raise ConfigError(
                f"--resume with a changed config: {'; '.join(changed)}. A resumed run must be the run it would "
                f"have been: resume with the run's own config ({self.run.path / 'config.yaml'}), or start a new "
                "run (another --out, or --overwrite)")
        self.load_checkpoint_state(st)
        self.run.truncate_metrics(self.epoch)

    # -- the loop ------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.loss_fn.set_epoch(epoch)
        oc = self.cfg.optimizer
        self.rho_factor = (gnm_noise_factor(epoch, self.cfg.loss.drw_epoch, oc.gnm_halve_at_drw,
                                            oc.gnm_epoch0_doubling) if oc.name == "gnm" else 1.0)
        self.apply_rho()

    def fit(self) -> dict[str, Any]:
        """Train for cfg.epochs (from wherever the state is), evaluate, write the run; returns the summary."""
        cfg = self.cfg
        if self.is_main:
            self.run.write_config(to_dict(cfg))
        t_start = time.time()
        self._stop_requested = False
        handlers = self._install_stop_handlers()
        bar = tqdm(total=self.total_steps, initial=self.global_step, desc=cfg.label or cfg.optimizer.name, unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        try:
            while self.epoch < cfg.epochs:
                self.set_epoch(self.epoch)
                self.model.train()
                self.loss_fn.train()
                batches = self.epoch_batches(self.epoch)[self.step_in_epoch:]
                batch_iter = iter(self.loader(self.data.train, batches))
                while True:
                    # every method draws step t's augmentation and dropout from the same seed (paired runs)
                    seed_everything((cfg.seed * 1_000_003 + self.rank * 7919 + self.global_step) % 2**63)
                    try:
                        x, y = next(batch_iter)
                    except StopIteration:
                        break
                    x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                    t0 = time.perf_counter()
                    loss = self.train_step(x, y)
                    if self.device.type == "cuda":
                        torch.cuda.synchronize()
                    self.step_times.append(time.perf_counter() - t0)
                    self.check_finite(loss)
                    self.step_in_epoch += 1
                    self.global_step += 1
                    self.epoch_losses.append(loss)
                    bar.update()
                    bar.set_postfix(epoch=self.epoch, loss=f"{loss:.3f}")
                    if self._stop_requested:
                        self.stop_now()
                self.end_epoch()
                if self._stop_requested and self.epoch < cfg.epochs:
                    self.stop_now()
        except _Stopped:
            raise
        except KeyboardInterrupt:  # a second Ctrl-C, or one raised from inside a step: keep what is on disk
            print(f"\ninterrupted; the last checkpoint on disk is kept ({self.run.ckpt_dir / 'last.pt'}).\n"
                  f"resume with: {self.resume_command()}", file=sys.stderr)
            raise
        finally:
            bar.close()
            for sig, previous in handlers:
                signal.signal(sig, previous)
        return self.finish(time.time() - t_start)

    def resume_command(self) -> str:
        import shlex

        return (f"python -m ltlab train --config {shlex.quote(str(self.run.path / 'config.yaml'))} "
                f"--out {shlex.quote(str(self.run.path))} --resume")

    def stop_now(self) -> None:
        """Save the exact state at this step boundary, then raise KeyboardInterrupt."""
        path = self.save_checkpoint("last", self.checkpoint_state())
        print(f"\nstopped at epoch {self.epoch} step {self.step_in_epoch}; saved {path}.\n"
              f"resume with: {self.resume_command()}", file=sys.stderr)
        raise _Stopped

    def _install_stop_handlers(self) -> list[tuple[int, Any]]:
        if not _main_thread():
            return []

        def request(signum, frame):
            if self._stop_requested and signum == signal.SIGINT:  # second Ctrl-C: stop immediately
                raise KeyboardInterrupt
            self._stop_requested = True

        return [(sig, signal.signal(sig, request)) for sig in (signal.SIGINT, signal.SIGTERM)]

    def check_finite(self, loss: float, what: str = "loss") -> None:
        """A non-finite loss or weight stops the run before anything diverged is saved."""
        bad = not math.isfinite(loss)
        if not bad:
            with torch.no_grad():
                bad = not all(bool(torch.isfinite(p).all()) for p in self.model.trainable_parameters())
        if bad:
            last = self.run.ckpt_dir / "last.pt"
            kept = (f"the last good checkpoint {last} is kept" if last.exists()
                    else "no checkpoint had been saved yet")
            what = f"{what} became {loss}" if not math.isfinite(loss) else "the weights became non-finite"
            raise TrainingDiverged(f"{what} at step {self.global_step} (epoch {self.epoch}); {kept}. Lower "
                                   "optimizer.lr, use precision=fp32, or check the data.")

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> Path:
        """Only rank 0 writes; the others wait until the file is there."""
        path = self.run.ckpt_dir / f"{name}.pt"
        if self.is_main:
            self.run.save_checkpoint(name, state)
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return path

    def end_epoch(self) -> None:
        """Log the epoch (step loss, loss at w, validation), then checkpoint; the row and last.pt agree."""
        cfg = self.cfg
        row: dict[str, Any] = {
            "epoch": self.epoch + 1, "step": self.global_step,
            # what the optimizer returned each step: L(w) for SGD/AdamW/SAM/ASAM, L(w + e) for GNM, L(w + d) for RSAM
            "step_loss": statistics.fmean(self.epoch_losses) if self.epoch_losses else float("nan"),
            "train_ce_at_w": self.loss_at_w(),  # comparable across methods
            "lr": self.optimizer.base_optimizer.param_groups[0]["lr"],
        }
        # finite weights can still be diverged (|w| ~ 1e30 gives non-finite logits): never save such a state
        self.check_finite(row["train_ce_at_w"], what="the loss at the weights")
        new_best = False
        if (self.epoch + 1) % cfg.eval_every == 0 or self.epoch + 1 == cfg.epochs:
            val = self.evaluate("val")
            row["val"] = {k: v for k, v in val.items() if k != "per_class"}
            new_best = val["overall"] > self.best_val  # ties keep the earlier epoch
            if new_best:
                self.best_val, self.best_epoch = val["overall"], self.epoch + 1
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_losses = []
        state = self.checkpoint_state()
        if new_best:
            self.save_checkpoint("best", state)
        if cfg.save_every and self.epoch % cfg.save_every == 0:
            self.save_checkpoint(f"epoch{self.epoch:03d}", {"model": state["model"], "epoch": self.epoch})
        if self.is_main:
            self.run.log_metrics(row)
        self.save_checkpoint("last", state)
        for cb in self.callbacks:
            cb(self, row)

    def timing(self) -> dict[str, float]:
        times = self.step_times[2:] or self.step_times  # skip warm-up steps
        sec = statistics.median(times) if times else float("nan")
        return {"sec_per_step": sec, "images_per_sec": self.cfg.batch_size / sec if times else float("nan"),
                "peak_memory_mb": peak_memory_mb(self.device)}

    def test_report(self) -> dict[str, Any]:
        """Test metrics of the current weights with their standard errors (binomial, per class)."""
        logits, y = self.predict(self.data.test)
        m = classification_metrics(logits, y, self.data.splits)
        n_per_class = torch.bincount(y, minlength=self.data.num_classes).tolist()
        se = {"overall": binomial_stderr(m["overall"], len(y))}
        for g, classes in self.data.splits.items():
            se[g] = group_stderr([m["per_class"][c] for c in classes if m["per_class"][c] is not None],
                                 [n_per_class[c] for c in classes if m["per_class"][c] is not None])
        m["stderr"] = se
        return m

    def finish(self, wall: float) -> dict[str, Any]:
        """Test metrics of the last epoch and of the best-validation epoch; the headline follows eval.select."""
        last = {"epoch": self.epoch, **self.test_report()}
        best = None
        if self.best_epoch > 0:
            if self.best_epoch == self.epoch:
                best = dict(last)
            else:
                self.model.load_state_dict(self.run.load_checkpoint("best")["model"], strict=False)
                best = {"epoch": self.best_epoch, **self.test_report()}
                self.model.load_state_dict(self.run.load_checkpoint("last")["model"], strict=False)
            best["val_overall"] = self.best_val
        rule = self.cfg.eval.select
        head = best if (rule == "best_val" and best is not None) else last
        brief = lambda m: {k: v for k, v in m.items() if k != "per_class"}  # noqa: E731
        summary = {
            **{k: v for k, v in head.items() if k != "epoch"}, "select": rule, "epoch": head["epoch"],
            "checkpoint": "last" if head["epoch"] == self.epoch else "best",
            "last": brief(last), "best_val": brief(best) if best else None,
            **self.timing(), "process_peak_rss_mb": _rss_mb(), "wall_seconds": wall, "optimizer": self.cfg.optimizer.name,
            "label": self.cfg.label or self.cfg.optimizer.name,
            "closures_per_step": self.optimizer.closures_per_step, "seed": self.cfg.seed,
            "parameters": self.model.parameter_report(), "class_counts": self.data.class_counts,
            "splits": self.data.splits, "provenance": provenance(),
        }
        if self.is_main:
            self.run.write_json("summary.json", summary)
        return summary




def _dist_rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def default_out(cfg: ExperimentConfig) -> Path:
    lpt = "lpt-" if cfg.method == "lpt" else ""
    return Path(f"runs/{cfg.data.name}-{lpt}{cfg.label or cfg.optimizer.name}-s{cfg.seed}")


def fit(cfg: ExperimentConfig, out: str | Path | None = None, resume: bool = False, progress: bool = True,
        overwrite: bool = False, **kwargs) -> dict[str, Any]:
    """Train one run; returns summary.json's dict.

    A directory that already holds a run is refused unless `resume=True` (continue from
    out/checkpoints/last.pt, exactly) or `overwrite=True` (delete that run and start over).
    method="lpt" runs both LPT phases: out/phase1 (shared prompt + head, the pool off) then out
    itself (phase 2: group prompts, keys and head, shared prompt frozen, dual sampling), started
    from phase 1's best checkpoint.
    """
    out = Path(out) if out is not None else default_out(cfg)
    if cfg.method == "lpt" and not kwargs.get("init_from"):
        return fit_lpt(cfg, out, resume, progress, overwrite)
    RunDir(out).prepare(resume=resume, overwrite=overwrite)
    trainer = Trainer(cfg, out, progress=progress, **kwargs)
    if resume:
        trainer.resume()
    return trainer.fit()


def lpt_phases(cfg: ExperimentConfig) -> tuple[ExperimentConfig, ExperimentConfig]:
    """(phase 1, phase 2) configs of LPT (Dong et al. 2023) from one experiment config."""
    import dataclasses

    if cfg.model.pool_size < 1:
        from ..errors import ConfigError

        raise ConfigError("method=lpt needs a group-prompt pool: set model.pool_size (LPT: 20)")
    p1 = dataclasses.replace(cfg, method="vpt", epochs=cfg.lpt_phase1_epochs, dual_sampling=False,
                             model=dataclasses.replace(cfg.model, pool_size=0, freeze_shared_prompt=False))
    p2 = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, freeze_shared_prompt=True))
    return p1, p2


def fit_lpt(cfg: ExperimentConfig, out: Path, resume: bool = False, progress: bool = True,
            overwrite: bool = False) -> dict[str, Any]:
    p1, p2 = lpt_phases(cfg)
    run, phase1_dir = RunDir(out), out / "phase1"
    if resume:
        if not ((phase1_dir / "checkpoints" / "last.pt").exists() or (run.ckpt_dir / "last.pt").exists()):
            run.prepare(resume=True)  # raises: nothing to resume
    else:
        run.prepare(overwrite=overwrite)  # a rerun never reuses an old phase 1
    if not (phase1_dir / "summary.json").exists():
        fit(p1, phase1_dir, resume=resume and (phase1_dir / "checkpoints" / "last.pt").exists(), progress=progress)
    import json

    chosen = json.loads((phase1_dir / "summary.json").read_text()).get("checkpoint", "last")  # phase 1's eval.select
    trainer = Trainer(p2, out, progress=progress, init_from=phase1_dir / "checkpoints" / f"{chosen}.pt")
    if resume and (run.ckpt_dir / "last.pt").exists():
        trainer.resume()
    return trainer.fit()
