"""Python values as strict JSON (which has no NaN or infinity).

Two places need two spellings of a non-finite number: run files (metrics,
results) write ``null``, the "undefined" their readers expect, while monitor
logs write the text ``"nan"`` / ``"inf"`` so a diverging loss stays visible.
One function serves both, so the two never drift apart.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any, Literal

NonFinite = Literal["null", "text"]


def json_safe(value: Any, nonfinite: NonFinite = "null") -> Any:
    """``value`` as standard JSON takes it: NaN/inf as ``None`` (or as their
    text with ``nonfinite="text"``), tuples as lists, other objects (paths...)
    as their string."""
    if type(value) is float:  # the common case first: metrics are floats
        if math.isfinite(value):
            return value
        return None if nonfinite == "null" else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, nonfinite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, nonfinite) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, numbers.Integral):  # numpy integers
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats
        return json_safe(float(value), nonfinite)
    return str(value)


def dumps(value: Any, nonfinite: NonFinite = "null", indent: int | None = None) -> str:
    """``json.dumps`` of :func:`json_safe`'s value; never writes NaN."""
    return json.dumps(json_safe(value, nonfinite), indent=indent, allow_nan=False)
