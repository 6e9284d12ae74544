"""Parameters of the built-in losses.

Kept apart from the losses, which are torch modules, so registering them
(``qp plugins``, ``qp config validate``) imports pydantic only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, NonNegativeFloat, Tag, model_validator

from qpcore import Params

#: Variance floor of :func:`qp_losses.functional.pearson`, in squared target units (SSIM²).
PEARSON_EPS = 1e-8


class HuberParams(Params):
    """Parameters of the ``huber`` loss."""

    delta: float = Field(
        0.1,
        gt=0,
        description=(
            "Error (in SSIM units) where the loss turns from quadratic to linear. "
            "SSIM errors are rarely above 0.1, so torch's default of 1.0 would make "
            "Huber a scaled MSE."
        ),
    )


class SSIMParams(Params):
    """Parameters of the ``ssim`` loss."""

    alpha: float = Field(1.0, ge=0, description="Weight of the plain MSE term.")
    beta: float = Field(
        0.1,
        ge=0,
        description="Weight of both auxiliary terms: the L1 term and the quality-weighted MSE.",
    )


class FocalParams(Params):
    """Parameters of the ``focal`` loss."""

    alpha: float = Field(1.0, gt=0, description="Overall scale of the loss.")
    gamma: float = Field(
        2.0,
        ge=0,
        description="Focusing exponent: larger values put more weight on large errors; 0 is MSE.",
    )


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


Component = Literal["ssim", "ranking", "correlation"]

#: The terms of ``combined``, in the order of its output mapping.
COMPONENTS: tuple[Component, ...] = ("ssim", "ranking", "correlation")


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
    # Alphabetical, as the error for an unknown value then lists them.
    weighting: Literal["dwa", "fixed", "uncertainty"] = Field(
        "fixed",
        description=(
            "'fixed' uses the weights as given; 'uncertainty' multiplies each active "
            "term by a learned exp(-s) and adds s (Kendall et al. 2018); 'dwa' "
            "multiplies each active term by a factor that grows with how slowly its "
            "training loss fell over the last two epochs (Liu et al. 2019)."
        ),
    )
    dwa_temperature: float = Field(
        2.0,
        gt=0,
        description=(
            "Temperature T of weighting 'dwa': large T keeps the factors near 1, small T "
            "gives nearly all of the weight to the slowest-falling term. Ignored by the "
            "other weightings."
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
