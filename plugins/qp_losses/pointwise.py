"""Losses that score each sample on its own and average over the batch.

Their value does not depend on how samples are grouped into batches, so they
behave the same under gradient accumulation and for a batch of one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qp_losses.functional import flatten_pair
from qp_losses.params import FocalParams, HuberParams, SSIMParams
from qpcore import NoParams


class MSELoss(nn.Module):
    """Mean squared error: the baseline every other loss is judged against."""

    def __init__(self, params: NoParams | None = None) -> None:
        super().__init__()
        self.params = params or NoParams()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = flatten_pair(pred, target)
        return F.mse_loss(p, t)


class MAELoss(nn.Module):
    """Mean absolute error: less pulled by the few images whose labels are noisy."""

    def __init__(self, params: NoParams | None = None) -> None:
        super().__init__()
        self.params = params or NoParams()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = flatten_pair(pred, target)
        return F.l1_loss(p, t)


class HuberLoss(nn.Module):
    """Huber loss: MSE's smooth optimum with MAE's tolerance of outliers."""

    def __init__(self, params: HuberParams | None = None) -> None:
        super().__init__()
        self.params = params or HuberParams()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = flatten_pair(pred, target)
        return F.huber_loss(p, t, delta=self.params.delta)


def ssim_objective(pred: Tensor, target: Tensor, alpha: float, beta: float) -> Tensor:
    """The seed's SSIMLoss on flat vectors, shared with ``combined``.

    The quality weights ``1 + target`` make an error on an image that keeps its
    structure well cost up to twice as much: there the vectorization choice is
    decided by small SSIM differences.
    """
    err = pred - target
    sq = err.square()
    return alpha * sq.mean() + beta * err.abs().mean() + beta * ((1.0 + target) * sq).mean()


class SSIMLoss(nn.Module):
    """MSE plus L1 plus a quality-weighted MSE, as the seed's SSIMLoss."""

    def __init__(self, params: SSIMParams | None = None) -> None:
        super().__init__()
        self.params = params or SSIMParams()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = flatten_pair(pred, target)
        return ssim_objective(p, t, self.params.alpha, self.params.beta)


class FocalLoss(nn.Module):
    """Regression focal loss ``alpha * |e|^gamma * e^2``, favouring hard samples.

    Computed as ``alpha * |e|^(gamma + 2)``: the same value, but the seed's
    product ``|e|^gamma * e^2`` back-propagates ``inf * 0 = NaN`` at ``e = 0``
    whenever ``0 < gamma < 1``, and a perfect prediction is not rare.
    """

    def __init__(self, params: FocalParams | None = None) -> None:
        super().__init__()
        self.params = params or FocalParams()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = flatten_pair(pred, target)
        return self.params.alpha * torch.pow((p - t).abs(), self.params.gamma + 2.0).mean()


__all__ = [
    "FocalLoss",
    "FocalParams",
    "HuberLoss",
    "HuberParams",
    "MAELoss",
    "MSELoss",
    "SSIMLoss",
    "SSIMParams",
    "ssim_objective",
]
