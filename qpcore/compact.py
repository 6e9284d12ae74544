"""Half-precision storage of embedded backbone weights in serving checkpoints.

A ResNet-50 stored whole is 100 MB in float32, over the seed's size target; in
float16 it is half that. Rounding weights can move predictions, so they are
halved only when a model with the rounded weights predicts within
:data:`TOLERANCE` of the float32 one on real inputs. The head (small, and what
predictions are most sensitive to) always stays float32; loading casts back.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from qpcore.model import QualityModel

#: The largest prediction change half-precision storage may cause.
TOLERANCE = 1e-3


def _halved(state: dict[str, Tensor], prefixes: list[str]) -> dict[str, Tensor]:
    return {
        k: v.half() if v.is_floating_point() and any(k.startswith(p) for p in prefixes) else v
        for k, v in state.items()
    }


def embedded_backbones(model: QualityModel, state: dict[str, Tensor]) -> list[str]:
    """State-key prefixes of the backbones whose weights ``state`` embeds
    (those found again by reference, and weightless ones, are not)."""
    return [
        f"backbones.{i}."
        for i, backbone in enumerate(model.backbones)
        if any(k.startswith(f"backbones.{i}.") for k in state) and backbone.state_dict()
    ]


def half_if_harmless(
    model: QualityModel, state: dict[str, Tensor], inputs: list[Tensor], params: Tensor | None
) -> tuple[dict[str, Tensor], float | None]:
    """``state`` with its embedded backbone weights in float16 when that keeps the
    predictions on ``inputs`` within :data:`TOLERANCE`; returns the state and the
    largest change measured (None when nothing was embedded)."""
    prefixes = embedded_backbones(model, state)
    if not prefixes:
        return state, None
    halved = _halved(state, prefixes)
    trial = copy.deepcopy(model).cpu().eval()  # one copy: the model itself is untouched
    with torch.no_grad():
        reference = trial(inputs, params)
        trial.load_state_dict(halved, strict=False)  # cast back to float32 on load
        change = float((trial(inputs, params) - reference).abs().max())
    return (halved if change <= TOLERANCE else state), change
