"""The base class for every component's parameters.

Each component (a loss, a scheduler, ...) declares its knobs as a pydantic model
derived from :class:`Params`, so a config names the component and the component's
own model validates what the config passes: an unknown key or a wrong type is an
error with a dotted path, never a ``TypeError`` deep inside a constructor.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


def _admits_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_admits_bool(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _admits_bool(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return any(isinstance(arg, bool) for arg in typing.get_args(annotation))
    # Not a scalar type pydantic would turn a bool into: let it judge.
    return annotation not in (int, float)


def _item_type(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        return args[0] if args else Any
    return None


def refuse_bool(annotation: Any, value: Any) -> Any:
    """Refuse ``true``/``false`` given for a number (pydantic reads them as 1/0).

    ``epochs: true`` is a mistake, never a request for one epoch; strict mode
    would also refuse it but refuses ``output.name: 2024`` too, so only this
    one coercion is turned off.
    """
    if isinstance(value, bool) and not _admits_bool(annotation):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    item = _item_type(annotation)
    listed = item is not None and isinstance(value, list) and not _admits_bool(item)
    if listed and any(isinstance(v, bool) for v in value):
        raise ValueError("expected numbers, got a boolean among them")
    return value


class StrictNumbers(BaseModel):
    """A model whose number fields refuse booleans (see :func:`refuse_bool`)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return value if field is None else refuse_bool(field.annotation, value)


class Params(StrictNumbers):
    """Parameters of one component; unknown keys are errors.

    Example:
        >>> from pydantic import Field
        >>> class FocalParams(Params):
        ...     gamma: float = Field(2.0, ge=0, description="Focusing exponent.")
        >>> FocalParams(gamma=1.0).gamma
        1.0
    """

    # NaN and infinity are never meaningful settings (an infinite learning rate
    # or clip norm is a typo), so they are refused everywhere.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )


class NoParams(Params):
    """For components without knobs: any key given to them is an error."""


class SchedulerParams(Params):
    """Base of every scheduler's params: the warmup knobs every scheduler accepts.

    The core applies warmup in front of any scheduler (see
    :mod:`qpcore.schedulers`), so a scheduler plugin only declares its own knobs.
    """

    warmup_epochs: int = Field(
        0, ge=0, description="Epochs of linear warmup before the scheduler takes over."
    )
    warmup_start_factor: float = Field(
        0.1, gt=0, le=1, description="Fraction of the base learning rate warmup starts from."
    )


class ExecutorParams(Params):
    """Base of every executor's params: how many workers to use."""

    workers: int = Field(
        0, ge=0, description="Worker processes (0: one per core, or the whole cluster)."
    )


class DatasetParams(Params):
    """Base of every dataset's params: how its rows split into train/val/test.

    Splits are group-aware and stratified by quality band
    (:mod:`qpcore.data.splits`), the same for every dataset plugin.
    """

    val_fraction: float = Field(0.15, ge=0, lt=1, description="Share of rows for validation.")
    test_fraction: float = Field(0.15, ge=0, lt=1, description="Share of rows for the test split.")
    split_seed: int = Field(0, ge=0, description="Seed of the train/val/test split.")

    @model_validator(mode="after")
    def _leave_rows_to_train(self) -> DatasetParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be less than 1")
        return self
