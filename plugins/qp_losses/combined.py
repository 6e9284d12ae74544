"""The ``combined`` loss: accuracy, ordering and correlation in one objective.

Each term answers a different failure: the ssim term a biased level, the ranking
term swapped candidates, the correlation term a compressed spread. Their weights
are either numbers, linear ramps over epochs, or (``weighting: uncertainty``)
learned from the data following Kendall et al. 2018.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import Discriminator, Field, NonNegativeFloat, Tag, model_validator
from torch import Tensor, nn

from qp_losses.functional import flatten_pair, pairwise_margin_ranking, pearson
from qp_losses.pointwise import SSIMParams, ssim_objective
from qpcore import Params

Component = Literal["ssim", "ranking", "correlation"]

#: The terms of ``combined``, in the order of its output mapping.
COMPONENTS: tuple[Component, ...] = ("ssim", "ranking", "correlation")

# The ssim term is the seed's SSIMLoss with its own defaults, as in the seed.
_SSIM_TERM = SSIMParams()


class WeightRamp(Params):
    """A weight that moves linearly from ``start`` to ``end`` over ``epochs`` epochs.

    Typical use: switch the batch-level terms on only once the pointwise term has
    brought predictions into range, e.g. ``{start: 0.0, end: 0.1, epochs: 10}``.
    The weight depends on the epoch number alone, so a resumed run continues the
    ramp where it stopped.
    """

    start: float = Field(0.0, ge=0, description="Weight up to and at start_epoch.")
    end: float = Field(ge=0, description="Weight from start_epoch + epochs on.")
    epochs: int = Field(ge=1, description="Epochs the ramp takes from start to end.")
    start_epoch: int = Field(0, ge=0, description="Zero-based epoch at which the ramp begins.")

    def at(self, epoch: int) -> float:
        """The weight during zero-based ``epoch``."""
        progress = min(max((epoch - self.start_epoch) / self.epochs, 0.0), 1.0)
        return self.start + (self.end - self.start) * progress


def _weight_kind(value: Any) -> str:
    # Route by input type so a bad ramp reports only the ramp's error, not also
    # "Input should be a valid number".
    return "ramp" if isinstance(value, (Mapping, WeightRamp)) else "constant"


#: A term's weight: a non-negative number or a :class:`WeightRamp`.
Weight = Annotated[
    Annotated[NonNegativeFloat, Tag("constant")] | Annotated[WeightRamp, Tag("ramp")],
    Discriminator(_weight_kind),
]

_WEIGHT_FORM = "a number, or a ramp {start, end, epochs, start_epoch}"


class CombinedParams(Params):
    """Parameters of the ``combined`` loss."""

    ssim_weight: Weight = Field(
        1.0,
        description=f"Weight of the ssim term (seed SSIMLoss, alpha 1, beta 0.1): {_WEIGHT_FORM}.",
    )
    ranking_weight: Weight = Field(
        0.1, description=f"Weight of the pairwise ranking term: {_WEIGHT_FORM}."
    )
    correlation_weight: Weight = Field(
        0.1, description=f"Weight of the 1 - Pearson r term: {_WEIGHT_FORM}."
    )
    margin: float = Field(0.1, ge=0, description="Margin of the ranking term, in SSIM.")
    weighting: Literal["fixed", "uncertainty"] = Field(
        "fixed",
        description=(
            "'fixed' uses the weights as given; 'uncertainty' multiplies each active "
            "term by a learned exp(-s) and adds s (Kendall et al. 2018)."
        ),
    )

    @model_validator(mode="after")
    def _check_weights(self) -> CombinedParams:
        if not self.active_components():
            raise ValueError("every weight is zero, so the loss would train nothing")
        if self.weighting == "uncertainty":
            ramped = [f"{c}_weight" for c in COMPONENTS if isinstance(self.weight(c), WeightRamp)]
            if ramped:
                raise ValueError(
                    f"{', '.join(ramped)}: a ramp cannot be combined with weighting "
                    "'uncertainty', which learns the weights itself; use numbers or "
                    "weighting 'fixed'"
                )
        return self

    def weight(self, component: Component) -> float | WeightRamp:
        """The configured weight of ``component``, number or ramp."""
        return getattr(self, f"{component}_weight")

    def weight_at(self, component: Component, epoch: int) -> float:
        """The weight of ``component`` during zero-based ``epoch``."""
        weight = self.weight(component)
        return weight.at(epoch) if isinstance(weight, WeightRamp) else weight

    def active_components(self) -> tuple[Component, ...]:
        """The terms whose weight is non-zero at some epoch."""
        return tuple(c for c in COMPONENTS if _ever_nonzero(self.weight(c)))


def _ever_nonzero(weight: float | WeightRamp) -> bool:
    if isinstance(weight, WeightRamp):
        return weight.start > 0 or weight.end > 0
    return weight > 0


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
