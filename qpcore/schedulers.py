"""One stepping interface for every learning-rate scheduler, with optional warmup.

torch's schedulers disagree on when to step (per batch or per epoch) and on what to
pass (``ReduceLROnPlateau`` wants a metric). :class:`ScheduledLR` hides that from the
trainer, and adds linear warmup in front of any scheduler, including third-party
ones, because warmup is a property of the run, not of one scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qpcore.errors import QPError
from qpcore.params import SchedulerParams
from qpcore.specs import SchedulerSpec

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ScheduleContext:
    """What a scheduler factory may need to know about the run.

    Attributes:
        epochs: Epochs the scheduler itself runs (the run's epochs minus warmup).
        steps_per_epoch: Optimizer steps per epoch (after gradient accumulation).
    """

    epochs: int
    steps_per_epoch: int


class ScheduledLR:
    """Steps a torch scheduler at the right moments, after an optional warmup.

    During warmup the inner scheduler is not stepped, so its own schedule starts
    unshifted when warmup ends.

    Args:
        inner: The torch scheduler built by the plugin.
        optimizer: The optimizer both act on.
        interval: ``"epoch"`` or ``"step"`` (per optimizer step).
        metric: The epoch metric passed to ``inner.step`` (plateau schedulers).
        warmup_steps: Warmup length in ``interval`` units.
        start_factor: Fraction of the base LR at the first warmup step.
    """

    def __init__(
        self,
        inner: Any,
        optimizer: torch.optim.Optimizer,
        interval: str = "epoch",
        metric: str | None = None,
        warmup_steps: int = 0,
        start_factor: float = 0.1,
    ) -> None:
        self.inner = inner
        self.optimizer = optimizer
        self.interval = interval
        self.metric = metric
        self.warmup_steps = warmup_steps
        self.start_factor = start_factor
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.count = 0
        if warmup_steps > 0:
            self._set_warmup_lr()

    @property
    def in_warmup(self) -> bool:
        return self.count < self.warmup_steps

    def _set_warmup_lr(self) -> None:
        fraction = self.count / self.warmup_steps
        factor = self.start_factor + (1.0 - self.start_factor) * fraction
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def _advance(self, metrics: Mapping[str, float] | None) -> None:
        if self.in_warmup:
            self.count += 1
            self._set_warmup_lr()
            return
        if self.metric is None:
            self.inner.step()
            return
        if metrics is None or self.metric not in metrics:
            raise QPError(f"scheduler watches {self.metric!r}, which this epoch did not report")
        self.inner.step(metrics[self.metric])

    def step_batch(self) -> None:
        """Call after every optimizer step."""
        if self.interval == "step":
            self._advance(None)

    def step_epoch(self, metrics: Mapping[str, float]) -> None:
        """Call after validation, with the epoch's metrics."""
        if self.interval == "epoch":
            self._advance(metrics)

    @property
    def last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "count": self.count, "base_lrs": self.base_lrs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.count = int(state["count"])
        self.base_lrs = list(state["base_lrs"])


def build_scheduler(
    spec: SchedulerSpec,
    params: SchedulerParams,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
) -> ScheduledLR:
    """Build the plugin's scheduler for a run of ``epochs`` and wrap it.

    Warmup epochs come out of the run's epochs, so a cosine schedule still ends at
    the last epoch.
    """
    warmup_epochs = min(params.warmup_epochs, max(epochs - 1, 0))
    context = ScheduleContext(
        epochs=max(epochs - warmup_epochs, 1), steps_per_epoch=max(steps_per_epoch, 1)
    )
    inner = spec.build(optimizer, params, context)
    unit = context.steps_per_epoch if spec.interval == "step" else 1
    metric = getattr(params, spec.metric_param) if spec.metric_param else None
    return ScheduledLR(
        inner,
        optimizer,
        interval=spec.interval,
        metric=metric,
        warmup_steps=warmup_epochs * unit,
        start_factor=params.warmup_start_factor,
    )
