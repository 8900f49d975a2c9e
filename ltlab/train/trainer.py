"""The fit loop: schedule, AMP, per-class evaluation, atomic checkpoints, exact resume, progress bar.

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
from ..utils import resolve_device, rng_restore, rng_snapshot, seed_everything
from .metrics import classification_metrics
from .runs import RunDir, loss_kwargs, provenance


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
        default = f"runs/{cfg.data.name}-{cfg.optimizer.name}-s{cfg.seed}"
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
            self.model.load_state_dict(torch.load(init_from, map_location="cpu", weights_only=False)["model"],
                                       strict=False)
        self.loss_fn = build_loss(cfg.loss.name, self.data.class_counts, cfg.loss.drw_epoch, cfg.loss.beta,
                                  **loss_kwargs(cfg)).to(self.device)
        oc = cfg.optimizer
        self.optimizer = create_optimizer(
            oc.name, self.model.trainable_parameters(), base=oc.base, lr=oc.lr, momentum=oc.momentum,
            weight_decay=oc.weight_decay, rho=oc.rho, sigma=oc.sigma, truncate=oc.truncate, eta=oc.eta,
            seed=cfg.seed,  # the same perturbation stream on every rank keeps DDP replicas identical
        )
        for g in self.optimizer.param_groups:
            if "rho" in g:
                g.setdefault("initial_rho", g["rho"])
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

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.model, device_ids=ids,
                                                   find_unused_parameters=self.model.pool_size > 0)
            seed_everything(cfg.seed + 1000 * self.rank)  # different augmentation / dropout per rank
        if cfg.compile:
            self.forward = torch.compile(self.forward)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_val, self.best_epoch = -1.0, -1
        self.step_times: list[float] = []

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
        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.compute_loss(x, y)
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            return loss

        if self.scaler is not None:
            if hasattr(self.optimizer, "perturbation"):
                loss = self.optimizer.step(closure, grad_scaler=self.scaler)
            else:
                loss = closure()
                self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss = self.optimizer.step(closure)
        self.scheduler.step()
        return float(loss.detach())

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
            "step_times": self.step_times, "config": to_dict(self.cfg),
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
        rng_restore(st["rng"])

    def resume(self) -> None:
        """Continue from checkpoints/last.pt: model, optimizer, schedule, data order and every RNG."""
        self.load_checkpoint_state(self.run.load_checkpoint("last"))
        self.run.truncate_metrics(self.epoch)

    # -- the loop ------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.loss_fn.set_epoch(epoch)
        oc = self.cfg.optimizer
        factor = gnm_noise_factor(epoch, self.cfg.loss.drw_epoch, oc.gnm_halve_at_drw, oc.gnm_epoch0_doubling)
        for g in self.optimizer.param_groups:
            if "initial_rho" in g and oc.name == "gnm":
                g["rho"] = g["initial_rho"] * factor

    def fit(self) -> dict[str, Any]:
        """Train for cfg.epochs (from wherever the state is), evaluate, write the run; returns the summary."""
        cfg = self.cfg
        if self.is_main:
            self.run.write_config(to_dict(cfg))
        t_start = time.time()
        self._stop_requested = False
        self._rng_before_batch = rng_snapshot()
        previous = signal.signal(signal.SIGTERM, self._request_stop) if _main_thread() else None
        bar = tqdm(total=self.total_steps, initial=self.global_step, desc=f"{cfg.optimizer.name}", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        try:
            while self.epoch < cfg.epochs:
                self.set_epoch(self.epoch)
                self.model.train()
                self.loss_fn.train()
                batches = self.epoch_batches(self.epoch)[self.step_in_epoch:]
                losses = []
                batch_iter = iter(self.loader(self.data.train, batches))
                while True:
                    # RNG state before the batch is drawn (augmentation uses it): an interrupted step
                    # is replayed from here on resume
                    self._rng_before_batch = rng_snapshot()
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
                    if not math.isfinite(loss):
                        raise TrainingDiverged(
                            f"loss became {loss} at step {self.global_step} (epoch {self.epoch}); nothing after "
                            f"the last good checkpoint was saved ({self.run.ckpt_dir / 'last.pt'}). Lower "
                            "optimizer.lr, use precision=fp32, or check the data.")
                    self.step_in_epoch += 1
                    self.global_step += 1
                    losses.append(loss)
                    bar.update()
                    bar.set_postfix(epoch=self.epoch, loss=f"{loss:.3f}", best=f"{max(self.best_val, 0):.1f}")
                    if self._stop_requested:
                        raise KeyboardInterrupt
                self.end_epoch(losses)
        except KeyboardInterrupt:
            state = self.checkpoint_state()
            if not self._stop_requested:  # Ctrl-C inside a step: replay that step on resume
                state["rng"] = self._rng_before_batch
            path = self.save_checkpoint("last", state)
            print(f"\ninterrupted at epoch {self.epoch} step {self.step_in_epoch}; saved {path}.\n"
                  f"resume with: python -m ltlab train --config {self.run.path / 'config.yaml'} "
                  f"--out {self.run.path} --resume", file=sys.stderr)
            raise
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return self.finish(time.time() - t_start)

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> Path:
        """Only rank 0 writes; the others wait until the file is there."""
        path = self.run.ckpt_dir / f"{name}.pt"
        if self.is_main:
            self.run.save_checkpoint(name, state)
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return path

    def _request_stop(self, signum, frame) -> None:
        """SIGTERM: finish the current step, then checkpoint and stop."""
        self._stop_requested = True

    def end_epoch(self, losses: list[float]) -> None:
        cfg = self.cfg
        self.epoch += 1
        self.step_in_epoch = 0
        row: dict[str, Any] = {
            "epoch": self.epoch, "step": self.global_step,
            "train_loss": statistics.fmean(losses) if losses else float("nan"),
            "lr": self.optimizer.base_optimizer.param_groups[0]["lr"],
        }
        if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs:
            val = self.evaluate("val")
            row["val"] = {k: v for k, v in val.items() if k != "per_class"}
            if val["overall"] > self.best_val:
                self.best_val, self.best_epoch = val["overall"], self.epoch
                self.save_checkpoint("best", self.checkpoint_state())
        self.save_checkpoint("last", self.checkpoint_state())
        if self.is_main:
            self.run.log_metrics(row)
        for cb in self.callbacks:
            cb(self, row)

    def timing(self) -> dict[str, float]:
        times = self.step_times[2:] or self.step_times  # skip warm-up steps
        sec = statistics.median(times) if times else float("nan")
        return {"sec_per_step": sec, "images_per_sec": self.cfg.batch_size / sec if times else float("nan"),
                "peak_memory_mb": peak_memory_mb(self.device)}

    def finish(self, wall: float) -> dict[str, Any]:
        """Test metrics of the best-on-validation checkpoint (and of the last one); write summary.json."""
        last = self.evaluate("test")
        if self.best_epoch > 0:
            self.model.load_state_dict(self.run.load_checkpoint("best")["model"], strict=False)
        test = self.evaluate("test")
        summary = {
            **test, "best_epoch": self.best_epoch, "best_val": self.best_val,
            "last": {k: v for k, v in last.items() if k != "per_class"},
            **self.timing(), "process_peak_rss_mb": _rss_mb(), "wall_seconds": wall, "optimizer": self.cfg.optimizer.name,
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


def fit(cfg: ExperimentConfig, out: str | Path | None = None, resume: bool = False, progress: bool = True,
        **kwargs) -> dict[str, Any]:
    """Train one run; `resume=True` continues from out/checkpoints/last.pt. Returns summary.json's dict.

    method="lpt" runs both LPT phases: out/phase1 (shared prompt + head, the pool off) then out
    itself (phase 2: group prompts, keys and head, shared prompt frozen, dual sampling), started
    from phase 1's best checkpoint.
    """
    if cfg.method == "lpt" and not kwargs.get("init_from"):
        return fit_lpt(cfg, out, resume, progress)
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


def fit_lpt(cfg: ExperimentConfig, out: str | Path | None = None, resume: bool = False,
            progress: bool = True) -> dict[str, Any]:
    out = Path(out or f"runs/{cfg.data.name}-lpt-{cfg.optimizer.name}-s{cfg.seed}")
    p1, p2 = lpt_phases(cfg)
    phase1_dir = out / "phase1"
    if not (phase1_dir / "summary.json").exists():
        fit(p1, phase1_dir, resume=resume and (phase1_dir / "checkpoints" / "last.pt").exists(), progress=progress)
        resume = False
    trainer = Trainer(p2, out, progress=progress, init_from=phase1_dir / "checkpoints" / "best.pt")
    if resume:
        trainer.resume()
    return trainer.fit()
