"""Built-in losses of qpcore, registered like any third-party plugin.

The entry point ``qp_losses = "qp_losses"`` (group ``qpcore``) makes the plugin
manager import this module and call :func:`qp_register_losses`. The losses are
torch modules, imported only when a run builds one; registration reads the
params models of :mod:`qp_losses.params`.
"""

from __future__ import annotations

from qp_losses.params import (
    CombinedParams,
    FocalParams,
    HuberParams,
    PLCCParams,
    RankingParams,
    SSIMParams,
    WeightRamp,
)
from qpcore import LossSpec, NoParams, hookimpl
from qpcore.specs import lazy


@hookimpl
def qp_register_losses() -> list[LossSpec]:
    """Offer the eight built-in losses."""
    return [
        LossSpec(
            "mse",
            lazy("qp_losses.pointwise:MSELoss"),
            params=NoParams,
            summary="Mean squared error",
        ),
        LossSpec(
            "mae",
            lazy("qp_losses.pointwise:MAELoss"),
            params=NoParams,
            summary="Mean absolute error",
        ),
        LossSpec(
            "huber",
            lazy("qp_losses.pointwise:HuberLoss"),
            params=HuberParams,
            summary="Huber loss: quadratic below delta, linear above",
        ),
        LossSpec(
            "ssim",
            lazy("qp_losses.pointwise:SSIMLoss"),
            params=SSIMParams,
            summary="MSE + L1 + quality-weighted MSE (the seed's SSIMLoss)",
        ),
        LossSpec(
            "ranking",
            lazy("qp_losses.batchwise:RankingLoss"),
            params=RankingParams,
            summary="Pairwise margin ranking loss over the batch",
        ),
        LossSpec(
            "plcc",
            lazy("qp_losses.batchwise:PLCCLoss"),
            params=PLCCParams,
            summary="1 - Pearson correlation",
        ),
        LossSpec(
            "combined",
            lazy("qp_losses.combined:CombinedLoss"),
            params=CombinedParams,
            summary="Weighted ssim + ranking + correlation, fixed, ramped or learned weights",
        ),
        LossSpec(
            "focal",
            lazy("qp_losses.pointwise:FocalLoss"),
            params=FocalParams,
            summary="Focal regression loss alpha * |e|^gamma * e^2",
        ),
    ]


__all__ = [
    "CombinedParams",
    "FocalParams",
    "HuberParams",
    "PLCCParams",
    "RankingParams",
    "SSIMParams",
    "WeightRamp",
    "qp_register_losses",
]
