"""What a checkpoint holds besides the weights, so a resumed run ends exactly
where an uninterrupted one would: the run's record, the optimizer, scheduler
and loss states, the best weights so far and every global RNG.

A checkpoint is untrusted input: :func:`check_training` refuses a payload whose
shape is not one this module wrote.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qpcore.errors import CheckpointError

#: The keys of a checkpoint's ``training`` entry ("monitors" came later:
#: checkpoints without it still resume).
TRAINING_KEYS = frozenset({"optimizer", "scheduler", "loss", "best_model", "state", "rng"})
OPTIONAL_TRAINING_KEYS = frozenset({"monitors"})


@dataclass
class RunState:
    """The run's own record: where it is, what it found, what it trains on."""

    epoch: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
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


def check_training(training: Any, file: Path) -> dict[str, Any]:
    """``training`` if it has the shape :func:`capture` writes."""
    if not isinstance(training, dict):
        raise CheckpointError(f"{file}: damaged training state")
    if set(training) - OPTIONAL_TRAINING_KEYS != TRAINING_KEYS:
        raise CheckpointError(f"{file}: damaged training state")
    return training


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def capture(
    *,
    state: RunState,
    extra_state: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss: torch.nn.Module,
    best_model: Mapping[str, torch.Tensor],
    monitors: str,
) -> dict[str, Any]:
    """The ``training`` entry of a checkpoint.

    ``extra_state`` (early stopping's) is stored beside the run state's fields
    under its own keys, as checkpoints have always held them.
    """
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "loss": loss.state_dict(),
        "best_model": dict(best_model),
        "state": json.dumps({**asdict(state), **extra_state}),
        "rng": rng_state(),
        "monitors": monitors,
    }


def restore(
    training: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss: torch.nn.Module,
    extra_keys: Sequence[str],
) -> tuple[RunState, dict[str, Any]]:
    """Load the optimizer, scheduler, loss and RNG states from ``training``;
    returns the run state and the values of ``extra_keys``.

    Raises:
        TypeError, ValueError, KeyError, RuntimeError: When a part does not fit
        (the caller turns these into a damaged-checkpoint error).
    """
    optimizer.load_state_dict(training["optimizer"])
    if scheduler is not None and training["scheduler"]:
        scheduler.load_state_dict(training["scheduler"])
    loss.load_state_dict(training["loss"])
    recorded = json.loads(training["state"])
    if not isinstance(recorded, dict):
        raise ValueError("the run state is not a mapping")
    extra = {key: recorded.pop(key) for key in extra_keys}
    known = {f.name for f in fields(RunState)}
    unknown = sorted(set(recorded) - known)
    if unknown:
        raise ValueError(f"unknown run state fields {unknown}")
    set_rng_state(training["rng"])
    return RunState(**recorded), extra


def rng_state() -> dict[str, Any]:
    """Every global RNG the run draws from (numpy's and Python's as JSON, so
    loading them needs no pickle)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": json.dumps([name, keys.tolist(), int(pos), int(has_gauss), float(gauss)]),
        "python": json.dumps([version, list(internal), py_gauss]),
    }


def set_rng_state(rng: Mapping[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    name, keys, pos, has_gauss, gauss = json.loads(rng["numpy"])
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, py_gauss = json.loads(rng["python"])
    random.setstate((version, tuple(internal), py_gauss))
