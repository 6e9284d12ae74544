"""The ``combined`` loss: accuracy, ordering and correlation in one objective.

Each term answers a different failure: the ssim term a biased level, the ranking
term swapped candidates, the correlation term a compressed spread. Their weights
are either numbers, linear ramps over epochs, learned from the data
(``weighting: uncertainty``, Kendall et al. 2018), or rescaled at each epoch by how
slowly each term's training loss is falling (``weighting: dwa``, Liu et al. 2019).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from qp_losses.functional import flatten_pair, pairwise_margin_ranking, pearson
from qp_losses.params import (
    COMPONENTS,
    CombinedParams,
    Component,
    SSIMParams,
    Weight,
    WeightRamp,
)
from qp_losses.pointwise import ssim_objective

# The ssim term is the seed's SSIMLoss with its own defaults, as in the seed.
_SSIM_TERM = SSIMParams()


def dwa_weights(history: Tensor, temperature: float) -> Tensor:
    """Dynamic Weight Averaging factors (Liu, Johns and Davison 2019) from two epochs.

    ``lambda_k = K * exp(r_k / T) / sum_i exp(r_i / T)`` with the descent ratio
    ``r_k = history[1, k] / history[0, k]``. A term whose loss fell least gets the
    largest factor, and the factors always sum to ``K``, so the total keeps its
    scale whatever the ratios. A ratio that cannot be trusted, because the earlier
    mean is 0 or either mean or the ratio is not finite, counts as 1: this is also
    how a not-yet-seen epoch (stored as 0) gives factors of exactly 1, and why one
    diverged term cannot turn every factor into NaN.

    Args:
        history: ``[2, K]`` mean training losses per term; row 0 is the epoch
            before last, row 1 the last epoch.
        temperature: ``T > 0``; large values flatten the factors towards 1.

    Returns:
        ``[K]`` factors summing to ``K``, in ``history``'s dtype; positive unless a
        small ``T`` underflows ``exp`` for the fastest-falling terms.

    Raises:
        ValueError: On another shape or a temperature that is not positive.
    """
    if history.ndim != 2 or history.shape[0] != 2:
        raise ValueError(f"history must have shape [2, K], got {list(history.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    before, last = history[0], history[1]
    ratio = last / before
    trusted = torch.isfinite(before) & (before != 0) & torch.isfinite(ratio)
    ratio = torch.where(trusted, ratio, torch.ones_like(ratio))
    # A tiny T can push finite ratios past the float range; softmax of inf is NaN.
    logits = torch.nan_to_num(ratio / temperature)
    return history.shape[1] * torch.softmax(logits, dim=0)


class _DynamicWeightAveraging(nn.Module):
    """DWA's running state: this epoch's row-weighted sums and the last two means.

    Everything is a buffer so that it is in ``state_dict``: the trainer saves a
    checkpoint after an epoch's last batch and calls ``set_epoch(next)`` after a
    resume, and that roll then closes the saved sums exactly as an uninterrupted
    run would. float32 and int64 only, because MPS has no float64.
    """

    sums: Tensor
    rows: Tensor
    history: Tensor
    epoch: Tensor

    def __init__(self, terms: int, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature
        self.register_buffer("sums", torch.zeros(terms))
        self.register_buffer("rows", torch.zeros((), dtype=torch.int64))
        # 0 marks "no epoch yet"; dwa_weights reads it as ratio 1.
        self.register_buffer("history", torch.zeros(2, terms))
        # The epoch the sums belong to; -1 before the first set_epoch.
        self.register_buffer("epoch", torch.tensor(-1, dtype=torch.int64))

    def roll(self, epoch: int) -> None:
        """Close the running epoch's means into the history when ``epoch`` is later.

        An epoch not after the stored one leaves everything alone: a resume that
        re-announces the saved epoch cannot push the same mean twice, and a tool
        that loads ``last.pt``'s state and then sets an earlier checkpoint's epoch
        (the loss landscape on ``best.pt``) keeps the last factors instead of
        inventing those of an epoch nobody trained. An epoch without training
        batches pushes nothing, so it cannot put a 0 (read as "unknown") into the
        history in place of a real mean.
        """
        if epoch <= int(self.epoch):
            return
        if int(self.rows) > 0:
            mean = self.sums / self.rows
            self.history.copy_(torch.stack([self.history[1], mean]))
            self.sums.zero_()
            self.rows.zero_()
        self.epoch.fill_(epoch)

    def add(self, values: Tensor, rows: int) -> None:
        """Count one training batch; ``values`` are its per-term means."""
        self.sums.add_(values.detach().to(self.sums.dtype) * rows)
        self.rows.add_(rows)

    def factors(self) -> Tensor:
        """The current epoch's ``lambda`` per active term."""
        return dwa_weights(self.history, self.temperature)


class CombinedLoss(nn.Module):
    """Weighted ssim + ranking + correlation, returning every term for the logs.

    Output mapping: ``loss`` (the total, back-propagated), the three raw terms
    ``ssim``, ``ranking`` and ``correlation``, their effective weights
    ``weight_<term>`` and, with ``weighting: uncertainty``, the learned
    ``log_var_<term>``. All but ``loss`` are detached.

    With ``weighting: uncertainty`` the module owns one ``nn.Parameter`` ``s``
    per active term (``log_variance.<term>``, initialised to 0 so the first step
    equals fixed weighting); the trainer must give ``loss.parameters()`` to the
    optimizer and save ``loss.state_dict()`` with the model.

    With ``weighting: dwa`` it owns buffers instead (``dwa.sums``, ``dwa.rows``,
    ``dwa.history``, ``dwa.epoch``): the effective weight of an active term is its
    configured weight (number or ramp) times :func:`dwa_weights` of the last two
    epochs' mean training values. Only batches seen in training mode count, so
    the validation pass cannot move the weights. Under DDP each rank sees only
    its shard, and DDP's buffer broadcast (on by default) copies rank 0's buffers
    to the other ranks before each synchronised forward: every rank trains with
    the factors of rank 0's shard.
    """

    log_variance: nn.ParameterDict | None
    dwa: _DynamicWeightAveraging | None

    def __init__(self, params: CombinedParams | None = None) -> None:
        super().__init__()
        self.params = params or CombinedParams()
        self.epoch = 0
        self._active = self.params.active_components()
        if self.params.weighting == "uncertainty":
            self.log_variance = nn.ParameterDict(
                {c: nn.Parameter(torch.zeros(())) for c in self._active}
            )
        else:
            self.log_variance = None
        if self.params.weighting == "dwa":
            self.dwa = _DynamicWeightAveraging(len(self._active), self.params.dwa_temperature)
        else:
            self.dwa = None

    def set_epoch(self, epoch: int) -> None:
        """Select the weights of ``epoch``, the trainer's epoch number (1 for the
        first epoch, as ``metrics.jsonl`` counts); the trainer calls this before
        each epoch's first batch. Ramps count epochs from 0 (``start_epoch: 0``
        is the first epoch), so epoch ``n`` uses the ramp's value at ``n - 1``.

        With ``weighting: dwa`` a later epoch also closes the previous one's means;
        the same (or an earlier) epoch again changes nothing, so a resume may
        re-call it.
        """
        self.epoch = epoch - 1
        if self.dwa is not None:
            self.dwa.roll(epoch)

    def weights(self) -> dict[str, float]:
        """The configured weight of each term at the current epoch."""
        return {c: self.params.weight_at(c, self.epoch) for c in COMPONENTS}

    def factors(self) -> dict[str, float]:
        """The DWA factor of each term this epoch, for inspection and tests.

        1.0 for every term unless ``weighting`` is ``dwa``, and for a term that is
        never active (it has no factor, its weight being 0 throughout).
        """
        found = {c: 1.0 for c in COMPONENTS}
        if self.dwa is not None:
            found.update(zip(self._active, self.dwa.factors().tolist(), strict=True))
        return found

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        p, t = flatten_pair(pred, target)
        terms: dict[str, Tensor] = {
            "ssim": ssim_objective(p, t, _SSIM_TERM.alpha, _SSIM_TERM.beta),
            "ranking": pairwise_margin_ranking(p, t, self.params.margin),
            "correlation": 1.0 - pearson(p, t),
        }
        weights = self.weights()
        factor: dict[str, Tensor] = {}
        if self.dwa is not None:
            factor = dict(zip(self._active, self.dwa.factors().to(p.dtype).unbind(), strict=True))
            if self.training:  # the validation pass must not steer the weights
                self.dwa.add(torch.stack([terms[c] for c in self._active]), p.shape[0])
        parts: list[Tensor] = []
        effective: dict[str, Tensor] = {}
        log_vars: dict[str, Tensor] = {}
        for name, value in terms.items():
            w = weights[name]
            if self.log_variance is not None:
                if name in self.log_variance:
                    s = self.log_variance[name]
                    scale = w * torch.exp(-s)
                    parts.append(scale * value + s)
                    effective[name] = scale.detach()
                    log_vars[name] = s.detach()
                else:
                    effective[name] = p.new_tensor(0.0)
            elif name in factor:
                scale = w * factor[name]
                parts.append(scale * value)
                effective[name] = scale.detach()
            else:
                parts.append(w * value)
                effective[name] = p.new_tensor(w)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        out: dict[str, Tensor] = {"loss": total}
        out.update({name: value.detach() for name, value in terms.items()})
        out.update({f"weight_{name}": w for name, w in effective.items()})
        out.update({f"log_var_{name}": s for name, s in log_vars.items()})
        return out


__all__ = [
    "COMPONENTS",
    "CombinedLoss",
    "CombinedParams",
    "Component",
    "Weight",
    "WeightRamp",
    "dwa_weights",
]
