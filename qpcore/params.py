"""The base class for every component's parameters.

Each component (a loss, a scheduler, ...) declares its knobs as a pydantic model
derived from :class:`Params`, so a config names the component and the component's
own model validates what the config passes: an unknown key or a wrong type is an
error with a dotted path, never a ``TypeError`` deep inside a constructor.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Parameters of one component; unknown keys are errors.

    Example:
        >>> from pydantic import Field
        >>> class FocalParams(Params):
        ...     gamma: float = Field(2.0, ge=0, description="Focusing exponent.")
        >>> FocalParams(gamma=1.0).gamma
        1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class NoParams(Params):
    """For components without knobs: any key given to them is an error."""
