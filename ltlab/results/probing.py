"""Probes of trained run directories: what `python -m ltlab probe`, `compare --probe` and notebooks call.

Like with like (the comparison protocol): every run is probed at the checkpoint its headline
reports (summary["checkpoint"], the last epoch by default), on the same seeded training images
(evaluation transforms), and per-class probes use the same number of images for every class.
The loss is plain cross-entropy by default, or (loss="train") the run's own training loss in its
deterministic form (no GCL noise, the DRW weights of the checkpoint's epoch).
Results are saved as RUN_DIR/probes/<name>.npz and re-plotted without recomputation; scalar
results go to RUN_DIR/probes/scalars.json, which the comparison tables read.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DataError
from ..probes import (ProbeResult, gaussian_sharpness, hessian_ratio_along, hessian_trace, per_class, spectral_density,
                     pca_directions, surface_1d, surface_2d, top_eigenvalues, trajectory_pca, worst_case_sharpness)
from .tables import cell
from .vocabulary import FLATNESS, is_reference, method_order
from ..probes.budget import BUDGET
from ..train.tracking import log_probe

PROBES = ("eig", "trace", "density", "surface1d", "surface2d", "sharpness", "worst", "ratio", "per-class")
GAUSSIAN_SIGMA = BUDGET.gaussian_sigma  # per-element std of the average-case probe (ltlab.probes.budget)
WORST_RHO = 0.05


def eval_view(dataset: Any, eval_transform: Any) -> Any:
    """The same samples with deterministic (evaluation) transforms."""
    view = copy.copy(dataset)
    if hasattr(view, "transform"):
        view.transform = eval_transform
    return view


def probe_batch(dataset: Any, num_images: int, seed: int = 0, device: str | torch.device = "cpu"):
    """A fixed, seeded subset of `num_images` samples as one (x, y) batch."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[: min(num_images, len(dataset))].tolist()
    return _stack([dataset[i] for i in idx], device)


def probe_set(dataset: Any, num_images: int | None, batch_size: int, seed: int = 0,
              device: str | torch.device = "cpu"):
    """The probe set: `num_images` seeded images (None: all, in index order) as one batch (x, y) when they fit
    one batch, else a DataLoader (fixed order, no shuffling) that the probes stream on every pass.

    Under torch.distributed every rank takes its disjoint share (`probes.hvp.shard`: no padding, no
    duplicates), and the probes all-reduce over the shares. The same seed picks the same images as
    `probe_batch`, so `--images 256 --batch-size 256` is the one-batch probe of `compare --probe`.
    """
    from torch.utils.data import DataLoader, Subset

    from ..probes.hvp import distributed, shard

    if num_images is None:
        idx = list(range(len(dataset)))
    else:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(dataset), generator=g)[: min(num_images, len(dataset))].tolist()
    if len(idx) <= batch_size and not distributed():
        return probe_batch(dataset, len(idx), seed, device) if num_images is not None else \
            _stack([dataset[i] for i in idx], device)
    return DataLoader(Subset(dataset, shard(idx)), batch_size=batch_size, shuffle=False)


def _stack(items: list, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.stack([torch.as_tensor(it[0]) for it in items]).to(device),
            torch.as_tensor([int(it[1]) for it in items], device=device))


def load_probe_inputs(run_dir: str | Path, num_images: int = 256, seed: int = 0, which: str | None = None,
                      loss: str = "ce"):
    """(model, loss_fn, batch, data bundle, training set with eval transforms) for a run directory.

    which=None probes the checkpoint the run's headline reports; loss is "ce" or "train".
    """
    from ..errors import ConfigError
    from ..train.runs import load_run

    if loss not in ("ce", "train"):
        raise ConfigError(f"loss={loss!r}: use 'ce' (plain cross-entropy) or 'train' (the run's own loss)")
    if num_images < 1:
        raise ConfigError(f"num_images={num_images}: need at least 1 image")
    run = load_run(run_dir)
    model, data, train_loss = run.build(which or run.headline_checkpoint)
    train_eval = eval_view(data.train, data.test.transform)
    loss_fn = nn.CrossEntropyLoss() if loss == "ce" else train_loss
    return model, loss_fn, probe_batch(train_eval, num_images, seed), data, train_eval


def run_probe(name: str, model, loss_fn, batch, data=None, train_eval=None, steps: int = 21, seed: int = 0,
              progress: bool = True) -> tuple[ProbeResult, str]:
    """One named probe -> (result, one-line description)."""
    if name == "eig":
        r = top_eigenvalues(model, loss_fn, batch, k=BUDGET.eigenvalues, which="both", seed=seed)
        top, bottom = r.eigenvalues[:5], r.eigenvalues[5:]
        return r, (f"top-5 eigenvalues {np.round(top, 4).tolist()}, lambda_min {bottom.min():.4g} "
                   f"({'an end point, not a minimum' if bottom.min() < 0 else 'no negative curvature found'}; "
                   f"{r.hvps} HVPs, {r.seconds:.1f} s{'' if r.converged else ', NOT converged'})")
    if name == "trace":
        r = hessian_trace(model, loss_fn, batch, num_hvps=BUDGET.trace_hvps, seed=seed)
        return r, f"trace {r.estimate:.4g} ± {r.stderr:.2g} (hutch++, {r.hvps} HVPs)"
    if name == "density":
        r = spectral_density(model, loss_fn, batch, runs=3, steps=40, seed=seed)
        return r, f"SLQ density: nodes in [{np.nanmin(r.nodes):.3g}, {np.nanmax(r.nodes):.3g}] ({r.hvps} HVPs)"
    if name == "surface1d":
        r = surface_1d(model, loss_fn, batch, steps=2 * steps + 1, seed=seed)
        return r, f"1D slice: loss {r.loss.min():.3f}..{r.loss.max():.3f}"
    if name == "surface2d":
        r = surface_2d(model, loss_fn, batch, steps=steps, seed=seed, progress=progress)
        return r, f"2D surface {steps}x{steps}: loss {r.loss.min():.3f}..{r.loss.max():.3f} ({r.seconds:.1f} s)"
    if name == "sharpness":
        r = gaussian_sharpness(model, loss_fn, batch, sigma=GAUSSIAN_SIGMA, samples=BUDGET.gaussian_samples, seed=seed)
        return r, f"Gaussian sharpness (sigma {GAUSSIAN_SIGMA}) {r.estimate:.4g} ± {r.stderr:.2g}"
    if name == "worst":
        r = worst_case_sharpness(model, loss_fn, batch, rho=WORST_RHO, steps=10, seed=seed)
        return r, f"worst-case sharpness (l2, rho {WORST_RHO}) {r.estimate:.4g}"
    if name == "ratio":
        r = hessian_ratio_along(model, loss_fn, batch, steps=max(5, steps // 2) | 1, seed=seed)
        return r, f"lambda_min/lambda_max along a slice: {np.round(r.ratio, 3).tolist()}"
    if name == "per-class":
        r = per_class(top_eigenvalues, model, loss_fn, train_eval, class_counts=data.class_counts,
                      splits=data.splits, max_per_class=BUDGET.per_class_images, equal=True, seed=seed, tol=1e-2)
        gm = r.group_means()
        return r, (f"per-class lambda_max ({r.images_per_class} images per class): "
                   + ", ".join(f"{g} {cell(gm[g], '{:.3g}')}" for g in ("many", "medium", "few")))
    raise ValueError(f"unknown probe {name!r}; choose from {', '.join(PROBES)}")


def probe_run(run_dir: str | Path, what: Sequence[str], num_images: int | None = 256, steps: int = 21, seed: int = 0,
              progress: bool = True, loss: str = "ce", batch_size: int = 256, split: str = "train",
              device: str = "auto") -> Iterator[str]:
    """Run the named probes on the run's headline checkpoint; save each result under RUN_DIR/probes/.

    num_images=None probes the whole split. More images than `batch_size` are streamed batch by batch
    on every pass (memory does not grow with the number of images). Under torchrun every rank probes
    its share and only rank 0 writes; each saved result records `world_size`.
    """
    from ..errors import ConfigError
    from ..train.runs import load_run
    from ..utils import dist_rank_world

    bad = [w for w in what if w not in PROBES]
    if bad:
        raise ConfigError(f"--what: unknown probe {bad[0]!r}; choose from {', '.join(PROBES)}")
    if steps < 3:
        raise ConfigError(f"steps={steps}: a surface needs at least 3 grid points per axis")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split={split!r}: use train, val or test")
    if batch_size < 1 or (num_images is not None and num_images < 1):
        raise ConfigError(f"images={num_images}, batch_size={batch_size}: both must be at least 1")
    if loss not in ("ce", "train"):
        raise ConfigError(f"loss={loss!r}: use 'ce' (plain cross-entropy) or 'train' (the run's own loss)")
    rank, _ = dist_rank_world()
    dev = torch.device(device if device != "auto" else (f"cuda:{torch.cuda.current_device()}"
                                                         if torch.cuda.is_available() else "cpu"))
    run = load_run(run_dir)
    epochs = run.config.get("epochs")
    epoch = run.metrics[-1]["epoch"] if run.metrics else 0
    if not run.summary and rank == 0:  # an interrupted run: its probes describe a checkpoint a resume will replace
        yield (f"warning: {run_dir} has not finished (its last checkpoint is from epoch {epoch} of {epochs}); "
               "probing that checkpoint. `train --resume` deletes these probes, as they would not describe the "
               "finished run")
    model, data, train_loss = run.build(run.headline_checkpoint, device=str(dev))
    view = eval_view(data.train, data.test.transform) if split == "train" else getattr(data, split)
    if num_images is not None and num_images > len(view) and rank == 0:
        yield f"note: --images {num_images}: the {split} split has {len(view)} images; probing all of them"
    loss_fn = nn.CrossEntropyLoss() if loss == "ce" else train_loss
    batch = probe_set(view, num_images, batch_size, seed, dev)
    suffix = ("" if loss == "ce" else "_train") + ("" if split == "train" else f"_{split}")
    provenance = {"images": min(num_images, len(view)) if num_images is not None else len(view), "split": split,
                  "checkpoint": run.headline_checkpoint, "epoch": epoch, "finished": bool(run.summary),
                  "loss": loss, "seed": seed}
    for name in what:
        result, line = run_probe(name, model, loss_fn, batch, data, view, steps, seed, progress and rank == 0)
        if rank == 0:
            path = result.save(Path(run_dir) / "probes" / f"{name}{suffix}.npz", provenance)
            log_probe(run_dir, f"{name}{suffix}", result)
            yield f"{name}: {line} -> {path}"


SCALARS_VERSION = 2  # 2: per-group lambda_max on equal-size group batches


def flatness_scalars(run_dir: str | Path, num_images: int = 256, seed: int = 0, reuse: bool = True,
                     save: bool = True, trace_hvps: int = BUDGET.scalar_trace_hvps, loss: str = "ce"
                     ) -> dict[str, float]:
    """lambda_max, lambda_min, Hutch++ trace and Gaussian sharpness of the headline checkpoint (plain CE, or
    with loss="train" the run's own training loss in its deterministic form), and lambda_max of each class group
    (many / medium / few) on the same number of training images per group (the smallest group's count, at most
    num_images / 2), so head and tail are measured alike.

    Saved to RUN_DIR/probes/scalars.json (scalars_train.json for loss="train"; save=False: computed, nothing
    written, for a runs directory that is not the caller's own); reuse=True returns that file when it was made
    with the same images, seed, checkpoint, trace budget (`trace_hvps` Hutch++ products) and probe version.
    """
    import json

    suffix = "" if loss == "ce" else "_train"
    saved = Path(run_dir) / "probes" / f"scalars{suffix}.json"
    checkpoint = json.loads((Path(run_dir) / "summary.json").read_text()).get("checkpoint", "last")
    key = (num_images, seed, checkpoint, trace_hvps, SCALARS_VERSION)
    if reuse and saved.exists():
        old = json.loads(saved.read_text())
        if (old.get("images_requested"), old.get("probe_seed"), old.get("checkpoint"),
                old.get("trace_hvps", BUDGET.scalar_trace_hvps), old.get("version")) == key:
            return old
    model, loss_fn, batch, data, train_eval = load_probe_inputs(run_dir, num_images, seed, loss=loss)
    eig = top_eigenvalues(model, loss_fn, batch, k=1, which="both", seed=seed)
    tr = hessian_trace(model, loss_fn, batch, num_hvps=trace_hvps, seed=seed)
    sh = gaussian_sharpness(model, loss_fn, batch, sigma=GAUSSIAN_SIGMA, samples=BUDGET.gaussian_samples, seed=seed)
    probes = Path(run_dir) / "probes"
    if save:
        eig.save(probes / f"eig1{suffix}.npz")
        sh.save(probes / f"sharpness{suffix}.npz")
    out = {"lambda_max": float(eig.eigenvalues[0]), "lambda_min": float(eig.eigenvalues[1]), "trace": tr.estimate,
           "gaussian_sharpness": sh.estimate, "eig_converged": bool(eig.converged), "images": int(len(batch[1]))}
    targets = np.asarray(train_eval.targets)
    sizes = [int(np.isin(targets, data.splits[g]).sum()) for g in ("many", "medium", "few") if data.splits.get(g)]
    per_group = max(1, min([num_images // 2] + sizes))
    for g, gb in group_batches(train_eval, data.splits, per_group, seed).items():
        if g != "all":
            ge = top_eigenvalues(model, loss_fn, gb, k=1, seed=seed)
            out[f"lambda_max_{g}"] = float(ge.eigenvalues[0])
            out["eig_converged"] = out["eig_converged"] and bool(ge.converged)
    out.update({"group_images": per_group, "images_requested": num_images, "probe_seed": seed,
                "checkpoint": checkpoint, "trace_hvps": trace_hvps, "version": SCALARS_VERSION, "loss": loss})
    if save:
        saved.write_text(json.dumps(out, indent=2))
        log_probe(run_dir, f"flatness{suffix}", {k: v for k, v in out.items() if k in FLATNESS})
    return out


def _scalars_job(run_dir: str, num_images: int, reuse: bool, threads: int, save: bool, trace_hvps: int,
                 loss: str = "ce") -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    return flatness_scalars(run_dir, num_images, reuse=reuse, save=save, trace_hvps=trace_hvps, loss=loss)


def add_flatness_columns(rows: list[dict[str, Any]], num_images: int = 256, progress: bool = True,
                         reuse: bool = True, workers: int = 1, save: bool = True,
                         trace_hvps: int = BUDGET.scalar_trace_hvps, loss: str = "ce") -> list[dict[str, Any]]:
    """compare --probe: the flatness scalars of every run, same images for all (probe seed 0); the trace from
    `trace_hvps` Hutch++ products; `loss` as in `flatness_scalars` (plain CE by default).

    workers > 1 probes that many runs at once, in separate processes (each with its share of the
    cores), as `compare` trains them; the numbers agree up to floating-point summation order. save=False writes
    nothing into the runs (a directory that is not the caller's own). Reference rows
    (the linear probe) are not probed: their Hessian is over the head alone, not comparable to prompts + head."""
    import os

    from tqdm.auto import tqdm

    from ..utils import WorkerPool

    rows_todo = [r for r in rows if not is_reference(r["label"])]
    todo = [str(r["run"]) for r in rows_todo]
    if workers <= 1 or len(todo) <= 1:
        results = [flatness_scalars(r, num_images, reuse=reuse, save=save, trace_hvps=trace_hvps, loss=loss)
                   for r in tqdm(todo, desc="probes", unit="run", disable=not progress)]
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with WorkerPool(workers) as pool:
            futures = [pool.submit(_scalars_job, r, num_images, reuse, threads, save, trace_hvps, loss)
                       for r in todo]
            results = [f.result() for f in tqdm(futures, desc=f"probes ({workers} at a time)", unit="run",
                                                disable=not progress)]
    for row, scalars in zip(rows_todo, results):
        row.update({k: v for k, v in scalars.items() if k in FLATNESS})
    return rows


def load_probes(runs_dir: str | Path, name: str) -> dict[str, ProbeResult]:
    """{label: result} for every run under runs_dir (first seed) that has probes/<name>.npz."""
    out: dict[str, ProbeResult] = {}
    for path in sorted(Path(runs_dir).glob(f"*/probes/{name}.npz")):
        label = path.parent.parent.name.rsplit("-s", 1)[0]
        out.setdefault(label, ProbeResult.load(path))
    return {k: out[k] for k in method_order(out)}  # the registry's order (base optimizers first)


def group_batches(dataset: Any, splits: dict[str, list[int]], per_group: int = 128, seed: int = 0
                  ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """One fixed batch per class group (many / medium / few) plus "all", for group-wise landscapes."""
    targets = np.asarray(dataset.targets)
    out = {"all": probe_batch(dataset, per_group, seed)}
    for g, classes in splits.items():
        idx = np.where(np.isin(targets, classes))[0]
        if len(idx):
            rng = np.random.RandomState(seed)
            pick = rng.permutation(idx)[:per_group]
            items = [dataset[int(i)] for i in pick]
            out[g] = (torch.stack([torch.as_tensor(it[0]) for it in items]),
                      torch.as_tensor([int(it[1]) for it in items]))
    return out


def training_path(run_dir: str | Path, model: nn.Module, loss_fn, batch, steps: int = 15, margin: float = 1.25,
                  progress: bool = False):
    """The run's training path (its per-epoch checkpoints) on the loss over the plane of the path's
    top-2 PCA directions, centred at the last epoch (Li et al. 2018, sec. 7).

    Returns (Surface2D on that plane, (coords (epochs, 2), explained variance (2,))); the plane spans
    `margin` x the farthest epoch. Needs ``save_every=1`` (the embedded preset sets it)."""
    from ..train import load_run

    run = load_run(run_dir)
    final = run.checkpoint("last")["model"]
    order = [n for n, _ in model.named_parameters() if n in final]  # the model's order, as surface_2d walks it
    like = {n: final[n] for n in order}
    states = run.epoch_states()
    if not states:
        raise DataError(f"{run_dir} kept no per-epoch checkpoints, so it has no training path to draw; train it with "
                        "save_every=1 (the embedded preset's setting)")
    pca = trajectory_pca([{n: s[n] for n in order} for s in states], like)
    span = margin * float(np.abs(pca.coords).max()) or 1.0
    surface = surface_2d(model, loss_fn, batch, directions=pca_directions(pca, like), span=span, steps=steps,
                         params=order, progress=progress, label=f"{Path(run_dir).name} path")
    return surface, (pca.coords, pca.explained_variance)
