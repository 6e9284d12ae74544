"""``progress``: a bar per epoch and one line per finished epoch."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from pydantic import Field
from tqdm import tqdm

from qpcore import Params, hookimpl
from qpcore.monitoring import ClosedWithRun


class ProgressParams(Params):
    bar: bool = Field(True, description="A progress bar per epoch (only on a terminal).")
    refresh_s: float = Field(0.1, ge=0, description="Least seconds between two bar redraws.")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class Progress(ClosedWithRun):
    """The seed's tqdm bar (running loss, MAE, LR) while an epoch trains, then a
    summary line. The bar is drawn only when stderr is a terminal, so logs and
    CI output get the lines alone; ``--quiet`` silences both."""

    def __init__(self, params: ProgressParams) -> None:
        self.params = params
        self._bar: Any = None
        self._sums = [0.0, 0.0, 0]

    @hookimpl
    def qp_on_epoch_start(self, run: Any, epoch: int) -> None:
        self.close()  # an epoch cut short by a rollback had no epoch_end
        self._sums = [0.0, 0.0, 0]
        if self.params.bar and not run.quiet and sys.stderr.isatty():
            self._bar = tqdm(
                total=run.batches_per_epoch,
                desc=f"epoch {epoch}/{run.cfg.trainer.epochs}",
                leave=False,
                unit="batch",
                file=sys.stderr,
                mininterval=self.params.refresh_s,
            )

    @hookimpl
    def qp_on_batch_end(
        self, run: Any, epoch: int, batch: int, metrics: Mapping[str, float]
    ) -> None:
        if self._bar is None:
            return
        rows = metrics.get("rows", 1)
        self._sums[0] += metrics["loss"] * rows
        self._sums[1] += metrics.get("mae", 0.0) * rows
        self._sums[2] += rows
        self._bar.set_postfix(
            loss=f"{self._sums[0] / self._sums[2]:.4f}",
            mae=f"{self._sums[1] / self._sums[2]:.4f}",
            lr=f"{metrics['lr']:.1e}",
            refresh=False,
        )
        self._bar.update(1)

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        self.close()
        if run.quiet:
            return
        print(
            f"epoch {epoch:>3}/{run.cfg.trainer.epochs}  loss {_fmt(metrics.get('train_loss'))}  "
            f"val_loss {_fmt(metrics.get('val_loss'))}  val_mae {_fmt(metrics.get('val_mae'))}  "
            f"val_pearson {_fmt(metrics.get('val_pearson'))}  lr {metrics['lr']:.2e}  "
            f"{metrics['time_s']:.2f}s",
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
