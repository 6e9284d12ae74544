"""OneCycle that stops at the end of its cycle (imported only when a run builds it)."""

from __future__ import annotations

from torch.optim.lr_scheduler import OneCycleLR


class BoundedOneCycleLR(OneCycleLR):
    """torch's OneCycle whose rate stays at the final value past the last step.

    The trainer steps the schedule after every optimizer step, so the last
    step asks for the rate of a step that never runs. torch extrapolates it,
    which with linear annealing is below zero: logged as the run's last lr, it
    reads as a bug. Holding the final rate leaves every rate a step uses as
    torch computes it.
    """

    def step(self, epoch: int | None = None) -> None:
        if epoch is None and self.last_epoch >= self.total_steps - 1:
            return
        super().step(epoch)
