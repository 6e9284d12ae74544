"""``qp suggest``: the vtracer setting that meets a quality bar at the least cost.

A random-track model with a size head (``model.targets: [ssim, svg_bytes]``)
scores many candidate settings of one image for the price of one feature pass:
the candidates are draws from the random track (the settings the model learnt
from, where its predictions hold) plus vtracer's defaults. ``smallest`` keeps
the smallest predicted SVG whose predicted SSIM clears the bar by a margin (the
model's validation MAE unless given), ``best`` the highest predicted SSIM.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from qpcore.data.protocol import (
    DEFAULT_PARAMS,
    VtracerParams,
    encode_params,
    label_pixels,
    random_params,
)
from qpcore.errors import QPError
from qpcore.predictor import ImageLike, Predictor, to_pixels

Objective = Literal["smallest", "best"]


@dataclass
class Suggestion:
    """The setting chosen for one image, with what the model expects of it.

    ``cleared`` is False when no candidate's predicted SSIM reached the bar plus
    the margin; the setting is then the one with the highest predicted SSIM.
    ``true_ssim`` and ``true_svg_bytes`` are filled by ``verify``.
    """

    image: str
    params: VtracerParams
    predicted_ssim: float
    predicted_svg_bytes: float
    cleared: bool
    candidates: int
    true_ssim: float | None = None
    true_svg_bytes: int | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "params": self.params.as_dict(),
            "predicted_ssim": round(self.predicted_ssim, 6),
            "predicted_svg_bytes": round(self.predicted_svg_bytes),
            "cleared": self.cleared,
            "candidates": self.candidates,
            "true_ssim": None if self.true_ssim is None else round(self.true_ssim, 6),
            "true_svg_bytes": self.true_svg_bytes,
        }


def candidate_settings(count: int, seed: int = 0) -> list[VtracerParams]:
    """vtracer's defaults, then ``count - 1`` distinct random-track draws."""
    if count < 1:
        raise QPError("--candidates must be at least 1")
    rng = np.random.default_rng(seed)
    found: dict[VtracerParams, None] = {DEFAULT_PARAMS: None}
    tries = 0
    while len(found) < count and tries < 20 * count:
        found.setdefault(random_params(rng), None)
        tries += 1
    return list(found)


@functools.lru_cache(maxsize=4)
def _encoded_candidates(count: int, seed: int) -> tuple[list[VtracerParams], np.ndarray]:
    """The candidates and their encoding, made once per process: encoding a
    thousand settings costs more than scoring them."""
    settings = candidate_settings(count, seed)
    encoded = np.stack([encode_params(s) for s in settings])
    encoded.flags.writeable = False
    return settings, encoded


def default_margin(predictor: Predictor) -> float:
    """The model's validation MAE at its best epoch: how far a prediction
    typically misses, so a bar cleared by that much usually holds."""
    value = predictor.meta.metrics.get("val_mae")
    return float(value) if value is not None else 0.0


def choose(
    ssim: np.ndarray, size: np.ndarray, min_ssim: float, objective: Objective, margin: float
) -> tuple[int, bool]:
    """Index of the chosen candidate and whether it clears ``min_ssim + margin``."""
    clears = ssim >= min_ssim + margin
    if objective == "best" or not clears.any():
        # Highest SSIM; among near-equal ones (1e-4) the smallest file.
        top = ssim.max()
        near = np.flatnonzero(ssim >= top - 1e-4)
        index = int(near[np.argmin(size[near])])
        return index, bool(clears[index])
    eligible = np.flatnonzero(clears)
    return int(eligible[np.argmin(size[eligible])]), True


def suggest(
    predictor: Predictor,
    images: Sequence[ImageLike],
    min_ssim: float = 0.95,
    objective: Objective = "smallest",
    candidates: int = 1000,
    margin: float | None = None,
    verify: bool = False,
    seed: int = 0,
) -> list[Suggestion]:
    """A :class:`Suggestion` per image (see the module docstring).

    Raises:
        QPError: The model does not take settings or does not predict sizes.
    """
    if not 0.0 <= min_ssim <= 1.0:
        raise QPError(f"--min-ssim must lie in [0, 1], got {min_ssim}")
    settings, encoded = _encoded_candidates(candidates, seed)
    margin = default_margin(predictor) if margin is None else margin
    out = []
    for image in images:
        pixels = to_pixels(image)
        ssim, size = predictor.score_encoded(pixels, encoded)
        index, cleared = choose(ssim, size, min_ssim, objective, margin)
        found = Suggestion(
            str(image) if not isinstance(image, np.ndarray) else "<array>",
            settings[index],
            float(ssim[index]),
            float(size[index]),
            cleared,
            len(settings),
        )
        if verify:
            label = label_pixels(pixels, found.params)
            found.true_ssim, found.true_svg_bytes = label.ssim, label.svg_bytes
        out.append(found)
    return out
