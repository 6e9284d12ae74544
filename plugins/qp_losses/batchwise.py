"""Losses defined over a whole batch rather than per sample.

Rankings and correlations only exist between samples, so these losses see the
batch the trainer passes: under gradient accumulation that is the micro-batch
(see docs/losses.md, "Batch-level losses and gradient accumulation").
"""

from __future__ import annotations

from torch import Tensor, nn

from qp_losses.functional import flatten_pair, pairwise_margin_ranking, pearson
from qp_losses.params import PLCCParams, RankingParams


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
