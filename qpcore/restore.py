"""Rebuild a model from a checkpoint and check that its weights really fit.

Shared by the predictor and by ``qp train --resume``: both must refuse a
checkpoint whose weights do not fit the model its config builds, or whose
backbones now compute something else than at training time.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from qpcore.backbone import Backbone
from qpcore.checkpoint import CheckpointMeta
from qpcore.config import dotted, iter_components
from qpcore.errors import CheckpointError, UnknownComponentError
from qpcore.model import QualityModel
from qpcore.registry import Registry
from qpcore.specs import Kind

#: What prediction builds from a checkpoint's config. Its loss, optimizer,
#: scheduler, monitors, dataset and evaluators played no part in the weights'
#: use, so a machine serving the model need not have them installed.
PREDICTION_KINDS: tuple[Kind, ...] = ("backbone",)


def rebuild_config(meta: CheckpointMeta, path: Path) -> dict[str, Any]:
    """The checkpoint's config, adjusted to rebuild its model here.

    Embedded backbone weights replace whatever the config named, so those are not
    fetched; a weights file recorded by reference is found at the absolute path
    recorded at training time, whatever the current directory.
    """
    config = copy.deepcopy(meta.config)
    model = config.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("backbone"), dict):
        raise CheckpointError(f"{path}: its config has no model.backbone")
    refs = [model["backbone"], *model.get("features", [])]
    if len(refs) != len(meta.backbones):
        raise CheckpointError(f"{path}: backbone records do not match its config")
    for ref, record in zip(refs, meta.backbones, strict=True):
        if not isinstance(ref, dict) or "weights" not in ref:
            continue
        if record.reference is None:
            ref["weights"] = "none"
        elif "file" in record.reference:
            ref["weights"] = str(record.reference["file"])
    return config


def check_installed(
    meta: CheckpointMeta, registry: Registry, path: Path, kinds: tuple[Kind, ...]
) -> None:
    """Refuse a checkpoint whose components of ``kinds`` are not installed here,
    naming the distribution that provided each at training time.

    Raises:
        UnknownComponentError: With ``pip install`` of the missing distribution.
    """
    for at, kind, value in iter_components(meta.config):
        name = value.get("name") if isinstance(value, dict) else value
        if kind not in kinds or not isinstance(name, str) or name in registry.names(kind):
            continue
        where = dotted(at)
        origin = meta.components.get(where)
        text = f"{path}: this model needs {kind} {name!r} ({where}), which is not installed."
        if origin and origin.distribution:
            pinned = f"{origin.distribution}=={origin.version}" if origin.version else ""
            text += (
                f" It came from the distribution {origin.distribution!r}"
                f"{f' {origin.version}' if origin.version else ''} at training time: "
                f"pip install '{pinned or origin.distribution}'"
            )
        else:
            text += "\n" + registry.unknown_message(kind, name, where).split("\n", 1)[-1]
        raise UnknownComponentError(text)


def check_backbones(backbones: Iterable[Backbone], meta: CheckpointMeta, path: Path) -> None:
    """Refuse backbones that compute otherwise than at training time.

    Same name, other code (a new feature set, another preprocessing): the head
    would read features it never saw. Refuse rather than mispredict.
    """
    for backbone, record in zip(backbones, meta.backbones, strict=True):
        if backbone.describe() != record.describe:
            raise CheckpointError(
                f"{path}: backbone {record.describe.get('name')!r} was {record.describe} at "
                f"training time and is {backbone.describe()} in this installation; "
                "retrain, or install the qpcore version the model was trained with "
                f"({meta.versions.get('qpcore', '?')})"
            )


def load_weights(model: QualityModel, meta: CheckpointMeta, state: Any, path: Path) -> None:
    """Load ``state`` into ``model``: only referenced backbones may be missing.

    Raises:
        CheckpointError: Other code behind a backbone, weights that do not fit,
            or referenced weights that changed since training.
    """
    check_backbones(model.backbones, meta, path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: model weights are not a mapping of tensors")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model: {exc}") from exc
    referenced = [f"backbones.{i}." for i, r in enumerate(meta.backbones) if r.reference]
    missing = [k for k in missing if not any(k.startswith(p) for p in referenced)]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the model its config builds "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for i, (backbone, record) in enumerate(zip(model.backbones, meta.backbones, strict=True)):
        if record.reference and backbone.identity() != record.identity:
            raise CheckpointError(
                f"{path}: backbone {i} ({record.describe.get('name')}) now computes something "
                f"else than at training time; its weights {record.reference} have changed"
            )
