"""The training loop: one resolved config in, a run folder with checkpoints out.

Design points:

* With frozen backbones the features come from :mod:`qpcore.feature_cache` and an
  epoch trains only the head, on tensors; otherwise images are decoded and
  preprocessed by a ``DataLoader`` every epoch.
* A resumed run ends with the same weights as one never interrupted: shuffling
  draws from a generator seeded by ``(seed, epoch)``, the global RNG states are
  saved with every checkpoint, and ``last.pt`` is written atomically after every
  epoch, before anything else can fail.
* Metrics are computed over whole epochs (a Pearson per batch is noise), written
  to ``metrics.jsonl`` one object per line; an undefined statistic is ``null``.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import math
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from qpcore import hookspecs
from qpcore import report as html_report
from qpcore.build import (
    build_loss,
    build_model,
    build_optimizer,
    component_origins,
    pick_device,
    versions,
)
from qpcore.checkpoint import (
    BackboneRecord,
    CheckpointError,
    CheckpointMeta,
    load_checkpoint,
    save_checkpoint,
)
from qpcore.config import RunConfig
from qpcore.config_io import dump_yaml
from qpcore.data.dataset import LabelledData, cache_root
from qpcore.data.manifest import Sample
from qpcore.data.protocol import PROTOCOL, encode_params
from qpcore.distributed import Distributed
from qpcore.epoch_metrics import metric_mode
from qpcore.errors import QPError
from qpcore.evaluation import EvalData, regression_metrics, run_evaluators
from qpcore.executor import build_executor
from qpcore.feature_cache import ImageInputs, model_features
from qpcore.fileio import disk_full_as_error, write_atomic
from qpcore.locking import hold_folder
from qpcore.loss_output import split_loss_output
from qpcore.monitoring import Control, load_monitor_states, monitor_states, scale_lr
from qpcore.registry import Registry
from qpcore.report import Section
from qpcore.restore import load_weights, rebuild_config
from qpcore.schedulers import ScheduledLR, build_scheduler
from qpcore.validate import resolve_config

LAST, BEST = "last.pt", "best.pt"


@dataclass
class Rows:
    """One split, ready for the loop."""

    samples: list[Sample]
    labels: Tensor
    params: Tensor
    features: Tensor | None = None

    @classmethod
    def of(cls, samples: list[Sample]) -> Rows:
        labels = torch.tensor([s.ssim for s in samples], dtype=torch.float32)
        params = torch.from_numpy(
            np.stack([encode_params(s.params) for s in samples])
            if samples
            else np.zeros((0, 0), np.float32)
        )
        return cls(samples, labels, params)

    def __len__(self) -> int:
        return len(self.samples)


@dataclass
class RunState:
    """What a resume needs besides weights and optimizer state."""

    epoch: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    stop_value: float | None = None
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    #: Which run this is (also in the folder's ``run.json``): a checkpoint
    #: copied into another run's folder is refused instead of trained there.
    run_id: str | None = None
    #: What the run trains on, so a resume on changed data is refused.
    data_digest: str | None = None
    data_rows: dict[str, int] | None = None
    #: Processes the run trains on; a resume must use as many.
    world_size: int = 1


def _better(value: float | None, best: float | None, mode: str, min_delta: float) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


RUN_FILE = "run.json"


def data_fingerprint(splits: Mapping[str, Rows]) -> str:
    """A digest of every split's rows: image name and size, label, params.

    Paths enter by file name only, so a dataset moved to another folder still
    resumes; a relabelled, added, removed or replaced image changes the digest.
    """
    digest = hashlib.sha256()
    for split in sorted(splits):
        for sample in splits[split].samples:
            try:
                size = sample.image.stat().st_size
            except OSError:
                size = -1
            fields = (split, sample.image.name, size, f"{sample.ssim:.6f}", sample.params)
            digest.update(repr(fields).encode("utf-8"))
    return digest.hexdigest()


def new_run_dir(base: Path, name: str | None) -> Path:
    """``base/name``, or a timestamp that does not exist yet."""
    if name:
        return base / name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    return folder


class Trainer:
    """Trains one run. ``run`` objects passed to monitor hooks are this object:
    ``cfg``, ``run_dir``, ``model``, ``optimizer``, ``state``, ``device``,
    ``quiet``, ``monitors`` (config name -> object) and ``batches_per_epoch`` are
    public, and so are :meth:`request_stop` and :meth:`request_rollback`.

    Args:
        cfg: A resolved config (see :func:`qpcore.validate.resolve_config`).
        registry: Where components are looked up.
        run_dir: The run folder (created).
        monitors: Extra hook objects (the config's monitors are added to them).
        quiet: No progress bars or per-epoch lines.
        splits: Train/val/test rows to use instead of the dataset's own split
            (cross-validation folds).
    """

    def __init__(
        self,
        cfg: RunConfig,
        registry: Registry,
        run_dir: Path,
        monitors: Iterable[object] = (),
        quiet: bool = False,
        splits: Mapping[str, list[Sample]] | None = None,
    ) -> None:
        self.cfg = cfg
        self._given_splits = splits
        self.registry = registry
        # Under torchrun: every rank trains, rank 0 alone writes and reports.
        self.dist = Distributed.start(cfg.trainer.strategy, cfg.trainer.device)
        self.run_dir = Path(self.dist.agree(str(run_dir)))
        self.quiet = quiet or not self.dist.main
        self.state = RunState()
        self.hooks = pluggy.PluginManager(hookspecs.PROJECT)
        self.hooks.add_hookspecs(hookspecs)
        self.monitors: dict[str, object] = {}
        for ref in cfg.monitors if self.dist.main else ():
            spec = registry.get("monitor", ref.name, at="monitors")
            name = ref.name if ref.name not in self.monitors else f"{ref.name}#{len(self.monitors)}"
            self.monitors[name] = spec.build(ref.params)
            self.hooks.register(self.monitors[name])
        monitors = list(monitors) if self.dist.main else []
        for monitor in monitors:
            self.hooks.register(monitor)
        hooked = [*self.monitors.values(), *monitors]
        self._wants_grad_norm = any(getattr(m, "wants_grad_norm", False) for m in hooked)
        self.control = Control()
        self.batches_per_epoch = 0
        # The checkpoint a rollback returns to: the last one this session saved
        # or resumed from (a periodic one may be older than last.pt).
        self._last_good: Path | None = None
        self._retry_scale = 1.0
        self._resume: dict[str, Any] | None = None
        self._ddp: torch.nn.parallel.DistributedDataParallel | None = None

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

    # --- set-up ------------------------------------------------------------

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
        expected = {"optimizer", "scheduler", "loss", "best_model", "state", "rng"}
        # "monitors" came later: checkpoints without it still resume.
        if not isinstance(training, dict) or set(training) - {"monitors"} != expected:
            raise CheckpointError(f"{file}: damaged training state")
        cfg = resolve_config(rebuild_config(meta, file), registry, source=f"{file} (its config)")
        trainer = cls(cfg, registry, file.parent, monitors, quiet)
        trainer._resume = payload
        trainer._resume_meta = meta
        trainer._resume_file = file
        trainer._last_good = file
        return trainer

    def _seed(self) -> None:
        seed = self.cfg.trainer.seed
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        if self.cfg.trainer.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False

    def _load_data(self) -> tuple[LabelledData, dict[str, Rows]]:
        ref = self.cfg.data
        spec = self.registry.get("dataset", ref.name, at="data")
        data = spec.build(ref.params)
        if not isinstance(data, LabelledData):
            raise QPError(f"dataset {ref.name!r} returned {type(data).__name__}, not LabelledData")
        if data.protocol not in (None, PROTOCOL):
            raise QPError(f"{data.origin}: labels follow {data.protocol!r}, not {PROTOCOL}")
        chosen = self._given_splits or data.split(ref.params)
        splits = {name: Rows.of(list(chosen[name])) for name in ("train", "val", "test")}
        train = splits["train"]
        if len(train) == 0:
            raise QPError(f"{data.origin}: the training split is empty")
        if len(train) < 2 and self.cfg.model.head.batch_norm:
            raise QPError(
                f"{data.origin}: the training split has 1 row; BatchNorm needs at least 2 "
                "(add data, or set model.head.batch_norm=false)"
            )
        if float(train.labels.max() - train.labels.min()) == 0.0:
            raise QPError(
                f"{data.origin}: every training label is {float(train.labels[0]):.6f}; "
                "constant labels teach nothing (and make correlations undefined)"
            )
        watched = {self.cfg.trainer.checkpoint.monitor}
        if self.cfg.trainer.early_stopping.enabled:
            watched.add(self.cfg.trainer.early_stopping.monitor)
        if self.cfg.scheduler is not None:
            spec = self.registry.get("scheduler", self.cfg.scheduler.name, at="scheduler")
            if spec.metric_param:
                watched.add(getattr(self.cfg.scheduler.params, spec.metric_param))
        if len(splits["val"]) == 0 and any(m.startswith("val_") for m in watched):
            raise QPError(
                f"{data.origin}: the validation split is empty, but the run watches "
                f"{', '.join(sorted(watched))}; raise data.val_fraction or watch train_* metrics"
            )
        return data, splits

    def _prepare_features(self, splits: dict[str, Rows]) -> bool:
        """Fill ``Rows.features`` when every backbone is frozen and nothing
        changes images between epochs; returns whether the cache is in use."""
        model = self.model
        if model.backbones_trainable:
            return False
        if self.cfg.trainer.augment:
            self._say(
                f"trainer.augment={list(self.cfg.trainer.augment)} changes the images every "
                "epoch, so the feature cache is off: backbones run on every batch"
            )
            return False
        paths = [s.image for rows in splits.values() for s in rows.samples]
        if not self.dist.main:
            self.dist.barrier()  # rank 0 fills the cache; the others then read it
        tcfg = self.cfg.trainer
        executor = None
        if tcfg.executor is not None:
            executor = build_executor(tcfg.executor, address=tcfg.executor_address)
        features, hit = model_features(
            model.backbones, paths, tcfg.num_workers, self.device, not self.quiet, executor
        )
        if self.dist.main:
            self.dist.barrier()
        start = 0
        for rows in splits.values():
            rows.features = features[start : start + len(rows)]
            start += len(rows)
        state = "reused" if hit else "computed"
        self._say(f"features of {len(set(paths))} images {state} (cache: {cache_root()})")
        return True

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

    def _plain_features(self, rows: Rows) -> Tensor:
        """Un-augmented features of frozen backbones, for standardisation only
        (used when augmentation keeps the cache out of training)."""
        return model_features(
            self.model.backbones,
            [s.image for s in rows.samples],
            self.cfg.trainer.num_workers,
            self.device,
            not self.quiet,
        )[0]

    # --- the loop ----------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop) and return the final results.

        The run folder is locked for the whole fit: a second trainer on the same
        folder is refused at once, never interleaved with this one.
        """
        lock = hold_folder(self.run_dir, "training run") if self.dist.main else nullcontext()
        with lock:
            if self._resume is None and (self.run_dir / LAST).exists():
                raise QPError(
                    f"{self.run_dir} already holds a run; continue it with "
                    f"--resume {self.run_dir}, or pick another output.name"
                )
            return self._fit()

    def _check_resume(self) -> None:
        """Refuse to continue a checkpoint in another run's folder, on other data
        or on another number of processes (the batches would change)."""
        if self.state.world_size != self.dist.world:
            raise QPError(
                f"{self.run_dir} trained on {self.state.world_size} process(es), this resume "
                f"runs on {self.dist.world}; a different count changes the global batch, so "
                f"resume with torchrun --nproc_per_node {self.state.world_size} "
                "(or 1 process: plain qp train --resume)"
            )
        recorded = self.run_dir / RUN_FILE
        if recorded.is_file() and self.state.run_id is not None:
            try:
                folder_id = json.loads(recorded.read_text(encoding="utf-8")).get("run_id")
            except (OSError, ValueError, AttributeError):
                folder_id = None
            if folder_id is not None and folder_id != self.state.run_id:
                raise QPError(
                    f"{self._resume_file} belongs to run {self.state.run_id}, but "
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
        tcfg = self.cfg.trainer
        if tcfg.num_threads:
            torch.set_num_threads(tcfg.num_threads)
        self._seed()
        self.device = self.dist.device(pick_device(tcfg.device))
        self.data, self.splits = self._load_data()
        self.model = build_model(self.cfg, self.registry)
        # Computing features must not move the global RNG: a cold cache and a warm
        # one have to train the same weights.
        with torch.random.fork_rng(devices=[]):
            self.cached = self._prepare_features(self.splits)
            stats_features = self.splits["train"].features
            if stats_features is None and not self.model.backbones_trainable:
                stats_features = self._plain_features(self.splits["train"])
        if stats_features is not None:
            self.model.set_feature_stats(stats_features, self.splits["train"].params)
        self.size_metrics = self._fit_size_head() if self.model.size_head is not None else {}
        self.model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self.loss = build_loss(self.cfg, self.registry).to(self.device)
        self.optimizer = build_optimizer(self.cfg, self.registry, self.model, self.loss)
        steps = math.ceil(len(self._batches(0)) / tcfg.accumulate)
        self.scheduler: ScheduledLR | None = None
        if self.cfg.scheduler is not None:
            spec = self.registry.get("scheduler", self.cfg.scheduler.name, at="scheduler")
            self.scheduler = build_scheduler(
                spec, self.cfg.scheduler.params, self.optimizer, tcfg.epochs, steps
            )
        if self._resume is not None:
            self._restore(self._resume)
            self._check_resume()
        if self.dist.enabled:
            # Model and loss in one module: DDP then averages the gradients of
            # both (a loss may learn weights of its own).
            self._ddp = torch.nn.parallel.DistributedDataParallel(
                _Objective(self), device_ids=[self.device] if self.device.type == "cuda" else None
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._resume is None:
            self.state.world_size = self.dist.world
            self.state.run_id = self.dist.agree(uuid.uuid4().hex)
            self.state.data_digest = data_fingerprint(self.splits)
            self.state.data_rows = {k: len(v) for k, v in self.splits.items()}
            if self.dist.main:
                write_atomic(self.run_dir / "config.yaml", dump_yaml(self.cfg), "the run's config")
                record = {"run_id": self.state.run_id, "data_digest": self.state.data_digest}
                write_atomic(self.run_dir / RUN_FILE, json.dumps(record) + "\n", "the run record")
        self._write_history()
        try:
            self.hooks.hook.qp_on_fit_start(run=self)
            # A run that stopped early stays stopped when resumed; a rollback
            # lowers state.epoch, and that epoch is trained again.
            while self.state.stop_reason is None and self.state.epoch < tcfg.epochs:
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
        if hasattr(self.loss, "set_epoch"):
            self.loss.set_epoch(epoch)
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
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return stop

    def _act_on_request(self, epoch: int) -> bool:
        """Carry out a monitor's stop or rollback; returns whether to stop."""
        action, reason, factor = self.control.take()
        file = self._last_good
        if action == "rollback" and file is not None:
            meta, payload = load_checkpoint(file)
            load_weights(self.model, meta, payload["model"], file)
            self._restore_training(payload["training"])
            # Retries of one epoch compound: x0.5, then x0.25 of the saved rate.
            self._retry_scale *= factor
            scale_lr(self.optimizer, self.scheduler, self._retry_scale)
            self._write_history()
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
            self._write_history()
            self.hooks.hook.qp_on_epoch_end(run=self, epoch=epoch, metrics=metrics)
            self._say(state.stop_reason)
            return True
        # An undefined Pearson (constant predictions) counts as no correlation.
        watched = {
            k: (0.0 if v is None and k.endswith("pearson") else v) for k, v in metrics.items()
        }
        if self.scheduler is not None:
            self.scheduler.step_epoch(watched)
        state.epoch = epoch
        state.history.append(metrics)
        ckpt = self.cfg.trainer.checkpoint
        improved = _better(
            watched.get(ckpt.monitor), state.best_value, metric_mode(ckpt.monitor), 0
        )
        if improved:
            state.best_value, state.best_epoch = watched[ckpt.monitor], epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
        stop_cfg = tcfg.early_stopping
        if _better(
            watched.get(stop_cfg.monitor),
            state.stop_value,
            metric_mode(stop_cfg.monitor),
            stop_cfg.min_delta,
        ):
            state.stop_value, state.stale_epochs = watched[stop_cfg.monitor], 0
        else:
            state.stale_epochs += 1
        stop = stop_cfg.enabled and state.stale_epochs > stop_cfg.patience
        if stop:
            state.stop_reason = (
                f"early stop: {stop_cfg.monitor} did not improve for {state.stale_epochs} epochs"
            )
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
            self._prune(ckpt.keep_last)
        self._append_metrics(metrics)
        self.dist.barrier()  # the checkpoint is on disk before any rank reads it
        return stop

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
                    total, _ = split_loss_output(output)
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
        sums = self.dist.gather(torch.tensor([[loss_sum, count]], dtype=torch.float64)).sum(0)
        loss_sum, count = float(sums[0]), int(sums[1])
        found = regression_metrics(pred_all.numpy(), target_all.numpy())
        return {
            f"{split}_loss": loss_sum / max(count, 1),
            f"{split}_mae": found["mae"],
            f"{split}_mse": found["mse"],
            f"{split}_pearson": found["pearson"],
        }

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
        best = getattr(self, "best_state", None)
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
        if self.dist.main:
            path = self.run_dir / "results.json"
            write_atomic(path, json.dumps(finite(results), indent=2, allow_nan=False) + "\n")
        return results

    def score(self, split: str) -> dict[str, float | None]:
        """Metrics of the current weights on one split."""
        return regression_metrics(self.predict_split(split), self.splits[split].labels.numpy())

    def _evaluate_test(self) -> Path:
        """The config's evaluators on the test split into ``eval/metrics.json``
        (returned); their report sections wait for :meth:`_write_report`."""
        rows = self.splits["test"]
        predictions = self.predict_split("test")  # on every rank: it gathers
        folder = self.run_dir / "eval"
        if not self.dist.main:
            return folder / "metrics.json"
        data = EvalData(predictions, rows.labels.numpy().astype(float), rows.samples)
        sections: list[Section] | None = [] if self.cfg.output.report else None
        report = run_evaluators(data, self.cfg.evaluators, self.registry, sections)
        report["split"] = "test"
        folder.mkdir(exist_ok=True)
        path = folder / "metrics.json"
        write_atomic(path, json.dumps(report, indent=2, allow_nan=False) + "\n", "the metrics")
        if sections is not None:
            self._report_parts = (report, sections)
        return path

    def _write_report(self) -> None:
        """``eval/report.html``: the evaluators' sections, then those of monitors
        with ``report(run)`` (written after ``qp_on_fit_end``, so monitors have
        finished their summaries)."""
        parts = getattr(self, "_report_parts", None)
        if parts is None:
            return
        report, sections = parts
        for monitor in self.monitors.values():
            if hasattr(monitor, "report"):
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

    # --- checkpoints and logs ----------------------------------------------

    def backbone_records(self) -> list[BackboneRecord]:
        return [
            BackboneRecord(
                describe=b.describe(), identity=b.identity(), reference=b.weights_reference()
            )
            for b in self.model.backbones
        ]

    def model_state(self) -> dict[str, Tensor]:
        """Weights to store: a backbone found again by reference is left out."""
        # Trained backbones change every step: their identity is taken anew.
        if not hasattr(self, "_records") or self.model.backbones_trainable:
            self._records = self.backbone_records()
        skip = [f"backbones.{i}." for i, r in enumerate(self._records) if r.reference]
        return {
            k: v
            for k, v in self.model.state_dict().items()
            if not any(k.startswith(s) for s in skip)
        }

    def _serving_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Embedded backbone weights in float16 where predictions allow it
        (:mod:`qpcore.compact`); a resume checkpoint keeps float32."""
        from qpcore.compact import half_if_harmless
        from qpcore.export import sample_inputs

        model = self.model
        inputs = list(sample_inputs(model, 4))
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
            backbones=self._records,
            versions=versions(),
            epoch=epoch,
            metrics={k: v for k, v in metrics.items() if k != "epoch" and not isinstance(v, str)},
            components=component_origins(self.cfg, self.registry),
        )
        if not training:
            save_checkpoint(self.run_dir / name, meta, self._serving_state(model_state))
            return
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else {},
            "loss": self.loss.state_dict(),
            "best_model": {
                k: v for k, v in getattr(self, "best_state", {}).items() if k in model_state
            },
            "state": json.dumps(asdict(self.state)),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": json.dumps(_numpy_state()),
                "python": json.dumps(_python_state()),
            },
            "monitors": monitor_states(self.monitors),
        }
        save_checkpoint(self.run_dir / name, meta, model_state, state)

    def _restore(self, payload: dict[str, Any]) -> None:
        file = self._resume_file
        load_weights(self.model, self._resume_meta, payload["model"], file)
        try:
            self._restore_training(payload["training"])
            load_monitor_states(self.monitors, payload["training"].get("monitors", "{}"))
        except (TypeError, ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{file}: damaged training state ({exc})") from exc
        self._say(f"resuming {self.run_dir} after epoch {self.state.epoch}")

    def _restore_training(self, training: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(training["optimizer"])
        if self.scheduler is not None and training["scheduler"]:
            self.scheduler.load_state_dict(training["scheduler"])
        self.loss.load_state_dict(training["loss"])
        self.state = RunState(**json.loads(training["state"]))
        if training["best_model"]:
            best = copy.deepcopy(self.model.state_dict())
            best.update(training["best_model"])
            self.best_state = best
        rng = training["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(_numpy_from(json.loads(rng["numpy"])))
        random.setstate(_python_from(json.loads(rng["python"])))

    def _prune(self, keep: int) -> None:
        if not self.dist.main:
            return
        periodic = sorted(self.run_dir.glob("epoch-*.pt"))
        for old in periodic[:-keep]:
            old.unlink(missing_ok=True)

    def _write_history(self) -> None:
        """``metrics.jsonl`` from the state: a resume drops lines of epochs the
        checkpoint does not know (written after it, before the crash)."""
        if not self.dist.main:
            return
        lines = "".join(json.dumps(finite(m), allow_nan=False) + "\n" for m in self.state.history)
        write_atomic(self.run_dir / "metrics.jsonl", lines, "the metrics")

    def _append_metrics(self, metrics: Mapping[str, Any]) -> None:
        if not self.dist.main:
            return
        path = self.run_dir / "metrics.jsonl"
        with disk_full_as_error(path, "the metrics"), open(path, "a") as handle:
            handle.write(json.dumps(finite(metrics), allow_nan=False) + "\n")

    # --- output --------------------------------------------------------------

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


def finite(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None``: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def _numpy_state() -> list[Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def _numpy_from(state: Sequence[Any]) -> tuple[Any, ...]:
    name, keys, pos, has_gauss, gauss = state
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss)


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _python_from(state: Sequence[Any]) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
