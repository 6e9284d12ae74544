"""The plugin API of a training run: what a monitor's event hooks receive as
``run``, and the optional methods a monitor may offer.

These are protocols, not base classes: a monitor is any object with hook
methods, and :class:`qpcore.trainer.Trainer` is the run. Writing against them
(``def qp_on_epoch_end(self, run: Run, ...)``) tells an author, and a type
checker, exactly what they may rely on; anything else on the trainer is
internal and may change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from qpcore.config import RunConfig
    from qpcore.html import Section
    from qpcore.model import QualityModel
    from qpcore.schedulers import ScheduledLR
    from qpcore.training_data import Rows
    from qpcore.training_state import RunState


class Run(Protocol):
    """A training run as monitors see it.

    Attributes:
        cfg: The resolved config.
        run_dir: The run folder (monitors write their files here).
        state: Epoch reached, metrics history, best epoch, stop reason.
        model: The model being trained.
        loss: The loss module.
        optimizer: The optimizer.
        scheduler: The learning-rate schedule, ``None`` without one.
        device: Where the model runs.
        splits: ``"train"``, ``"val"``, ``"test"`` rows (labels, params and
            cached features).
        monitors: The config's monitors by name (a second monitor of one name
            is ``name#N``).
        batches_per_epoch: Training batches of the current epoch.
        quiet: Whether the run prints nothing (no bars or lines).
    """

    cfg: RunConfig
    run_dir: Path
    state: RunState
    model: QualityModel
    loss: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: ScheduledLR | None
    device: torch.device
    splits: Mapping[str, Rows]
    monitors: Mapping[str, object]
    batches_per_epoch: int
    quiet: bool

    def request_stop(self, reason: str) -> None:
        """End the run after the current batch; the last finished epoch stays
        resumable."""

    def request_rollback(self, reason: str, lr_factor: float = 0.5) -> None:
        """Reload the last finished epoch, scale the learning rate, redo the epoch."""

    def forward(self, inputs: Any, params: Tensor) -> Tensor:
        """Predictions for one batch as the loop makes them (device, autocast)."""

    def sample_batch(self, size: int) -> tuple[Any, Tensor, Tensor]:
        """The first ``size`` training rows as the loop feeds them: inputs,
        encoded params, labels."""


@runtime_checkable
class StatefulMonitor(Protocol):
    """A monitor whose state is saved with every checkpoint and restored on
    resume; the state must be JSON-serialisable."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class ReportingMonitor(Protocol):
    """A monitor that adds sections to the run's ``eval/report.html``; called
    after ``qp_on_fit_end``."""

    def report(self, run: Run) -> list[Section]: ...


@runtime_checkable
class GradNormMonitor(Protocol):
    """A monitor that needs ``grad_norm`` in every batch's metrics (it costs a
    pass over the gradients, so the trainer computes it only when asked)."""

    wants_grad_norm: bool


def wants_grad_norm(monitors: Mapping[str, object] | list[object]) -> bool:
    """Whether any of ``monitors`` asks for the gradient norm."""
    found = monitors.values() if isinstance(monitors, Mapping) else monitors
    return any(isinstance(m, GradNormMonitor) and m.wants_grad_norm for m in found)
