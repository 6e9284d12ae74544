"""When a run keeps its best weights and when it stops for lack of progress.

Both decisions watch one epoch metric; they live apart from the loop so their
state (what is saved with ``last.pt``) is the whole of what a resume needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from qpcore.epoch_metrics import metric_mode


def watched(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The epoch's metrics as the decisions read them: an undefined Pearson
    (constant predictions) counts as no correlation rather than as missing."""
    return {k: (0.0 if v is None and k.endswith("pearson") else v) for k, v in metrics.items()}


def improves(value: float | None, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta``; a missing or
    non-finite value never does."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping:
    """Stops a run whose ``monitor`` has not improved for more than ``patience``
    epochs. It counts even when disabled, so turning it on in a resumed run's
    config acts on the epochs already trained.

    Args:
        monitor: The epoch metric watched (``val_loss``...); its direction
            comes from :func:`qpcore.epoch_metrics.metric_mode`.
        patience: Epochs without improvement tolerated.
        min_delta: Smallest change that counts as an improvement.
        enabled: Whether :meth:`update` may ask to stop.
    """

    #: The keys of :meth:`state_dict` (stored beside the run state in a checkpoint).
    STATE_KEYS = ("stop_value", "stale_epochs")

    def __init__(self, monitor: str, patience: int, min_delta: float, enabled: bool) -> None:
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.enabled = enabled
        self.mode = metric_mode(monitor)
        self.best: float | None = None
        self.stale_epochs = 0

    def update(self, metrics: Mapping[str, Any]) -> str | None:
        """Take one epoch's :func:`watched` metrics; returns why to stop, or
        ``None`` to go on."""
        value = metrics.get(self.monitor)
        if improves(value, self.best, self.mode, self.min_delta):
            self.best, self.stale_epochs = value, 0
        else:
            self.stale_epochs += 1
        if self.enabled and self.stale_epochs > self.patience:
            return f"early stop: {self.monitor} did not improve for {self.stale_epochs} epochs"
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"stop_value": self.best, "stale_epochs": self.stale_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best, stale = state["stop_value"], state["stale_epochs"]
        if best is not None and not isinstance(best, int | float):
            raise ValueError(f"early stopping: stop_value {best!r} is not a number")
        if not isinstance(stale, int) or stale < 0:
            raise ValueError(f"early stopping: stale_epochs {stale!r} is not a count")
        self.best, self.stale_epochs = best, stale
