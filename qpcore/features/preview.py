"""The real conversion, run on a small copy of the image: a preview of the label.

The re-enactment in :mod:`.vectorizer` models vtracer's clustering, which is what
a setting changes; what it cannot see is the rest of the pipeline (path tracing,
spline fitting, resvg's anti-aliasing), which is what separates one clean flat
icon from the next. Running vtracer and resvg themselves on a copy whose longer
side is ``size`` pixels (area filter, so edges keep their anti-aliasing) sees all
of it, at about a quarter of the full conversion's cost at 128 px for a 256 px
image. Inside each real icon source of the corpus its SSIM follows the label
about as well as, or better than, the re-enactment's (docs/model.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from qpcore.data.protocol import DEFAULT_PARAMS, VtracerParams, render, vectorize
from qpcore.data.ssim import ssim
from qpcore.features.layout import PREVIEW_NAMES


def preview_features(
    pixels: np.ndarray, size: int = 128, params: VtracerParams = DEFAULT_PARAMS
) -> np.ndarray:
    """SSIM of the small copy after vtracer and resvg, and the SVG's size.

    Args:
        pixels: ``H x W x 3`` uint8 RGB, composited over white.
        size: Longer side of the copy (an image already that small is used as is).
        params: The vtracer setting to preview (default track: vtracer's defaults).
    """
    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        shape = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = cv2.resize(np.ascontiguousarray(pixels), shape, interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(pixels)
    try:
        svg = vectorize(small, params)
        rendered = render(svg, small.shape[1], small.shape[0])
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # vtracer panics arrive as pyo3's PanicException
        # Features must exist for every image; an image vtracer cannot convert
        # at this size reads as "nothing kept", which the head learns to weigh.
        return np.zeros(len(PREVIEW_NAMES), np.float32)
    area = small.shape[0] * small.shape[1]
    values = [
        ssim(small, rendered),
        math.log1p(len(svg.encode("utf-8")) / area),
        math.log1p(svg.count("<path")),
    ]
    return np.nan_to_num(np.asarray(values, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
