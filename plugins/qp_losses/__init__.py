"""Built-in losses of qpcore, registered like any third-party plugin.

The entry point ``qp_losses = "qp_losses"`` (group ``qpcore``) makes the plugin
manager import this module and call :func:`qp_register_losses`.
"""

from __future__ import annotations

from qp_losses.batchwise import PLCCLoss, PLCCParams, RankingLoss, RankingParams
from qp_losses.combined import CombinedLoss, CombinedParams, WeightRamp
from qp_losses.pointwise import (
    FocalLoss,
    FocalParams,
    HuberLoss,
    HuberParams,
    MAELoss,
    MSELoss,
    SSIMLoss,
    SSIMParams,
)
from qpcore import LossSpec, NoParams, hookimpl


@hookimpl
def qp_register_losses() -> list[LossSpec]:
    """Offer the eight built-in losses."""
    return [
        LossSpec("mse", MSELoss, params=NoParams, summary="Mean squared error"),
        LossSpec("mae", MAELoss, params=NoParams, summary="Mean absolute error"),
        LossSpec(
            "huber",
            HuberLoss,
            params=HuberParams,
            summary="Huber loss: quadratic below delta, linear above",
        ),
        LossSpec(
            "ssim",
            SSIMLoss,
            params=SSIMParams,
            summary="MSE + L1 + quality-weighted MSE (the seed's SSIMLoss)",
        ),
        LossSpec(
            "ranking",
            RankingLoss,
            params=RankingParams,
            summary="Pairwise margin ranking loss over the batch",
        ),
        LossSpec("plcc", PLCCLoss, params=PLCCParams, summary="1 - Pearson correlation"),
        LossSpec(
            "combined",
            CombinedLoss,
            params=CombinedParams,
            summary="Weighted ssim + ranking + correlation, fixed, ramped or learned weights",
        ),
        LossSpec(
            "focal",
            FocalLoss,
            params=FocalParams,
            summary="Focal regression loss alpha * |e|^gamma * e^2",
        ),
    ]


__all__ = [
    "CombinedLoss",
    "CombinedParams",
    "FocalLoss",
    "FocalParams",
    "HuberLoss",
    "HuberParams",
    "MAELoss",
    "MSELoss",
    "PLCCLoss",
    "PLCCParams",
    "RankingLoss",
    "RankingParams",
    "SSIMLoss",
    "SSIMParams",
    "WeightRamp",
    "qp_register_losses",
]
