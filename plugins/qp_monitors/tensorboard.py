"""``tensorboard``: scalars for TensorBoard (optional extra ``qpcore[tensorboard]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from qpcore import Params, hookimpl
from qpcore.errors import QPError
from qpcore.monitoring import ClosedWithRun


class TensorboardParams(Params):
    folder: str = Field("tensorboard", description="Folder inside the run folder.")
    every_batches: int = Field(
        10, ge=0, description="Log the batch loss every this many batches (0: epochs only)."
    )


class Tensorboard(ClosedWithRun):
    """Every numeric epoch metric under ``epoch/<name>``, and the batch loss
    and LR under ``batch/`` every ``every_batches`` batches, by global step."""

    def __init__(self, params: TensorboardParams) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise QPError(
                "the tensorboard monitor needs the tensorboard package: "
                "pip install 'qpcore[tensorboard]'"
            ) from exc
        self._writer_class = SummaryWriter
        self.params = params
        self.writer: Any = None
        self.step = 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step = int(state["step"])

    @hookimpl
    def qp_on_fit_start(self, run: Any) -> None:
        self.writer = self._writer_class(log_dir=str(run.run_dir / self.params.folder))

    @hookimpl
    def qp_on_batch_end(
        self, run: Any, epoch: int, batch: int, metrics: Mapping[str, float]
    ) -> None:
        self.step += 1
        every = self.params.every_batches
        if self.writer is not None and every and self.step % every == 0:
            self.writer.add_scalar("batch/loss", metrics["loss"], self.step)
            self.writer.add_scalar("batch/lr", metrics["lr"], self.step)

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        if self.writer is None:
            return
        for name, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and name != "epoch":
                self.writer.add_scalar(f"epoch/{name}", value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
