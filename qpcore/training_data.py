"""A run's data made ready for the loop: the dataset built once, split into
train/val/test rows with labels and encoded params as tensors, checked for what
would make training meaningless, and (with frozen backbones) the cached
features attached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from qpcore.config import RunConfig
from qpcore.data.dataset import LabelledData, cache_root
from qpcore.data.manifest import Sample
from qpcore.data.protocol import PROTOCOL, encode_params
from qpcore.distributed import Distributed
from qpcore.errors import QPError
from qpcore.executor import build_executor
from qpcore.feature_cache import model_features
from qpcore.model import QualityModel
from qpcore.specs import SchedulerSpec

SPLITS = ("train", "val", "test")


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


def build_dataset(cfg: RunConfig) -> LabelledData:
    """The config's dataset, refused when it is not labelled by this protocol."""
    ref = cfg.data
    data = ref.spec.build(ref.params)
    if not isinstance(data, LabelledData):
        raise QPError(f"dataset {ref.name!r} returned {type(data).__name__}, not LabelledData")
    if data.protocol not in (None, PROTOCOL):
        raise QPError(f"{data.origin}: labels follow {data.protocol!r}, not {PROTOCOL}")
    return data


def load_splits(
    cfg: RunConfig,
    data: LabelledData,
    given: Mapping[str, Sequence[Sample]] | None = None,
) -> dict[str, Rows]:
    """The dataset's own split (or ``given``, for cross-validation folds),
    refused where training could not learn or the run could not score."""
    chosen = given or data.split(cfg.data.params)
    splits = {name: Rows.of(list(chosen[name])) for name in SPLITS}
    train = splits["train"]
    if len(train) == 0:
        raise QPError(f"{data.origin}: the training split is empty")
    if len(train) < 2 and cfg.model.head.batch_norm:
        raise QPError(
            f"{data.origin}: the training split has 1 row; BatchNorm needs at least 2 "
            "(add data, or set model.head.batch_norm=false)"
        )
    if float(train.labels.max() - train.labels.min()) == 0.0:
        raise QPError(
            f"{data.origin}: every training label is {float(train.labels[0]):.6f}; "
            "constant labels teach nothing (and make correlations undefined)"
        )
    watched = watched_metrics(cfg)
    if len(splits["val"]) == 0 and any(m.startswith("val_") for m in watched):
        raise QPError(
            f"{data.origin}: the validation split is empty, but the run watches "
            f"{', '.join(sorted(watched))}; raise data.val_fraction or watch train_* metrics"
        )
    return splits


def watched_metrics(cfg: RunConfig) -> set[str]:
    """The epoch metrics the run's decisions read (checkpoint, early stopping,
    a plateau scheduler)."""
    tcfg = cfg.trainer
    watched = {tcfg.checkpoint.monitor}
    if tcfg.early_stopping.enabled:
        watched.add(tcfg.early_stopping.monitor)
    if cfg.scheduler is not None:
        spec = cfg.scheduler.spec
        if isinstance(spec, SchedulerSpec) and spec.metric_param:
            watched.add(getattr(cfg.scheduler.params, spec.metric_param))
    return watched


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


def attach_features(
    cfg: RunConfig,
    model: QualityModel,
    splits: Mapping[str, Rows],
    device: torch.device,
    dist: Distributed,
    say: Callable[[str], None],
    progress: bool,
) -> bool:
    """Fill ``Rows.features`` when every backbone is frozen and nothing changes
    images between epochs; returns whether the cache is in use."""
    if model.backbones_trainable:
        return False
    tcfg = cfg.trainer
    if tcfg.augment:
        say(
            f"trainer.augment={list(tcfg.augment)} changes the images every "
            "epoch, so the feature cache is off: backbones run on every batch"
        )
        return False
    paths = [s.image for rows in splits.values() for s in rows.samples]
    if not dist.main:
        dist.barrier()  # rank 0 fills the cache; the others then read it
    executor = None
    if tcfg.executor is not None:
        executor = build_executor(tcfg.executor, address=tcfg.executor_address)
    features, hit = model_features(
        model.backbones, paths, tcfg.num_workers, device, progress, executor
    )
    if dist.main:
        dist.barrier()
    start = 0
    for rows in splits.values():
        rows.features = features[start : start + len(rows)]
        start += len(rows)
    state = "reused" if hit else "computed"
    say(f"features of {len(set(paths))} images {state} (cache: {cache_root()})")
    return True


def plain_features(
    cfg: RunConfig, model: QualityModel, rows: Rows, device: torch.device, progress: bool
) -> Tensor:
    """Un-augmented features of frozen backbones, for standardisation only
    (used when augmentation keeps the cache out of training)."""
    paths = [s.image for s in rows.samples]
    return model_features(model.backbones, paths, cfg.trainer.num_workers, device, progress)[0]
