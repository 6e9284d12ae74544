"""Read what a loss module returns.

A loss returns either a scalar tensor or a mapping ``{"loss": total, ...}`` whose
other entries are scalars for the logs. The trainer, the conformance check in
:mod:`qpcore.testing` and anything else that consumes a loss go through
:func:`split_loss_output`, so the contract is enforced in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

import torch
from torch import Tensor

#: The mapping key of the total that is back-propagated.
TOTAL_KEY = "loss"


def split_loss_output(out: Any) -> tuple[Tensor, dict[str, float]]:
    """Split a loss output into the tensor to back-propagate and the logged scalars.

    Tensor components are converted with a single ``tolist()``, i.e. one device
    synchronisation per call instead of one per component.

    Args:
        out: The value a loss module's ``forward`` returned.

    Returns:
        ``(total, components)``: ``total`` is the 0-d tensor to call
        ``backward()`` on (unchanged, still in the graph); ``components`` maps
        every other key to a float and is empty for a bare tensor output.

    Raises:
        TypeError: ``out`` is neither a tensor nor a mapping, a mapping lacks
            ``"loss"``, or a component is neither a tensor nor a real number.
        ValueError: The total or a component is not a scalar.

    Example:
        >>> total, parts = split_loss_output({"loss": torch.tensor(0.5), "mse": 0.25})
        >>> float(total), parts
        (0.5, {'mse': 0.25})
    """
    if isinstance(out, Tensor):
        return _check_total(out), {}
    if not isinstance(out, Mapping):
        raise TypeError(
            f"a loss must return a scalar tensor or a mapping with {TOTAL_KEY!r}, "
            f"got {type(out).__name__}"
        )
    if TOTAL_KEY not in out:
        raise TypeError(
            f"a loss returning a mapping must put its total under {TOTAL_KEY!r}; "
            f"got keys {sorted(map(str, out))}"
        )
    total = _check_total(out[TOTAL_KEY])
    # One stack, one transfer; MPS has no float64.
    dtype = torch.float32 if total.device.type == "mps" else torch.float64
    numbers: dict[str, float] = {}
    tensors: dict[str, Tensor] = {}
    for key, value in out.items():
        if key == TOTAL_KEY:
            continue
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise ValueError(
                    f"loss component {key!r} must be a scalar, got shape {list(value.shape)}"
                )
            tensors[str(key)] = value.detach().to(device=total.device, dtype=dtype)
        elif isinstance(value, Real) and not isinstance(value, bool):
            numbers[str(key)] = float(value)
        else:
            raise TypeError(
                f"loss component {key!r} must be a scalar tensor or a number, "
                f"got {type(value).__name__}"
            )
    if tensors:
        numbers.update(zip(tensors, torch.stack(list(tensors.values())).tolist(), strict=True))
    # Keep the loss's own key order: it is the column order of the logs.
    components = {str(key): numbers[str(key)] for key in out if key != TOTAL_KEY}
    return total, components


def _check_total(total: Any) -> Tensor:
    if not isinstance(total, Tensor):
        raise TypeError(f"the loss total must be a tensor, got {type(total).__name__}")
    if total.ndim != 0:
        raise ValueError(f"the loss total must be a 0-d tensor, got shape {list(total.shape)}")
    return total


__all__ = ["TOTAL_KEY", "split_loss_output"]
