"""log-cosh loss for qpcore, as a third party would ship it."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from qpcore import LossSpec, Params, hookimpl


class LogCoshParams(Params):
    scale: float = Field(
        10.0, gt=0, description="Errors near 1/scale switch from quadratic to linear."
    )


class LogCoshLoss(torch.nn.Module):
    """Smooth like MSE near zero, robust like MAE for large errors."""

    def __init__(self, params: LogCoshParams) -> None:
        super().__init__()
        self.scale = params.scale

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = pred.reshape(-1), target.reshape(-1)
        # Refuse what would broadcast ([1] against [B]) or average nothing.
        if pred.shape != target.shape or pred.numel() == 0:
            raise ValueError(
                f"pred and target must hold the same, non-zero number of rows: "
                f"{list(pred.shape)} vs {list(target.shape)}"
            )
        x = self.scale * (pred - target)
        # log(cosh(x)) = |x| + log1p(exp(-2|x|)) - log 2, stable for large |x|
        value = x.abs() + torch.log1p(torch.exp(-2 * x.abs())) - math.log(2.0)
        return value.mean() / self.scale**2


@hookimpl
def qp_register_losses() -> list[LossSpec]:
    return [LossSpec("log_cosh", LogCoshLoss, LogCoshParams, "Log-cosh loss (example plugin).")]
