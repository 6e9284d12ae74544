"""The training loop: one resolved config in, a run folder with checkpoints out.

Design points:

* With frozen backbones the features come from :mod:`qpcore.feature_cache` and an
  epoch trains only the head, on tensors; otherwise images are decoded and
  preprocessed by a ``DataLoader`` every epoch.
* A resumed run ends with the same weights as one never interrupted: shuffling
  draws from a generator seeded by ``(seed, epoch)``, the global RNG states are
  saved with every checkpoint (:mod:`qpcore.training_state`), and ``last.pt`` is
  written atomically after every epoch, before anything else can fail.
* Metrics are computed over whole epochs (a Pearson per batch is noise), written
  to ``metrics.jsonl`` one object per line; an undefined statistic is ``null``.

What lives elsewhere: the data set-up in :mod:`qpcore.training_data`, best-model
and early-stopping decisions in :mod:`qpcore.early_stopping`, what a checkpoint
holds besides weights in :mod:`qpcore.training_state`, the run folder's other
files in :mod:`qpcore.run_files`, and what monitors may use of a run in
:mod:`qpcore.run`.
"""

from __future__ import annotations

import copy
import gc
import math
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from qpcore import hookspecs, training_state
from qpcore import report as html_report
from qpcore.build import (
    build_loss,
    build_model,
    build_optimizer,
    component_origins,
    pick_device,
    versions,
)
from qpcore.checkpoint import BackboneRecord, CheckpointMeta, load_checkpoint, save_checkpoint
from qpcore.config import RunConfig
from qpcore.config_io import dump_yaml
from qpcore.data.dataset import LabelledData
from qpcore.data.manifest import Sample
from qpcore.data.protocol import PROTOCOL
from qpcore.distributed import Distributed
from qpcore.early_stopping import EarlyStopping, improves, watched
from qpcore.epoch_metrics import metric_mode
from qpcore.errors import CheckpointError, QPError
from qpcore.evaluation import EvalData, regression_metrics, run_evaluators
from qpcore.feature_cache import ImageInputs
from qpcore.html import Section
from qpcore.locking import hold_folder
from qpcore.loss_output import split_loss_output
from qpcore.monitoring import Control, load_monitor_states, monitor_states, scale_lr
from qpcore.registry import Registry
from qpcore.restore import load_weights, rebuild_config
from qpcore.run import ReportingMonitor, wants_grad_norm
from qpcore.run_files import BEST, LAST, RunFiles, new_run_dir
from qpcore.schedulers import ScheduledLR, build_scheduler
from qpcore.training_data import (
    attach_features,
    build_dataset,
    data_fingerprint,
    load_splits,
    plain_features,
)
from qpcore.training_state import RunState
from qpcore.validate import resolve_config

__all__ = ["BEST", "LAST", "ResumePoint", "Trainer", "new_run_dir"]


@dataclass(frozen=True)
class ResumePoint:
    """A checkpoint a run continues from, already read and checked."""

    file: Path
    meta: CheckpointMeta
    payload: dict[str, Any]


class Trainer:
    """Trains one run. It is the ``run`` monitors' hooks receive; what they may
    use of it is :class:`qpcore.run.Run`.

    Constructing a trainer sets everything up (data, cached features, model,
    loss, optimizer, scheduler; a resumed run's state), so a config that cannot
    train fails here; :meth:`fit` then trains.

    Args:
        cfg: A resolved config (see :func:`qpcore.validate.resolve_config`).
        registry: The installed components (for the report's plugin list and
            the checkpoint's record of providers).
        run_dir: The run folder (created).
        monitors: Extra hook objects (the config's monitors are added to them).
        quiet: No progress bars or per-epoch lines.
        splits: Train/val/test rows to use instead of the dataset's own split
            (cross-validation folds).
        data: The dataset, when the caller built it already (folds share one).
        resume_from: Continue this checkpoint (see :meth:`resume`).
    """

    def __init__(
        self,
        cfg: RunConfig,
        registry: Registry,
        run_dir: Path,
        monitors: Iterable[object] = (),
        quiet: bool = False,
        splits: Mapping[str, list[Sample]] | None = None,
        *,
        data: LabelledData | None = None,
        resume_from: ResumePoint | None = None,
    ) -> None:
        self.cfg = cfg
        self.registry = registry
        tcfg = cfg.trainer
        # Under torchrun: every rank trains, rank 0 alone writes and reports.
        self.dist = Distributed.start(tcfg.strategy, tcfg.device)
        self.run_dir = Path(self.dist.agree(str(run_dir)))
        self.quiet = quiet or not self.dist.main
        self.files = RunFiles(self.run_dir, writes=self.dist.main)
        self.resumed = resume_from is not None
        if resume_from is None:
            self.files.refuse_existing_run()  # before minutes of set-up; again under the lock
        self.hooks = pluggy.PluginManager(hookspecs.PROJECT)
        self.hooks.add_hookspecs(hookspecs)
        extra = list(monitors) if self.dist.main else []
        self.monitors = self._register_monitors(extra)
        self._wants_grad_norm = wants_grad_norm([*self.monitors.values(), *extra])
        self.control = Control()
        self.state = RunState()
        self.early_stopping = EarlyStopping(
            tcfg.early_stopping.monitor,
            tcfg.early_stopping.patience,
            tcfg.early_stopping.min_delta,
            tcfg.early_stopping.enabled,
        )
        self.best_weights: dict[str, Tensor] | None = None
        self.batches_per_epoch = 0
        # The checkpoint a rollback returns to: the last one this session saved
        # or resumed from (a periodic one may be older than last.pt).
        self._last_good: Path | None = resume_from.file if resume_from else None
        self._retry_scale = 1.0
        # The evaluators' findings and sections, kept for the report written
        # after qp_on_fit_end.
        self._evaluation: tuple[dict[str, Any], list[Section]] | None = None

        if tcfg.num_threads:
            torch.set_num_threads(tcfg.num_threads)
        training_state.seed_everything(tcfg.seed, tcfg.deterministic)
        self.device = self.dist.device(pick_device(tcfg.device))
        self.data = data if data is not None else build_dataset(cfg)
        self.splits = load_splits(cfg, self.data, splits)
        self.model = build_model(cfg)
        # Computing features must not move the global RNG: a cold cache and a warm
        # one have to train the same weights.
        with torch.random.fork_rng(devices=[]):
            self.cached = attach_features(
                cfg, self.model, self.splits, self.device, self.dist, self._say, not self.quiet
            )
            stats_features = self.splits["train"].features
            if stats_features is None and not self.model.backbones_trainable:
                stats_features = plain_features(
                    cfg, self.model, self.splits["train"], self.device, not self.quiet
                )
        if stats_features is not None:
            self.model.set_feature_stats(stats_features, self.splits["train"].params)
        self.size_metrics = self._fit_size_head() if self.model.size_head is not None else {}
        self.model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self.loss = build_loss(cfg).to(self.device)
        self.optimizer = build_optimizer(cfg, self.model, self.loss)
        self.scheduler: ScheduledLR | None = None
        if cfg.scheduler is not None:
            steps = math.ceil(len(self._batches(0)) / tcfg.accumulate)
            self.scheduler = build_scheduler(
                cfg.scheduler.spec, cfg.scheduler.params, self.optimizer, tcfg.epochs, steps
            )
        if resume_from is not None:
            self._restore(resume_from)
            self._check_resume(resume_from.file)
        self._backbones = self._backbone_records()
        # What every checkpoint records of the software; the same all run long.
        self._versions = versions()
        self._origins = component_origins(cfg, registry)
        self._sample_inputs: list[Tensor] | None = None
        self._ddp: torch.nn.parallel.DistributedDataParallel | None = None
        if self.dist.enabled:
            # Model and loss in one module: DDP then averages the gradients of
            # both (a loss may learn weights of its own).
            self._ddp = torch.nn.parallel.DistributedDataParallel(
                _Objective(self), device_ids=[self.device] if self.device.type == "cuda" else None
            )

    def _register_monitors(self, extra: list[object]) -> dict[str, object]:
        """The config's monitors by name (then ``extra``) on this run's hooks;
        none on ranks other than 0."""
        monitors: dict[str, object] = {}
        if not self.dist.main:
            return monitors
        for ref in self.cfg.monitors:
            name = ref.name if ref.name not in monitors else f"{ref.name}#{len(monitors)}"
            monitors[name] = ref.spec.build(ref.params)
            self.hooks.register(monitors[name])
        for monitor in extra:
            self.hooks.register(monitor)
        return monitors

    def request_stop(self, reason: str) -> None:
        """End the run after the current batch (for monitors); the last finished
        epoch's checkpoint is kept for ``--resume``."""
        self.control.request("stop", reason)

    def request_rollback(self, reason: str, lr_factor: float = 0.5) -> None:
        """Reload the last finished epoch after the current batch, scale the
        learning rate by ``lr_factor`` and redo the epoch (for monitors)."""
        if not 0 < lr_factor <= 1:
            raise QPError(f"lr_factor must lie in (0, 1], got {lr_factor}")
        self.control.request("rollback", reason, lr_factor)

    @classmethod
    def resume(
        cls,
        path: str | Path,
        registry: Registry,
        monitors: Iterable[object] = (),
        quiet: bool = False,
    ) -> Trainer:
        """A trainer that continues the run of ``path`` (a run folder or a
        checkpoint) from its last completed epoch."""
        path = Path(path)
        file = path / LAST if path.is_dir() else path
        meta, payload = load_checkpoint(file)
        training = payload.get("training")
        if training is None:
            raise QPError(f"{file}: holds weights only, no training state to resume from")
        training_state.check_training(training, file)
        cfg = resolve_config(rebuild_config(meta, file), registry, source=f"{file} (its config)")
        point = ResumePoint(file, meta, payload)
        return cls(cfg, registry, file.parent, monitors, quiet, resume_from=point)

    def _fit_size_head(self) -> dict[str, float | None]:
        """The SVG-size head on the cached features (:mod:`qpcore.size_model`);
        before the optimizer is built, which then leaves the frozen head out."""
        from qpcore.size_model import fit_size_head

        train, val = self.splits["train"], self.splits["val"]
        if train.features is None or val.features is None:
            raise QPError(
                "model.targets: svg_bytes is fitted on cached features: it needs frozen "
                "backbones and no trainer.augment"
            )
        params = self.model.params_input
        found = fit_size_head(
            self.model,
            (train.features.cpu(), train.params if params else None, train.samples),
            (val.features.cpu(), val.params if params else None, val.samples),
            self.cfg.trainer.seed,
        )
        pearson, error = found["size_pearson_log"], found["size_median_rel_error"]
        self._say(
            "size head: val Pearson on log bytes "
            f"{'undefined' if pearson is None else f'{pearson:.4f}'}, median relative error "
            f"{'undefined' if error is None else f'{error:.1%}'}"
        )
        return found

    # --- the loop ----------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop) and return the final results.

        The run folder is locked for the whole fit: a second trainer on the same
        folder is refused at once, never interleaved with this one.
        """
        lock = hold_folder(self.run_dir, "training run") if self.dist.main else nullcontext()
        with lock:
            if not self.resumed:
                self.files.refuse_existing_run()
            return self._fit()

    def _check_resume(self, file: Path) -> None:
        """Refuse to continue a checkpoint in another run's folder, on other data
        or on another number of processes (the batches would change)."""
        if self.state.world_size != self.dist.world:
            raise QPError(
                f"{self.run_dir} trained on {self.state.world_size} process(es), this resume "
                f"runs on {self.dist.world}; a different count changes the global batch, so "
                f"resume with torchrun --nproc_per_node {self.state.world_size} "
                "(or 1 process: plain qp train --resume)"
            )
        folder_id = self.files.recorded_run_id()
        if None not in (folder_id, self.state.run_id) and folder_id != self.state.run_id:
            raise QPError(
                f"{file} belongs to run {self.state.run_id}, but "
                f"{self.run_dir} holds run {folder_id}; resume a run from its own "
                "folder (or copy the whole run folder)"
            )
        digest = data_fingerprint(self.splits)
        if self.state.data_digest is not None and digest != self.state.data_digest:
            then = self.state.data_rows or {}
            now = {k: len(v) for k, v in self.splits.items()}
            counts = ", ".join(f"{k} {then.get(k, '?')} -> {now[k]}" for k in sorted(now))
            raise QPError(
                f"the training data of {self.run_dir} changed since the run started "
                f"(rows: {counts}; or labels, params or image files differ). "
                "A resumed run must see the data it started with: restore the data, "
                "or start a new run"
            )

    def _fit(self) -> dict[str, Any]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.resumed:
            self.state.world_size = self.dist.world
            self.state.run_id = self.dist.agree(uuid.uuid4().hex)
            self.state.data_digest = data_fingerprint(self.splits)
            self.state.data_rows = {k: len(v) for k, v in self.splits.items()}
            self.files.start(self.cfg, self.state.run_id, self.state.data_digest)
        self.files.write_history(self.state.history)
        epochs = self.cfg.trainer.epochs
        try:
            self.hooks.hook.qp_on_fit_start(run=self)
            # A run that stopped early stays stopped when resumed; a rollback
            # lowers state.epoch, and that epoch is trained again.
            while self.state.stop_reason is None and self.state.epoch < epochs:
                if self._epoch(self.state.epoch + 1):
                    break
            results = self._finish()
        except BaseException as error:
            self.hooks.hook.qp_on_exception(run=self, error=error)
            if isinstance(error, KeyboardInterrupt) and self.state.epoch == 0:
                self._say("interrupted during the first epoch: nothing was saved")
            elif isinstance(error, KeyboardInterrupt):
                self._say(
                    f"interrupted; {self.state.epoch} epochs are safe in {self.run_dir / LAST}. "
                    f"Continue with: qp train --resume {self.run_dir}"
                )
            raise
        try:
            self.hooks.hook.qp_on_fit_end(run=self, results=results)
        except BaseException as error:
            # Monitors after the failing one never saw fit_end: let them close.
            self.hooks.hook.qp_on_exception(run=self, error=error)
            raise
        self._write_report()
        return results

    def _epoch(self, epoch: int) -> bool:
        """Train and validate one epoch; returns whether to stop."""
        started = time.perf_counter()
        batches = self._batches(epoch)
        self.batches_per_epoch = len(batches)
        self.hooks.hook.qp_on_epoch_start(run=self, epoch=epoch)
        set_epoch = getattr(self.loss, "set_epoch", None)  # optional in the loss contract
        if callable(set_epoch):
            set_epoch(epoch)
        lr = self.optimizer.param_groups[0]["lr"]
        metrics: dict[str, Any] = {"epoch": epoch, "lr": lr}
        metrics.update(self._run_split("train", epoch, batches))
        if self.control.action is not None:
            return self._act_on_request(epoch)
        if len(self.splits["val"]):
            metrics.update(self._run_split("val", epoch))
        metrics["time_s"] = round(time.perf_counter() - started, 4)
        metrics["timestamp"] = datetime.now().astimezone().isoformat(timespec="seconds")
        stop = self._after_epoch(epoch, metrics)
        self._agree_control()
        if self.control.action is not None:  # asked for at epoch end: the epoch is saved
            action, reason, _ = self.control.take()
            if action == "rollback":
                reason += " (a rollback asked for at an epoch's end stops instead)"
            self.state.stop_reason = f"stopped after epoch {epoch}: {reason}"
            self._say(self.state.stop_reason)
            stop = True
        if self.device.type == "cuda":
            gc.collect()  # frees what empty_cache can then hand back
            torch.cuda.empty_cache()
        else:
            # Young objects only: a full collection walks every object of the
            # process (180 ms an epoch on the default run, half its training time).
            gc.collect(1)
        return stop

    def _act_on_request(self, epoch: int) -> bool:
        """Carry out a monitor's stop or rollback; returns whether to stop."""
        action, reason, factor = self.control.take()
        file = self._last_good
        if action == "rollback" and file is not None:
            meta, payload = load_checkpoint(file)
            load_weights(self.model, meta, payload["model"], file)
            self._load_training(payload["training"])
            # Retries of one epoch compound: x0.5, then x0.25 of the saved rate.
            self._retry_scale *= factor
            scale_lr(self.optimizer, self.scheduler, self._retry_scale)
            self.files.write_history(self.state.history)
            self._say(
                f"{reason}: rolled back to epoch {self.state.epoch} ({file.name}), learning "
                f"rate x{self._retry_scale:g} (now {self.optimizer.param_groups[0]['lr']:.2e})"
            )
            return False
        if action == "rollback":
            reason += "; nothing to roll back to before the first epoch ends"
        kept = f"epoch {self.state.epoch} kept in {LAST}" if self.state.epoch else "nothing kept"
        self.state.stop_reason = f"stopped in epoch {epoch}: {reason}; {kept}"
        self._say(self.state.stop_reason)
        return True

    def _after_epoch(self, epoch: int, metrics: dict[str, Any]) -> bool:
        tcfg, state = self.cfg.trainer, self.state
        finite = all(
            v is None or math.isfinite(v) for k, v in metrics.items() if isinstance(v, float)
        )
        if not finite and tcfg.early_stopping.check_finite:
            kept = f"weights of epoch {state.epoch} kept" if state.epoch else "no weights kept"
            state.stop_reason = f"non-finite metrics at epoch {epoch}; {kept}"
            state.history.append(metrics)
            self.files.write_history(state.history)
            self.hooks.hook.qp_on_epoch_end(run=self, epoch=epoch, metrics=metrics)
            self._say(state.stop_reason)
            return True
        seen = watched(metrics)
        if self.scheduler is not None:
            self.scheduler.step_epoch(seen)
        state.epoch = epoch
        state.history.append(metrics)
        ckpt = tcfg.checkpoint
        improved = improves(seen.get(ckpt.monitor), state.best_value, metric_mode(ckpt.monitor))
        if improved:
            state.best_value, state.best_epoch = seen[ckpt.monitor], epoch
            self.best_weights = copy.deepcopy(self.model.state_dict())
        reason = self.early_stopping.update(seen)
        if reason is not None:
            state.stop_reason = reason
        # Monitors see the epoch before it is saved, so their state in the
        # checkpoint includes it and a resume continues from there.
        self.hooks.hook.qp_on_epoch_end(run=self, epoch=epoch, metrics=metrics)
        self._save(LAST, epoch, metrics)
        self._last_good = self.run_dir / LAST
        self._retry_scale = 1.0
        if improved:
            self._save(BEST, epoch, metrics, training=False)
        if ckpt.every and epoch % ckpt.every == 0:
            self._save(f"epoch-{epoch:04d}.pt", epoch, metrics)
            self.files.prune_periodic(ckpt.keep_last)
        self.files.append_metrics(metrics)
        self.dist.barrier()  # the checkpoint is on disk before any rank reads it
        return reason is not None

    def _batches(self, epoch: int, split: str = "train") -> list[Tensor]:
        """Row indices of each batch. Training batches are global (every rank
        draws the same ones, then takes its slice); other splits are this
        rank's contiguous share of the rows, in order."""
        rows = self.splits[split]
        size = self.cfg.trainer.batch_size
        if split != "train":
            return list(self.dist.shard(torch.arange(len(rows)))[0].split(size))
        generator = torch.Generator().manual_seed(self.cfg.trainer.seed * 100_003 + epoch)
        world = self.dist.world
        batches = list(torch.randperm(len(rows), generator=generator).split(size * world))
        # BatchNorm cannot train on one row, and under DDP every rank needs a
        # slice: a last batch too small for that waits for the next epoch.
        smallest = world * (2 if self.cfg.model.head.batch_norm else 1)
        if len(batches) > 1 and len(batches[-1]) < smallest and (world > 1 or smallest > 1):
            batches.pop()
        return batches

    def _inputs(self, split: str, batches: list[Tensor], epoch: int) -> Iterator[Any]:
        rows = self.splits[split]
        if rows.features is not None:
            for index in batches:
                yield rows.features[index]
            return
        augment = self.cfg.trainer.augment if split == "train" else ()
        dataset = ImageInputs(
            [s.image for s in rows.samples], self.model.preprocess, augment, self.cfg.trainer.seed
        )
        dataset.epoch = epoch
        loader = DataLoader(
            dataset,
            batch_sampler=[index.tolist() for index in batches],
            num_workers=self.cfg.trainer.num_workers,
            # Its own generator: data loading never draws from the global RNG.
            generator=torch.Generator().manual_seed(self.cfg.trainer.seed),
        )
        yield from loader

    def forward(self, inputs: Any, params: Tensor) -> Tensor:
        """Predictions for one batch as the loop makes them (device, autocast)."""
        params = params.to(self.device)
        cuda = self.device.type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
        with autocast:
            if isinstance(inputs, Tensor):
                pred = self.model.predict_features(inputs.to(self.device), params)
            else:
                tensors = [
                    x.to(self.device, memory_format=torch.channels_last)
                    if cuda and x.dim() == 4
                    else x.to(self.device)
                    for x in inputs
                ]
                pred = self.model(tensors, params)
        return pred.float()

    def sample_batch(self, size: int) -> tuple[Any, Tensor, Tensor]:
        """The first ``size`` training rows as the loop feeds them: inputs
        (features or images), encoded params and labels; for monitors that
        time the model."""
        rows = self.splits["train"]
        index = torch.arange(min(size, len(rows)))
        inputs = next(iter(self._inputs("train", [index], 0)))
        return inputs, rows.params[index], rows.labels[index].to(self.device)

    def _run_split(
        self, split: str, epoch: int, batches: list[Tensor] | None = None
    ) -> dict[str, float | None]:
        training = split == "train"
        rows = self.splits[split]
        batches = self._batches(epoch, split) if batches is None else batches
        self.model.train(training)
        self.loss.train(training)
        accumulate = self.cfg.trainer.accumulate
        preds, targets, loss_sum, count = [], [], 0.0, 0
        part_sums: dict[str, float] = {}  # the loss's own components, row-weighted
        grad = torch.enable_grad() if training else torch.no_grad()
        clock = time.perf_counter
        shards = [self.dist.shard(index) if training else (index, 1.0) for index in batches]
        with grad:
            self.optimizer.zero_grad(set_to_none=True)
            inputs_of = iter(self._inputs(split, [index for index, _ in shards], epoch))
            for b, (index, weight) in enumerate(shards):
                t0 = clock()
                inputs = next(inputs_of)
                t1 = clock()
                target = rows.labels[index].to(self.device)
                stepping = (b + 1) % accumulate == 0 or b + 1 == len(batches)
                # Under DDP, gradients are averaged only on the step's last micro-batch.
                sync = (
                    self._ddp.no_sync()
                    if self._ddp and training and not stepping
                    else nullcontext()
                )
                with sync:
                    if self._ddp is not None and training:
                        pred, output = self._ddp(inputs, rows.params[index], target)
                    else:
                        pred = self.forward(inputs, rows.params[index])
                        output = self.loss(pred, target)
                    total, parts = split_loss_output(output)
                    t2 = t3 = t4 = clock()
                    norm = None
                    if training:
                        group = min(accumulate, len(batches) - (b // accumulate) * accumulate)
                        (total * weight / group).backward()
                        t3 = clock()
                if training:
                    if stepping:
                        norm = self._step()
                    t4 = clock()
                value = float(total.detach())
                loss_sum += value * len(index)
                for name, part in parts.items():
                    part_sums[name] = part_sums.get(name, 0.0) + part * len(index)
                count += len(index)
                preds.append(pred.detach().cpu())
                targets.append(target.cpu())
                if training:
                    batch = {
                        "loss": value,
                        "mae": float((preds[-1] - targets[-1]).abs().mean()),
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "rows": len(index),
                        "data_s": t1 - t0,
                        "forward_s": t2 - t1,
                        "backward_s": t3 - t2,
                        "step_s": t4 - t3,
                    }
                    if norm is not None:
                        batch["grad_norm"] = norm
                    self.hooks.hook.qp_on_batch_end(run=self, epoch=epoch, batch=b, metrics=batch)
                    self._agree_control()
                    if self.control.action is not None:
                        break
        # Every rank scores the whole epoch: the same metrics, the same decisions.
        pred_all = self.dist.gather(torch.cat(preds) if preds else torch.zeros(0))
        target_all = self.dist.gather(torch.cat(targets) if targets else torch.zeros(0))
        names = sorted(part_sums)
        if self.dist.enabled:
            names = self.dist.agree(names)  # every rank sums the same components
        row = [loss_sum, count, *(part_sums.get(n, 0.0) for n in names)]
        sums = self.dist.gather(torch.tensor([row], dtype=torch.float64)).sum(0)
        loss_sum, count = float(sums[0]), int(sums[1])
        found = regression_metrics(pred_all.numpy(), target_all.numpy())
        metrics: dict[str, float | None] = {
            f"{split}_loss": loss_sum / max(count, 1),
            f"{split}_mae": found["mae"],
            f"{split}_mse": found["mse"],
            f"{split}_pearson": found["pearson"],
        }
        # What a loss returns besides its total (combined's terms and their
        # current weights): the epoch's row-weighted mean, as train_loss is.
        for i, name in enumerate(names):
            metrics[f"{split}_loss_{name}"] = float(sums[2 + i]) / max(count, 1)
        return metrics

    def _agree_control(self) -> None:
        """Monitors run on rank 0: its pending request becomes every rank's."""
        if self.dist.enabled:
            request = (self.control.action, self.control.reason, self.control.lr_factor)
            self.control.action, self.control.reason, self.control.lr_factor = self.dist.agree(
                request
            )

    def _step(self) -> float | None:
        """One optimizer step; returns the gradient norm when clipping or a
        monitor (``wants_grad_norm``) needs it."""
        clip = self.cfg.trainer.grad_clip
        norm = None
        if clip is None and self._wants_grad_norm:
            grads = [p.grad for g in self.optimizer.param_groups for p in g["params"]]
            norm = float(torch.nn.utils.get_total_norm([g for g in grads if g is not None]))
        if clip is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step_batch()
        return norm

    # --- results -----------------------------------------------------------

    def _finish(self) -> dict[str, Any]:
        """Score the best weights on val and test; write ``results.json``."""
        best = self.best_weights
        if best is not None:
            self.model.load_state_dict(best)
        results: dict[str, Any] = {
            "run_dir": str(self.run_dir),
            "epochs": self.state.epoch,
            "best_epoch": self.state.best_epoch,
            "stop_reason": self.state.stop_reason,
            "feature_cache": self.cached,
        }
        if self.size_metrics:
            results["size"] = self.size_metrics
        for split in ("val", "test"):
            # No finite epoch (NaN from the first one): nothing worth scoring.
            if len(self.splits[split]) and best is not None:
                results[split] = {"rows": len(self.splits[split]), **self.score(split)}
        if self.cfg.evaluators and len(self.splits["test"]) and best is not None:
            results["evaluation"] = str(self._evaluate_test())
        self.files.write_results(results)
        return results

    def score(self, split: str) -> dict[str, float | None]:
        """Metrics of the current weights on one split."""
        return regression_metrics(self.predict_split(split), self.splits[split].labels.numpy())

    def _evaluate_test(self) -> Path:
        """The config's evaluators on the test split into ``eval/metrics.json``
        (returned); their report sections wait for :meth:`_write_report`."""
        rows = self.splits["test"]
        predictions = self.predict_split("test")  # on every rank: it gathers
        if not self.dist.main:
            return self.files.write_evaluation({})
        data = EvalData(predictions, rows.labels.numpy().astype(float), rows.samples)
        sections: list[Section] = []
        report = run_evaluators(data, self.cfg.evaluators, self.registry, sections)
        report["split"] = "test"
        if self.cfg.output.report:
            self._evaluation = (report, sections)
        return self.files.write_evaluation(report)

    def _write_report(self) -> None:
        """``eval/report.html``: the evaluators' sections, then those of monitors
        with ``report(run)`` (written after ``qp_on_fit_end``, so monitors have
        finished their summaries)."""
        if self._evaluation is None:
            return
        report, sections = self._evaluation
        for monitor in self.monitors.values():
            if isinstance(monitor, ReportingMonitor):
                sections = [*sections, *monitor.report(self)]
        facts = [
            ("run", str(self.run_dir)),
            ("split", f"test, {report['metrics']['rows']} rows"),
            ("best epoch", str(self.state.best_epoch)),
        ]
        written = html_report.write_evaluation_report(
            self.run_dir / "eval",
            facts,
            report,
            sections,
            history=self.state.history,
            config_yaml=dump_yaml(self.cfg),
            registry=self.registry,
            device=str(self.device),
        )
        self._say(f"report: {written}")

    def predict_split(self, split: str) -> np.ndarray:
        """Predictions of the current weights for one split, in row order."""
        self.model.eval()
        rows = self.splits[split]
        batches = self._batches(0, split)
        with torch.no_grad():
            preds = [
                self.forward(inputs, rows.params[index]).cpu()
                for index, inputs in zip(batches, self._inputs(split, batches, 0), strict=True)
            ]
        return self.dist.gather(torch.cat(preds) if preds else torch.zeros(0)).numpy()

    # --- checkpoints ---------------------------------------------------------

    def _backbone_records(self) -> list[BackboneRecord]:
        return [
            BackboneRecord(
                describe=b.describe(), identity=b.identity(), reference=b.weights_reference()
            )
            for b in self.model.backbones
        ]

    def model_state(self) -> dict[str, Tensor]:
        """Weights to store: a backbone found again by reference is left out."""
        # Trained backbones change every step: their identity is taken anew.
        if self.model.backbones_trainable:
            self._backbones = self._backbone_records()
        skip = [f"backbones.{i}." for i, r in enumerate(self._backbones) if r.reference]
        return {
            k: v
            for k, v in self.model.state_dict().items()
            if not any(k.startswith(s) for s in skip)
        }

    def _serving_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Embedded backbone weights in float16 where predictions allow it
        (:mod:`qpcore.compact`); a resume checkpoint keeps float32."""
        from qpcore.compact import embedded_backbones, half_if_harmless
        from qpcore.export import sample_inputs

        model = self.model
        if not embedded_backbones(model, state):
            return state  # nothing to halve: no sample images to make
        if self._sample_inputs is None:  # the same images at every best save
            self._sample_inputs = list(sample_inputs(model, 4))
        inputs = list(self._sample_inputs)
        params = inputs.pop() if model.params_input else None
        compact, _ = half_if_harmless(model, state, inputs, params)
        return compact

    def _save(
        self, name: str, epoch: int, metrics: Mapping[str, Any], training: bool = True
    ) -> None:
        """Write a checkpoint; ``training=False`` leaves out what only a resume
        needs (optimizer moments, RNG states), halving a file meant for serving."""
        if not self.dist.main:
            return
        model_state = self.model_state()
        meta = CheckpointMeta(
            config=self.cfg.to_dict(),
            label_protocol=self.data.protocol or PROTOCOL,
            backbones=self._backbones,
            versions=self._versions,
            epoch=epoch,
            metrics={k: v for k, v in metrics.items() if k != "epoch" and not isinstance(v, str)},
            components=self._origins,
        )
        if not training:
            save_checkpoint(self.run_dir / name, meta, self._serving_state(model_state))
            return
        best = self.best_weights or {}
        state = training_state.capture(
            state=self.state,
            extra_state=self.early_stopping.state_dict(),
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            loss=self.loss,
            best_model={k: v for k, v in best.items() if k in model_state},
            monitors=monitor_states(self.monitors),
        )
        save_checkpoint(self.run_dir / name, meta, model_state, state)

    def _restore(self, point: ResumePoint) -> None:
        load_weights(self.model, point.meta, point.payload["model"], point.file)
        training = point.payload["training"]
        try:
            self._load_training(training)
            load_monitor_states(self.monitors, training.get("monitors", "{}"))
        except (TypeError, ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{point.file}: damaged training state ({exc})") from exc
        self._say(f"resuming {self.run_dir} after epoch {self.state.epoch}")

    def _load_training(self, training: Mapping[str, Any]) -> None:
        """Optimizer, scheduler, loss, run and early-stopping state, best weights
        and RNGs from a checkpoint (a resume, or a rollback's)."""
        self.state, stopping = training_state.restore(
            training, self.optimizer, self.scheduler, self.loss, EarlyStopping.STATE_KEYS
        )
        self.early_stopping.load_state_dict(stopping)
        if training["best_model"]:
            best = copy.deepcopy(self.model.state_dict())
            best.update(training["best_model"])
            self.best_weights = best

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


class _Objective(torch.nn.Module):
    """The model's forward and the loss as one module, for DDP to wrap."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.model = trainer.model
        self.loss = trainer.loss
        self._forward = trainer.forward

    def forward(self, inputs: Any, params: Tensor, target: Tensor) -> tuple[Tensor, Any]:
        pred = self._forward(inputs, params)
        return pred, self.loss(pred, target)
