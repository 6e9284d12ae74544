"""Checkpoint files: written atomically, read as untrusted input.

A checkpoint is a dict of tensors and plain values loaded with
``torch.load(weights_only=True)``, so opening one never runs code. Everything that
is not a tensor (the resolved config, the label protocol, versions, the trainer's
state) travels as one JSON string and is validated on load.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qpcore.errors import CheckpointError
from qpcore.fileio import write_atomic_with

FORMAT = "qpcore-checkpoint"
FORMAT_VERSION = 1


class BackboneRecord(BaseModel):
    """What a checkpoint knows of one backbone."""

    model_config = ConfigDict(extra="forbid")

    describe: dict[str, Any]
    identity: str
    reference: dict[str, Any] | None = None


class ComponentOrigin(BaseModel):
    """Which installed distribution provided a component at training time, so a
    machine lacking it can be told what to install."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str
    distribution: str | None = None
    version: str | None = None


class CheckpointMeta(BaseModel):
    """The JSON part of a checkpoint."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any]
    label_protocol: str | None
    backbones: list[BackboneRecord]
    versions: dict[str, str]
    epoch: int
    metrics: dict[str, float | None]
    #: Dotted config path -> its component's provider (absent before qpcore 0.14).
    components: dict[str, ComponentOrigin] = Field(default_factory=dict)


def _serialised(
    meta: CheckpointMeta, model_state: dict[str, torch.Tensor], training: dict[str, Any] | None
) -> io.BytesIO:
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": meta.model_dump_json(),
        "model": model_state,
    }
    if training is not None:
        payload["training"] = training
    # Serialised in memory first: torch reports a failed file write as an opaque
    # container error, a plain write gives the real reason (a full disk).
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer


def save_checkpoint(
    path: Path,
    meta: CheckpointMeta,
    model_state: dict[str, torch.Tensor],
    training: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint so a crash leaves either the old file or the new one."""
    _write(path, _serialised(meta, model_state, training))


def _write(path: Path, buffer: io.BytesIO) -> None:
    write_atomic_with(path, lambda handle: handle.write(buffer.getbuffer()), "the checkpoint")


def load_checkpoint(
    path: str | Path, require_finite: bool = True
) -> tuple[CheckpointMeta, dict[str, Any]]:
    """Read and check a checkpoint; returns its meta and the raw payload.

    ``require_finite`` refuses weights holding NaN or infinity (a resume may
    still read such a file: its training state says what went wrong).

    Raises:
        CheckpointError: Missing, truncated, not ours, or from a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused as unsafe: it holds Python objects{what} beyond plain "
            "tensors, and loading those could run code. qpcore reads checkpoints as "
            "plain data only and never runs them; use a checkpoint written by qp train"
        ) from None
    except RecursionError:
        raise CheckpointError(f"{path}: refused: nested too deeply to be a checkpoint") from None
    except Exception as exc:
        first = next(iter(str(exc).splitlines()), "")[:200]
        raise CheckpointError(
            f"{path}: not a readable qpcore checkpoint (truncated, or not a torch file "
            f"of plain tensors): {type(exc).__name__}{': ' + first if first else ''}"
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
    except RecursionError:
        raise CheckpointError(f"{path}: damaged checkpoint metadata: nested too deeply") from None
    except (TypeError, ValueError, ValidationError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint metadata: {exc}") from exc
    if require_finite:
        bad = [
            name
            for name, value in payload["model"].items()
            if isinstance(value, torch.Tensor)
            and value.is_floating_point()
            and not bool(torch.isfinite(value).all())
        ]
        if bad:
            raise CheckpointError(
                f"{path}: refused: its weights hold NaN or infinity ({', '.join(bad[:3])}"
                f"{' ...' if len(bad) > 3 else ''}), so every prediction would be NaN; "
                "the run that wrote it diverged. Use an earlier checkpoint (best.pt)"
            )
    return meta, payload
