"""Losses defined over a whole batch rather than per sample.

Rankings and correlations only exist between samples, so these losses see the
batch the trainer passes: under gradient accumulation that is the micro-batch
(see docs/losses.md, "Batch-level losses and gradient accumulation").
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from qp_losses.functional import PEARSON_EPS, flatten_pair, pairwise_margin_ranking, pearson
from qpcore import Params


class RankingParams(Params):
    """Parameters of the ``ranking`` loss."""

    margin: float = Field(
        0.1,
        ge=0,
        description=(
            "Target difference (in SSIM) above which a pair's order is enforced, and "
            "the prediction gap the loss then asks for."
        ),
    )


class RankingLoss(nn.Module):
    """Pairwise margin ranking: the selector only needs the order of candidates right.

    A model that predicts every SSIM 0.02 too high still picks the best
    vectorization; one that swaps two candidates does not. This term penalises
    the swaps directly.
    """

    def __init__(self, params: RankingParams | None = None) -> None:
        super().__init__()
        self.params = params or RankingParams()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = flatten_pair(pred, target)
        return pairwise_margin_ranking(p, t, self.params.margin)


class PLCCParams(Params):
    """Parameters of the ``plcc`` loss."""

    eps: float = Field(
        PEARSON_EPS,
        gt=0,
        description=(
            "Variance floor (SSIM²) added to both variances, so a batch of one, constant "
            "targets or constant predictions give r = 0 instead of NaN."
        ),
    )


class PLCCLoss(nn.Module):
    """``1 - r`` (Pearson): trains for the linear agreement the evaluation reports.

    Scale- and offset-free, so it is usually paired with a pointwise loss; alone
    it leaves the predictions' level and spread undetermined.
    """

    def __init__(self, params: PLCCParams | None = None) -> None:
        super().__init__()
        self.params = params or PLCCParams()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = flatten_pair(pred, target)
        return 1.0 - pearson(p, t, self.params.eps)


__all__ = ["PLCCLoss", "PLCCParams", "RankingLoss", "RankingParams"]
