"""The scheduler kit: :func:`assert_scheduler_conforms`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qpcore.testing._common import _call, _params, _reloaded, _require

if TYPE_CHECKING:
    import torch

    from qpcore.params import SchedulerParams
    from qpcore.schedulers import ScheduledLR
    from qpcore.specs import SchedulerSpec

#: Learning rate of the optimizer the check drives.
BASE_LR = 0.1


def assert_scheduler_conforms(
    spec: SchedulerSpec,
    params: Mapping[str, Any] | None = None,
    *,
    epochs: int = 6,
    steps_per_epoch: int = 4,
) -> None:
    """Check that a scheduler keeps the contract the trainer relies on.

    The scheduler is built the trainer's way, by
    :func:`qpcore.schedulers.build_scheduler` (``factory(optimizer, params,
    context)`` wrapped with the core's warmup), and driven as the training loop
    drives it: ``step_batch()`` after each optimizer step, ``step_epoch(metrics)``
    after each epoch, with the watched metric (``metric_param``) falling and
    then stalling, so a plateau scheduler acts. The check asserts that:

    * the factory's object has ``step``, ``state_dict`` and ``load_state_dict``;
    * every group's ``"lr"`` is a plain number, positive at the start, and
      finite and not negative at every optimizer step (a schedule may reach 0,
      as cosine with ``eta_min: 0`` does);
    * ``state_dict()`` survives ``torch.save``/``torch.load(weights_only=True)``;
    * resumed at each epoch's end (as ``--resume`` does from ``last.pt``: a
      fresh optimizer and scheduler, the optimizer's state loaded, then the
      scheduler's), the rest of the run sees exactly the learning rates of an
      uninterrupted run.

    Args:
        spec: The scheduler's registration record.
        params: Raw parameters as a config would give them; ``None`` for defaults.
        epochs: Epochs of the simulated run (warmup included).
        steps_per_epoch: Optimizer steps per epoch.

    Raises:
        AssertionError: Naming the scheduler and the broken rule.
    """
    name = spec.name
    validated = _params(spec, params)
    _require("scheduler", name, epochs >= 2, "the check needs epochs >= 2 to resume")
    scheduler, optimizer = _build(spec, validated, epochs, steps_per_epoch)
    for method in ("step", "state_dict", "load_state_dict"):
        _require(
            "scheduler",
            name,
            callable(getattr(scheduler.inner, method, None)),
            f"the factory's {type(scheduler.inner).__name__} has no {method}() "
            "(the trainer steps it and keeps its state in checkpoints)",
        )
    first = _lrs(name, optimizer)
    _require(
        "scheduler",
        name,
        all(lr > 0 for lr in first),
        f"the first learning rates are {first}: a run must start with a positive one",
    )
    full = _drive(name, scheduler, optimizer, range(epochs), steps_per_epoch)

    for cut in range(1, epochs):
        scheduler, optimizer = _build(spec, validated, epochs, steps_per_epoch)
        _drive(name, scheduler, optimizer, range(cut), steps_per_epoch)
        optimizer_state = _reloaded("scheduler", name, optimizer.state_dict())
        scheduler_state = _reloaded("scheduler", name, scheduler.state_dict())
        resumed, fresh = _build(spec, validated, epochs, steps_per_epoch)
        fresh.load_state_dict(optimizer_state)
        _call(
            "scheduler",
            name,
            "load_state_dict() of a saved state",
            resumed.load_state_dict,
            scheduler_state,
        )
        rest = _drive(name, resumed, fresh, range(cut, epochs), steps_per_epoch)
        expected = full[cut * (steps_per_epoch + 1) :]
        _require(
            "scheduler",
            name,
            rest == expected,
            f"resumed after epoch {cut}, the learning rates are {_short(rest)} instead of "
            f"{_short(expected)}: load_state_dict() does not restore where the schedule was",
        )


def _build(
    spec: SchedulerSpec, params: SchedulerParams, epochs: int, steps_per_epoch: int
) -> tuple[ScheduledLR, torch.optim.Optimizer]:
    """A fresh optimizer (two groups, as the trainer's) and the scheduler on it."""
    import torch

    from qpcore.schedulers import build_scheduler

    weights = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD(
        [{"params": [weights[0]]}, {"params": [weights[1]], "weight_decay": 0.0}], lr=BASE_LR
    )
    scheduler = _call(
        "scheduler",
        spec.name,
        "the factory",
        build_scheduler,
        spec,
        params,
        optimizer,
        epochs,
        steps_per_epoch,
    )
    return scheduler, optimizer


def _metric(epoch: int) -> float:
    """The watched metric: improving for three epochs, then stalled."""
    return 1.0 / (1 + min(epoch, 2))


def _drive(
    name: str,
    scheduler: ScheduledLR,
    optimizer: torch.optim.Optimizer,
    epochs: range,
    steps_per_epoch: int,
) -> list[tuple[float, ...]]:
    """The learning rates after every step of ``epochs``, as the loop steps."""
    import torch

    seen: list[tuple[float, ...]] = []
    for epoch in epochs:
        for step in range(steps_per_epoch):
            # The rate a step uses must be usable; the one after the run's last
            # step is never used (torch's OneCycleLR extrapolates it).
            _require_usable(name, _lrs(name, optimizer), f"at step {step} of epoch {epoch}")
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = torch.ones_like(param)
            optimizer.step()
            _call("scheduler", name, "step_batch()", scheduler.step_batch)
            seen.append(_lrs(name, optimizer))
        value = _metric(epoch)
        metrics = {"val_loss": value, "train_loss": value}
        if scheduler.metric is not None:
            metrics[scheduler.metric] = value
        _call("scheduler", name, "step_epoch()", scheduler.step_epoch, metrics)
        seen.append(_lrs(name, optimizer))
    return seen


def _lrs(name: str, optimizer: torch.optim.Optimizer) -> tuple[float, ...]:
    lrs = tuple(group["lr"] for group in optimizer.param_groups)
    for lr in lrs:
        _require(
            "scheduler",
            name,
            isinstance(lr, int | float) and not isinstance(lr, bool),
            f"the learning rate is a {type(lr).__name__}, not a number (it is logged and "
            "written to metrics.jsonl)",
        )
    return lrs


def _require_usable(name: str, lrs: tuple[float, ...], when: str) -> None:
    for lr in lrs:
        _require(
            "scheduler",
            name,
            math.isfinite(lr) and lr >= 0,
            f"{when} the learning rate is {lr}: it must be finite and not negative",
        )


def _short(values: list[tuple[float, ...]]) -> str:
    shown = [round(v[0], 8) for v in values[:8]]
    return f"{shown}{' ...' if len(values) > 8 else ''}"


__all__ = ["assert_scheduler_conforms"]
