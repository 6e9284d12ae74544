"""What monitors may ask of a run, and the monitor state kept in checkpoints.

Monitors observe through the ``qp_on_*`` hooks. Two monitor wishes need the
trainer's cooperation and are requests rather than actions, so the trainer can
carry them out at a safe point (after the hook, before the next batch):

* ``run.request_stop(reason)``: end the run now; the last finished epoch's
  ``last.pt`` stays as it is, so the run can be resumed.
* ``run.request_rollback(reason, lr_factor)``: reload ``last.pt`` (the last
  finished, finite epoch), scale the learning rate, and redo the epoch.

A monitor with ``state_dict() -> dict`` and ``load_state_dict(dict)`` has that
state saved in every training checkpoint (as JSON, so ``weights_only`` loading
stays possible) and given back on ``--resume``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from qpcore import jsontext
from qpcore.errors import QPError
from qpcore.hookspecs import hookimpl
from qpcore.run import StatefulMonitor

if TYPE_CHECKING:
    import torch

Action = Literal["stop", "rollback"]


@dataclass
class Control:
    """The one pending request of the current batch; the first one wins."""

    action: Action | None = None
    reason: str = ""
    lr_factor: float = 1.0

    def request(self, action: Action, reason: str, lr_factor: float = 1.0) -> None:
        if self.action is None:
            self.action, self.reason, self.lr_factor = action, reason, lr_factor

    def take(self) -> tuple[Action | None, str, float]:
        taken = (self.action, self.reason, self.lr_factor)
        self.action, self.reason, self.lr_factor = None, "", 1.0
        return taken


def monitor_states(monitors: Mapping[str, object]) -> str:
    """The JSON of every stateful monitor's ``state_dict()``, by config name."""
    states = {
        name: monitor.state_dict()
        for name, monitor in monitors.items()
        if isinstance(monitor, StatefulMonitor)
    }
    try:
        return jsontext.dumps(states, nonfinite="text")
    except (TypeError, ValueError) as exc:
        raise QPError(f"a monitor's state_dict() is not JSON-serialisable: {exc}") from exc


def load_monitor_states(monitors: Mapping[str, object], text: str) -> None:
    """Give each monitor its saved state; monitors the checkpoint does not know
    (added since) start fresh, states of monitors no longer configured are dropped."""
    states = json.loads(text)
    if not isinstance(states, dict):
        raise ValueError("monitor states are not a mapping")
    for name, state in states.items():
        monitor = monitors.get(name)
        if isinstance(monitor, StatefulMonitor):
            monitor.load_state_dict(state)


#: Optimizer-group keys that hold a learning rate some scheduler reads back.
_LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")


def scale_lr(optimizer: torch.optim.Optimizer, scheduler: Any, factor: float) -> None:
    """Multiply the learning rate everywhere it lives: the optimizer's groups and
    the base rates schedulers recompute it from, so the next scheduler step does
    not undo the change."""
    for group in optimizer.param_groups:
        for key in _LR_KEYS:
            if isinstance(group.get(key), float | int):
                group[key] = group[key] * factor
    if scheduler is None:
        return
    for holder in (scheduler, getattr(scheduler, "inner", None)):
        if holder is not None and hasattr(holder, "base_lrs"):
            holder.base_lrs = [lr * factor for lr in holder.base_lrs]


def warn(text: str) -> None:
    """A monitor's warning on stderr, printed above any progress bar rather
    than through it; shown even with ``--quiet``, which silences progress only."""
    from tqdm import tqdm

    tqdm.write(f"warning: {text}", file=sys.stderr)


class ClosedWithRun:
    """Base of monitors that hold something (a thread, a file, a progress bar):
    :meth:`close` runs when the run ends, whether it finishes or raises."""

    def close(self) -> None:
        raise NotImplementedError

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Mapping[str, Any]) -> None:
        self.close()

    @hookimpl
    def qp_on_exception(self, run: Any, error: BaseException) -> None:
        self.close()
