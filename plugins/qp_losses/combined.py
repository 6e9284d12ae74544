"""The ``combined`` loss: accuracy, ordering and correlation in one objective.

Each term answers a different failure: the ssim term a biased level, the ranking
term swapped candidates, the correlation term a compressed spread. Their weights
are either numbers, linear ramps over epochs, or (``weighting: uncertainty``)
learned from the data following Kendall et al. 2018.
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
    """

    log_variance: nn.ParameterDict | None

    def __init__(self, params: CombinedParams | None = None) -> None:
        super().__init__()
        self.params = params or CombinedParams()
        self.epoch = 0
        if self.params.weighting == "uncertainty":
            self.log_variance = nn.ParameterDict(
                {c: nn.Parameter(torch.zeros(())) for c in self.params.active_components()}
            )
        else:
            self.log_variance = None

    def set_epoch(self, epoch: int) -> None:
        """Select the ramp weights of zero-based ``epoch``; the trainer calls this."""
        self.epoch = epoch

    def weights(self) -> dict[str, float]:
        """The configured weight of each term at the current epoch."""
        return {c: self.params.weight_at(c, self.epoch) for c in COMPONENTS}

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        p, t = flatten_pair(pred, target)
        terms: dict[str, Tensor] = {
            "ssim": ssim_objective(p, t, _SSIM_TERM.alpha, _SSIM_TERM.beta),
            "ranking": pairwise_margin_ranking(p, t, self.params.margin),
            "correlation": 1.0 - pearson(p, t),
        }
        weights = self.weights()
        parts: list[Tensor] = []
        effective: dict[str, Tensor] = {}
        log_vars: dict[str, Tensor] = {}
        for name, value in terms.items():
            w = weights[name]
            if self.log_variance is None:
                parts.append(w * value)
                effective[name] = p.new_tensor(w)
            elif name in self.log_variance:
                s = self.log_variance[name]
                scale = w * torch.exp(-s)
                parts.append(scale * value + s)
                effective[name] = scale.detach()
                log_vars[name] = s.detach()
            else:
                effective[name] = p.new_tensor(0.0)
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
]
