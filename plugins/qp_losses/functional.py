"""Tensor helpers every loss in this package shares.

They live in one place so that the shape rules, the degenerate-batch behaviour of
Pearson's r and the ranking kernel are defined once: ``plcc`` and ``combined``'s
correlation term, ``ranking`` and ``combined``'s ranking term cannot drift apart.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qp_losses.params import PEARSON_EPS


def _as_vector(x: Tensor, name: str) -> Tensor:
    # [B] and [B, 1] are both common head outputs; anything else is almost always
    # a bug upstream (e.g. [B, B] from a broadcast), so refuse it loudly.
    if x.ndim == 1:
        return x
    if x.ndim == 2 and x.shape[1] == 1:
        return x.squeeze(1)
    raise ValueError(f"{name} must have shape [B] or [B, 1], got {list(x.shape)}")


def flatten_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Bring predictions and targets to matching ``[B]`` vectors.

    The seed squeezed only when the ranks differed, so ``[B]`` against ``[B, 1]``
    silently broadcast to ``[B, B]`` inside ``nn.MSELoss``; here both sides are
    flattened independently and must then agree. Targets are cast to the
    prediction dtype because labels often arrive as float64 from numpy.

    Args:
        pred: Model output, ``[B]`` or ``[B, 1]``.
        target: Labels, ``[B]`` or ``[B, 1]``.

    Returns:
        ``(pred, target)`` as 1-D tensors of equal length and dtype.

    Raises:
        ValueError: On any other shape, unequal batch sizes or an empty batch.
    """
    p = _as_vector(pred, "pred")
    t = _as_vector(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target hold different batch sizes: {list(pred.shape)} vs "
            f"{list(target.shape)}"
        )
    if p.numel() == 0:
        raise ValueError("empty batch: a loss needs at least one sample")
    return p, t.to(dtype=p.dtype)


def connected_zero(pred: Tensor) -> Tensor:
    """A zero scalar that stays in ``pred``'s graph.

    A bare ``torch.tensor(0.0)`` (the seed's choice for batches under two) has no
    ``grad_fn``, so ``loss.backward()`` raises when such a batch is alone; this
    zero back-propagates a zero gradient instead.
    """
    return pred.sum() * 0.0


def pearson(pred: Tensor, target: Tensor, eps: float = PEARSON_EPS) -> Tensor:
    """Pearson's r with a variance floor, safe for every batch.

    ``r = cov(p, t) / sqrt((var(p) + eps) * (var(t) + eps))`` with population
    (1/B) moments. The floor keeps r and its gradient finite where the plain
    formula divides by zero: a batch of one, constant targets or a collapsed
    model predicting a constant. There r is 0; for a batch of one or constant
    targets the gradient is 0 too (up to the rounding of the mean), and for
    constant predictions it is ``(t_k - mean(t)) / (B * sqrt(eps) * std(t))``
    for sample k, finite where the plain r's gradient grows without bound.

    Elsewhere the floor shrinks r by the factor
    ``1 / sqrt((1 + eps/var(p)) * (1 + eps/var(t)))``, about
    ``|r| * (eps/(2 var(p)) + eps/(2 var(t)))``: below 1e-4 for SSIM standard
    deviations of 0.01 or more at the default ``eps``.

    Args:
        pred: 1-D predictions.
        target: 1-D targets of the same length.
        eps: Variance floor, in squared units of the inputs.

    Returns:
        A scalar tensor in ``[-1, 1]``.
    """
    pc = pred - pred.mean()
    tc = target - target.mean()
    cov = (pc * tc).mean()
    return cov / torch.sqrt(pc.square().mean() + eps) / torch.sqrt(tc.square().mean() + eps)


def pairwise_margin_ranking(pred: Tensor, target: Tensor, margin: float) -> Tensor:
    """The seed's pairwise margin ranking loss, as one batched tensor expression.

    For each unordered pair whose targets differ by more than ``margin`` the
    higher-target sample must be predicted at least ``margin`` higher; the hinge
    ``relu(margin - (p_hi - p_lo))`` is averaged over *all* ``B(B-1)/2`` pairs,
    including those within the margin, exactly as the seed's double loop did.
    Building the full ``[B, B]`` difference matrices visits each unordered pair
    once (only one of ``(i, j)`` and ``(j, i)`` can have ``t_i - t_j > margin``
    when ``margin >= 0``), so values and gradients equal the loop's up to
    summation order. Memory is O(B²): about 4 MB per 1000² float32 matrix.

    Args:
        pred: 1-D predictions.
        target: 1-D targets of the same length.
        margin: Non-negative margin, in target units.

    Returns:
        A scalar tensor; a connected zero when ``B < 2``.
    """
    n = pred.shape[0]
    if n < 2:
        return connected_zero(pred)
    # weight[i, j] = 1 / (all pairs) where t_i - t_j > margin: built from the
    # targets alone, outside the graph, and folding in the mean saves a kernel.
    weight = ((target[:, None] - target[None, :]) > margin).to(pred.dtype)
    weight = weight * (2.0 / (n * (n - 1)))
    # hinge[i, j] = relu(margin - (p_i - p_j)), bit for bit the loop's value.
    hinge = torch.relu(pred[None, :] - pred[:, None] + margin)
    return (hinge * weight).sum()


__all__ = [
    "PEARSON_EPS",
    "connected_zero",
    "flatten_pair",
    "pairwise_margin_ranking",
    "pearson",
]
