"""The fit loop: schedule, AMP, evaluation each epoch, atomic checkpoints, exact resume, progress bar.

The loop knows no method by name: the optimizer owns its passes (`step(closure)`), its schedules
(`schedule(...)`, called before every step) and what it cannot serve (`refuses(setting)`); the
closure comes from `ltlab.optim.make_closure`. Evaluation, checkpoints, stop requests and the summary
live in their own modules beside this one (evaluation, checkpoint, stopping, summary; LPT in lpt).

Interrupts: Ctrl-C (SIGINT) and SIGTERM ask the loop to stop at the next step boundary (or after
the epoch's evaluation); the state saved there resumes to exactly the uninterrupted run. After the
last epoch's evaluation only the test evaluation is left, so a stop asked for then lets the run finish.
A second Ctrl-C stops at once and keeps the last checkpoint already on disk.
"""
from __future__ import annotations

import math
import os
import shlex
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..config import ExperimentConfig, run_label, to_dict
from ..data import build_dataset, withhold_test
from ..data.samplers import SeededBatch, SeededDataset, restore_cpu_rng, seeded_collate
from ..errors import ConfigError, LtlabError
from ..losses import loss_from_config
from ..models import build_model
from ..optim import create_optimizer, make_closure
from ..optim.base import mean_diagnostics
from ..utils import (EPOCH_SEED_STRIDE, RANK_SEED_STRIDE, RANK_STEP_STRIDE, STEP_SEED_STRIDE, dist_rank_world,
                     resolve_device, seed_everything)
from . import checkpoint, evaluation, summary, tracking
from .compiled import compiled
from .objective import make_objective
from .runs import RunDir, load_checkpoint_file
from .stopping import StopRequests, Stopped


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


class Trainer:
    """Owns one run: data, model, loss, optimizer, schedule, and the run directory.

    Args:
        cfg: the experiment config.
        out: run directory (default runs/<data>-<label>-s<seed>).
        progress: show a tqdm bar (renders in Jupyter too).
        callbacks: called as cb(trainer, row) after every evaluation.
        init_from: a checkpoint whose trainable tensors start the run (LPT phase 2 starts from phase 1).
    """

    def __init__(self, cfg: ExperimentConfig, out: str | Path | None = None, progress: bool = True,
                 callbacks: tuple[Callable[["Trainer", dict], None], ...] = (), init_from: str | Path | None = None):
        self.cfg = cfg
        self.progress, self.callbacks = progress, callbacks
        self.run = RunDir(out or default_out(cfg))
        seed_everything(cfg.seed)
        self.rank, self.world = dist_rank_world()
        self.is_main = self.rank == 0
        self.device = resolve_device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.rank % torch.cuda.device_count())
        self.data = build_dataset(cfg.data)
        if not cfg.eval.test:  # a tuning run: any read of the test split raises (selection never sees it)
            self.data = withhold_test(self.data, "eval.test=false: this run selects on validation only")
        self.model = build_model(cfg.model, self.data.num_classes).to(self.device)
        if init_from is not None:
            self.model.load_state_dict(load_checkpoint_file(init_from)["model"], strict=False)
        self.loss_fn = loss_from_config(cfg, self.data.class_counts).to(self.device)
        self.objective = make_objective(cfg, self.model, self.loss_fn, self.data.class_counts, self.device)
        oc = cfg.optimizer
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.precision == "fp16" else None
        self.optimizer = create_optimizer(
            oc.name, [(n, p) for n, p in self.model.named_parameters() if p.requires_grad], base=oc.base, lr=oc.lr,
            prompt_lr=oc.prompt_lr, momentum=oc.momentum, weight_decay=oc.weight_decay,
            max_grad_norm=oc.clip_grad_norm, class_counts=self.data.class_counts, ascent=oc.ascent, grad_scaler=self.scaler,
            seed=cfg.seed,  # the same perturbation stream on every rank keeps DDP replicas identical
            **oc.method)
        lpt = cfg.dual_sampling or self.model.pool_size > 0
        for setting, used in (("lpt", lpt), ("ddp", self.world > 1), ("accum", cfg.accum_steps > 1),
                              ("local", oc.ascent == "local")):
            why = self.optimizer.refuses(setting) if used else None
            if why:
                raise ConfigError(f"optimizer.name={oc.name} {why}")
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.train_targets = [int(t) for t in getattr(self.data.train, "targets")]
        self.steps_per_epoch = math.ceil(len(self.data.train) / (cfg.batch_size * self.world))
        self.total_steps = cfg.epochs * self.steps_per_epoch
        warmup = int(oc.warmup_epochs * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer.base_optimizer, lambda s: lr_factor(s, self.total_steps, warmup, oc.schedule))
        self.forward = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.model, device_ids=ids,
                                                   find_unused_parameters=self.model.pool_size > 0)
            seed_everything(cfg.seed + RANK_SEED_STRIDE * self.rank)  # different augmentation / dropout per rank
        if cfg.compile:
            self.forward = compiled(self.forward)
        self.state = checkpoint.TrainState()  # where the run stands (what a checkpoint holds beside the tensors)
        self.stops = StopRequests()

    # -- data ----------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's batches (the objective's sampling), a pure function of (seed, epoch): resumable mid-epoch."""
        g = torch.Generator().manual_seed(self.cfg.seed * EPOCH_SEED_STRIDE + epoch)
        batches = self.objective.batches(self.train_targets, self.cfg.batch_size * self.world, g)
        if self.world == 1:
            return batches
        # DDP: every rank takes its contiguous share of each global batch (global = batch_size x world)
        return [b[self.rank * len(b) // self.world:(self.rank + 1) * len(b) // self.world] for b in batches]

    def loader(self, dataset, batches=None, batch_size: int = 256) -> DataLoader:
        """Evaluation batches in order, or the training `SeededBatch`es; workers clamped to the CPUs present."""
        # an own generator: iterating a DataLoader must not consume the global RNG (exact resume)
        kw = dict(num_workers=min(self.cfg.data.num_workers, os.cpu_count() or 1), pin_memory=self.device.type == "cuda",
                  generator=torch.Generator().manual_seed(self.cfg.seed))
        if batches is not None:
            return DataLoader(dataset, batch_sampler=batches, collate_fn=seeded_collate, **kw)
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, **kw)

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- one step ------------------------------------------------------------------------------
    def batch_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The scalar training loss of a batch's logits (`ltlab.train.objective`: LPT's two batches and
        key-query term where they apply; the model's, not an optimizer's)."""
        return self.objective.loss(logits, y, self.state.epoch)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        closure = make_closure(self.optimizer, self.model, self.loss_fn, x, y, forward=self.forward,
                               batch_loss=self.batch_loss, autocast=self.autocast, grad_scaler=self.scaler,
                               accum_steps=self.cfg.accum_steps)
        self.optimizer.schedule(step=self.state.global_step, total_steps=self.total_steps, epoch=self.state.epoch,
                                reweight_epoch=self.cfg.loss.drw_epoch)
        k = self.cfg.eval.diagnostics_every
        diagnose = bool(k) and self.state.global_step % k == 0
        loss = self.optimizer.step(closure, diagnose=diagnose)
        if diagnose:
            self.state.epoch_diagnostics.append(self.optimizer.last_diagnostics)
        if self.scaler is not None:
            self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    # -- evaluation, checkpoints ---------------------------------------------------------------
    def predict(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, targets) of the model on `dataset` (sharded under DDP, gathered)."""
        return evaluation.predict(self.model, self.loader(evaluation.shard(dataset, self.rank, self.world)),
                                  self.device, self.autocast, self.world)

    def evaluate(self, split: str = "val") -> dict[str, Any]:
        logits, y = self.predict(getattr(self.data, split))
        return evaluation.classification_metrics(logits, y, self.data.splits)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return checkpoint.trainable_state(self.model)

    def resume(self) -> None:
        """Continue from checkpoints/last.pt, exactly (a changed config is refused: `checkpoint.resumable`)."""
        st = checkpoint.resumable(self.run, self.cfg)
        self.state = checkpoint.restore(st, self.model, self.optimizer, self.scheduler, self.scaler)
        self.run.truncate_metrics(self.state.epoch)

    def checkpoint(self) -> dict[str, Any]:
        return checkpoint.checkpoint_state(self.state, self.cfg, self.model, self.optimizer, self.scheduler, self.scaler)

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> Path:
        """Only rank 0 writes; the others wait until the file is there."""
        path = self.run.ckpt_dir / f"{name}.pt"
        if self.is_main:
            self.run.save_checkpoint(name, state)
        if self.world > 1:
            torch.distributed.barrier()
        return path

    # -- the loop ------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train for cfg.epochs (from wherever the state is), evaluate, write the run; returns the summary."""
        cfg = self.cfg
        self.tracker = tracking.open_tracker(self.run, cfg) if self.is_main else None
        if self.is_main:
            self.run.write_config(to_dict(cfg))
        t_start = time.time()
        bar = tqdm(total=self.total_steps, initial=self.state.global_step, desc=run_label(cfg), unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        try:
            with self.stops:
                while self.state.epoch < cfg.epochs:
                    self.run_epoch(bar)
                    self.end_epoch()
                    if self.stops.requested and self.state.epoch < cfg.epochs:
                        self.stop_now()
        except Stopped:
            raise
        except KeyboardInterrupt:  # a second Ctrl-C, or one raised from inside a step: keep what is on disk
            print(f"\ninterrupted; the last checkpoint on disk is kept ({self.run.ckpt_dir / 'last.pt'}).\n"
                  f"resume with: {self.resume_command()}", file=sys.stderr)
            raise
        finally:
            bar.close()
            if self.tracker is not None:  # (finish re-opens it for the run's hparams)
                self.tracker.close()
        facts = summary.RunFacts(cfg, self.state, self.data.class_counts, self.data.splits,
                                 self.optimizer.closures_per_step, self.model.parameter_report(), self.device)

        def load_weights(name: str) -> None:
            self.model.load_state_dict(self.run.load_checkpoint(name)["model"], strict=False)

        return summary.finish(facts, self.run, lambda: evaluation.test_report(self.predict, self.data), load_weights,
                              time.time() - t_start, self.is_main, self.tracker)

    def run_epoch(self, bar) -> None:
        """The rest of the current epoch's steps (all of them, unless resumed mid-epoch)."""
        cfg = self.cfg
        self.loss_fn.set_epoch(self.state.epoch)
        self.model.train()
        self.loss_fn.train()
        # every method draws step t's augmentation and dropout from the same seed (paired runs), in whichever
        # process transforms the batch (data.num_workers changes nothing; see SeededDataset)
        step_seed = lambda step: (cfg.seed * STEP_SEED_STRIDE + self.rank * RANK_STEP_STRIDE + step) % 2**63  # noqa: E731
        batches = [SeededBatch(b, step_seed(self.state.global_step + k))
                   for k, b in enumerate(self.epoch_batches(self.state.epoch)[self.state.step_in_epoch:])]
        batch_iter = iter(self.loader(SeededDataset(self.data.train), batches))
        while True:
            seed_everything(step_seed(self.state.global_step))  # CUDA's generator too (dropout on a GPU)
            try:
                (x, y), rng = next(batch_iter)
            except StopIteration:
                return
            restore_cpu_rng(rng)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            t0 = time.perf_counter()
            loss = self.train_step(x, y)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.state.step_times.append(time.perf_counter() - t0)
            self.check_finite(loss)
            self.state.step_in_epoch += 1
            self.state.global_step += 1
            self.state.epoch_losses.append(loss)
            bar.update()
            bar.set_postfix(epoch=self.state.epoch, loss=f"{loss:.3f}")
            if self.stops.requested:
                self.stop_now()

    def resume_command(self) -> str:
        return (f"python -m ltlab train --config {shlex.quote(str(self.run.path / 'config.yaml'))} "
                f"--out {shlex.quote(str(self.run.path))} --resume")

    def stop_now(self) -> None:
        """Save the exact state at this step boundary, then raise KeyboardInterrupt."""
        path = self.save_checkpoint("last", self.checkpoint())
        print(f"\nstopped at epoch {self.state.epoch} step {self.state.step_in_epoch}; saved {path}.\n"
              f"resume with: {self.resume_command()}", file=sys.stderr)
        raise Stopped

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
            raise TrainingDiverged(f"{what} at step {self.state.global_step} (epoch {self.state.epoch}); {kept}. Lower "
                                   "optimizer.lr, use precision=fp32, or check the data.")

    def end_epoch(self) -> None:
        """Log the epoch (step loss, loss at w, validation), then checkpoint; the row and last.pt agree."""
        cfg = self.cfg
        row: dict[str, Any] = {
            "epoch": self.state.epoch + 1, "step": self.state.global_step,
            # what the optimizer returned each step: L(w), or L at the perturbed point for the methods that
            # evaluate only there (see each method's docstring)
            "step_loss": statistics.fmean(self.state.epoch_losses) if self.state.epoch_losses else float("nan"),
            "train_ce_at_w": evaluation.loss_at_w(self.predict, self.data, cfg.eval.train_images, cfg.data.seed),
            "lr": self.optimizer.base_optimizer.param_groups[0]["lr"], **self.optimizer.logged(),
            "sec_per_step": statistics.fmean(self.state.step_times[-self.steps_per_epoch:] or [float("nan")]),
        }
        if self.state.epoch_diagnostics:  # means over the epoch's diagnosed steps (ltlab.optim.base: `diagnostics`)
            row["diag"] = mean_diagnostics(self.state.epoch_diagnostics)
        # finite weights can still be diverged (|w| ~ 1e30 gives non-finite logits): never save such a state
        self.check_finite(row["train_ce_at_w"], what="the loss at the weights")
        new_best = False
        if (self.state.epoch + 1) % cfg.eval_every == 0 or self.state.epoch + 1 == cfg.epochs:
            val = self.evaluate("val")
            row["val"] = {k: v for k, v in val.items() if k != "per_class"}
            new_best = val["overall"] > self.state.best_val  # ties keep the earlier epoch
            if new_best:
                self.state.best_val, self.state.best_epoch = val["overall"], self.state.epoch + 1
        self.state.next_epoch()
        state = self.checkpoint()
        if new_best:
            self.save_checkpoint("best", state)
        if cfg.save_every and self.state.epoch % cfg.save_every == 0:
            self.save_checkpoint(f"epoch{self.state.epoch:03d}", {"model": state["model"], "epoch": self.state.epoch})
        if self.is_main:
            self.tracker.epoch(row, self.run)
        self.save_checkpoint("last", state)
        for cb in self.callbacks:
            cb(self, row)


def default_out(cfg: ExperimentConfig) -> Path:
    lpt = "lpt-" if cfg.method == "lpt" else ""
    return Path(f"runs/{cfg.data.name}-{lpt}{run_label(cfg)}-s{cfg.seed}")


def fit_run(cfg: ExperimentConfig, out: str | Path | None = None, resume: bool = False, progress: bool = True,
            overwrite: bool = False, **kwargs) -> dict[str, Any]:
    """Train one single-phase run (VPT, or one phase of LPT) into `out`; returns summary.json's dict.
    `ltlab.train.fit` is the entry point: it also runs LPT's two phases (ltlab.train.lpt)."""
    out = Path(out) if out is not None else default_out(cfg)
    RunDir(out).prepare(resume=resume, overwrite=overwrite)
    trainer = Trainer(cfg, out, progress=progress, **kwargs)
    if resume:
        trainer.resume()
    return trainer.fit()
