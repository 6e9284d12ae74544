"""The names of the per-epoch metrics a training run produces.

Schedulers, early stopping and checkpoint selection watch one of these by name; the
config check refuses any other name, so a typo fails at validation time instead of
after an hour of training.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, WithJsonSchema

SPLITS = ("train", "val")
MEASURES = ("loss", "mae", "mse", "pearson")

#: Every metric the trainer writes for each epoch, e.g. ``val_loss``.
EPOCH_METRICS: tuple[str, ...] = tuple(f"{s}_{m}" for s in SPLITS for m in MEASURES)

#: Metrics where larger is better; every other one is minimised.
MAXIMISED = frozenset(f"{s}_pearson" for s in SPLITS)


def metric_mode(name: str) -> Literal["min", "max"]:
    """Whether ``name`` improves by going down or up."""
    return "max" if name in MAXIMISED else "min"


def check_metric_name(name: str) -> str:
    """Return ``name`` if the trainer produces it, else raise a ``ValueError``."""
    if name not in EPOCH_METRICS:
        raise ValueError(
            f"unknown metric {name!r}; the trainer produces: {', '.join(EPOCH_METRICS)}"
        )
    return name


#: A field type for params that name an epoch metric: checked on validation and
#: offered as an enum in the JSON schema.
MetricName = Annotated[
    str,
    AfterValidator(check_metric_name),
    WithJsonSchema({"type": "string", "enum": list(EPOCH_METRICS)}),
]
