"""The seed's literal algorithms, kept to verify the vectorized ones.

Copied from the seed document (Task A14.2) as plain functions, loops and all, so
the tests and ``benchmarks/bench_ranking_loss.py`` can check that the losses of
this package compute the same thing faster. Never use them for training: the
ranking loop is O(B²) Python and its autograd graph holds one node per pair.

The only deliberate change: the ranking accumulator starts as a zero connected to
``pred`` instead of the seed's ``0.0``, so the function returns a tensor with a
gradient even when no pair lies beyond the margin (the seed then returned a
Python float, on which ``backward()`` fails). Values and gradients are otherwise
the seed's, including its unconnected ``tensor(0.0)`` for a batch of one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _seed_squeeze(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    # The seed squeezed only when the ranks differ.
    if pred.dim() != target.dim():
        if pred.dim() == 2 and pred.size(1) == 1:
            pred = pred.squeeze(1)
        if target.dim() == 2 and target.size(1) == 1:
            target = target.squeeze(1)
    return pred, target


def seed_ssim_loss(pred: Tensor, target: Tensor, alpha: float = 1.0, beta: float = 0.1) -> Tensor:
    """The seed's ``SSIMLoss.forward``."""
    pred, target = _seed_squeeze(pred, target)
    mse_loss = F.mse_loss(pred, target)
    l1_loss = F.l1_loss(pred, target)
    quality_weights = 1.0 + target
    weighted_mse = torch.mean(quality_weights * (pred - target) ** 2)
    return alpha * mse_loss + beta * l1_loss + beta * weighted_mse


def seed_ranking_loss(pred: Tensor, target: Tensor, margin: float = 0.1) -> Tensor:
    """The seed's ``RankingLoss.forward``: a double loop over pairs ``i < j``."""
    batch_size = pred.size(0)
    if batch_size < 2:
        return torch.tensor(0.0, device=pred.device)
    loss = pred.sum() * 0.0
    count = 0
    for i in range(batch_size):
        for j in range(i + 1, batch_size):
            target_diff = target[i] - target[j]
            pred_diff = pred[i] - pred[j]
            if target_diff > margin:
                loss = loss + F.relu(margin - pred_diff)
            elif target_diff < -margin:
                loss = loss + F.relu(margin + pred_diff)
            count += 1
    return loss / count


def seed_correlation_loss(pred: Tensor, target: Tensor) -> Tensor:
    """The correlation term of the seed's ``CombinedLoss`` (``1 - r``)."""
    if pred.size(0) <= 1:
        return torch.tensor(0.0, device=pred.device)
    pred_centered = pred - pred.mean()
    target_centered = target - target.mean()
    correlation = (pred_centered * target_centered).sum() / (
        torch.sqrt((pred_centered**2).sum()) * torch.sqrt((target_centered**2).sum()) + 1e-8
    )
    return 1.0 - correlation


def seed_combined_loss(
    pred: Tensor,
    target: Tensor,
    ssim_weight: float = 1.0,
    ranking_weight: float = 0.1,
    correlation_weight: float = 0.1,
) -> dict[str, Tensor]:
    """The seed's ``CombinedLoss.forward`` (its inner losses at their defaults)."""
    ssim = seed_ssim_loss(pred, target)
    ranking = seed_ranking_loss(pred, target)
    correlation = seed_correlation_loss(pred, target)
    total = ssim_weight * ssim + ranking_weight * ranking + correlation_weight * correlation
    return {
        "total_loss": total,
        "ssim_loss": ssim,
        "ranking_loss": ranking,
        "correlation_loss": correlation,
    }


def seed_focal_loss(pred: Tensor, target: Tensor, alpha: float = 1.0, gamma: float = 2.0) -> Tensor:
    """The seed's ``FocalLoss.forward``."""
    error = torch.abs(pred - target)
    focal_weight = alpha * (error**gamma)
    loss = focal_weight * (pred - target) ** 2
    return loss.mean()


__all__ = [
    "seed_combined_loss",
    "seed_correlation_loss",
    "seed_focal_loss",
    "seed_ranking_loss",
    "seed_ssim_loss",
]
