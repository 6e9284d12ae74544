"""``anomaly``: non-finite losses or gradients and loss explosions, acted on."""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from qpcore import Params, hookimpl, jsontext
from qpcore.monitoring import warn

#: Diagnostic written when the monitor stops a run.
DIAGNOSTIC = "anomaly.json"
#: One line per anomaly seen, whatever the action.
LOG = "anomalies.jsonl"


class AnomalyParams(Params):
    action: Literal["warn", "stop", "rollback"] = Field(
        "warn",
        description="On an anomaly: warn and go on, stop (keeping the last good epoch), "
        "or roll back to it with a lower learning rate.",
    )
    explosion_factor: float = Field(
        10.0, gt=1, description="A loss above this many times the running median is an explosion."
    )
    window: int = Field(200, ge=5, le=100_000, description="Batch losses in the running median.")
    warmup_batches: int = Field(
        20, ge=1, description="Batches seen before explosions are looked for."
    )
    lr_factor: float = Field(0.5, gt=0, lt=1, description="Learning-rate factor of a rollback.")
    max_rollbacks: int = Field(3, ge=0, description="Rollbacks before the run is stopped instead.")
    gradients: bool = Field(True, description="Also check the gradient norm of each step.")


class Anomaly:
    """Watches every training batch. A NaN/inf loss or gradient norm, or a loss
    above ``explosion_factor`` times the median of the last ``window`` good
    batches, is an anomaly: logged to ``anomalies.jsonl`` and acted on."""

    def __init__(self, params: AnomalyParams) -> None:
        self.params = params
        self.wants_grad_norm = params.gradients
        self.losses: deque[float] = deque(maxlen=params.window)
        self._sorted: list[float] = []  # the window, sorted: a median in O(1)
        self.rollbacks = 0
        self.count = 0
        self._in_epoch = 0

    def state_dict(self) -> dict[str, Any]:
        return {"losses": list(self.losses), "rollbacks": self.rollbacks, "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.losses.clear()
        self.losses.extend(float(v) for v in state["losses"])
        self._sorted = sorted(self.losses)
        self.rollbacks, self.count = int(state["rollbacks"]), int(state["count"])

    def _what(self, metrics: Mapping[str, float]) -> str | None:
        loss, norm = metrics["loss"], metrics.get("grad_norm")
        if not math.isfinite(loss):
            return f"non-finite loss ({loss})"
        if self.params.gradients and norm is not None and not math.isfinite(norm):
            return f"non-finite gradient norm ({norm})"
        # A window shorter than the warm-up must not switch the check off.
        if len(self.losses) >= min(self.params.warmup_batches, self.params.window):
            median = self._median()
            if median > 0 and loss > self.params.explosion_factor * median:
                return (
                    f"loss explosion: {loss:.4g} is {loss / median:.1f}x the running median "
                    f"{median:.4g}"
                )
        return None

    def _remember(self, loss: float) -> None:
        if len(self.losses) == self.losses.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self.losses[0])]
        self.losses.append(loss)
        bisect.insort(self._sorted, loss)

    def _median(self) -> float:
        values, n = self._sorted, len(self._sorted)
        return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2

    @hookimpl
    def qp_on_batch_end(
        self, run: Any, epoch: int, batch: int, metrics: Mapping[str, float]
    ) -> None:
        what = self._what(metrics)
        if what is None:
            self._remember(metrics["loss"])
            return
        self.count += 1
        action = self.params.action
        if action == "rollback" and self.rollbacks >= self.params.max_rollbacks:
            action = "stop"
            what += f" (after {self.rollbacks} rollbacks)"
        elif action == "rollback" and run.state.epoch == 0:
            action = "stop"  # no finished epoch to return to
            what += " (no finished epoch to roll back to)"
        record = {
            "time": datetime.now().astimezone().isoformat(timespec="seconds"),
            "epoch": epoch,
            "batch": batch,
            "anomaly": what,
            "loss": metrics["loss"],
            "grad_norm": metrics.get("grad_norm"),
            "lr": metrics["lr"],
            "action": action,
        }
        run.run_dir.mkdir(parents=True, exist_ok=True)
        with open(run.run_dir / LOG, "a", encoding="utf-8") as handle:
            handle.write(jsontext.dumps(record, nonfinite="text") + "\n")
        where = f"epoch {epoch}, batch {batch}"
        self._in_epoch += 1
        if action == "warn":
            if self._in_epoch == 1:  # one line per epoch; the rest is in the log
                warn(f"{what} at {where}")
        elif action == "rollback":
            self.rollbacks += 1
            run.request_rollback(f"{what} at {where}", self.params.lr_factor)
        else:
            diagnostic = {
                **record,
                "recent_losses": list(self.losses)[-50:],
                "advice": "resume with `qp train --resume RUN` after the cause is fixed, "
                "or train again with a lower learning rate or gradient clipping "
                "(trainer.grad_clip)",
            }
            path = run.run_dir / DIAGNOSTIC
            text = jsontext.dumps(diagnostic, nonfinite="text", indent=2)
            path.write_text(text + "\n", encoding="utf-8")
            run.request_stop(f"{what} at {where} (diagnostic: {path})")

    @hookimpl
    def qp_on_epoch_start(self, run: Any, epoch: int) -> None:
        self._in_epoch = 0  # also after a rollback, whose epoch had no end

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        if self._in_epoch > 1:
            warn(f"{self._in_epoch} anomalies in epoch {epoch}: see {run.run_dir / LOG}")
        self._in_epoch = 0
