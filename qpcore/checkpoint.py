"""Checkpoint files: written atomically, read as untrusted input.

A checkpoint is a dict of tensors and plain values loaded with
``torch.load(weights_only=True)``, so opening one never runs code. Everything that
is not a tensor (the resolved config, the label protocol, versions, the trainer's
state) travels as one JSON string and is validated on load.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from qpcore.errors import QPError

FORMAT = "qpcore-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(QPError):
    """A file that is not a checkpoint this qpcore can read."""


class BackboneRecord(BaseModel):
    """What a checkpoint knows of one backbone."""

    model_config = ConfigDict(extra="forbid")

    describe: dict[str, Any]
    identity: str
    reference: dict[str, Any] | None = None


class CheckpointMeta(BaseModel):
    """The JSON part of a checkpoint."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any]
    label_protocol: str | None
    backbones: list[BackboneRecord]
    versions: dict[str, str]
    epoch: int
    metrics: dict[str, float | None]


def save_checkpoint(
    path: Path,
    meta: CheckpointMeta,
    model_state: dict[str, torch.Tensor],
    training: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint so a crash leaves either the old file or the new one."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": meta.model_dump_json(),
        "model": model_state,
    }
    if training is not None:
        payload["training"] = training
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> tuple[CheckpointMeta, dict[str, Any]]:
    """Read and check a checkpoint; returns its meta and the raw payload.

    Raises:
        CheckpointError: Missing, truncated, not ours, or from a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a readable qpcore checkpoint (truncated, or not a torch file "
            f"of plain tensors): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a qpcore checkpoint (no '{FORMAT}' marker)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version!r} is newer than this qpcore reads "
            f"({FORMAT_VERSION}); upgrade qpcore"
        )
    if not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"{path}: checkpoint has no model weights")
    try:
        meta = CheckpointMeta.model_validate(json.loads(payload["meta"]))
    except (TypeError, ValueError, ValidationError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint metadata: {exc}") from exc
    return meta, payload
