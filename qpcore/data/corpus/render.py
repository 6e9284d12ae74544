"""Turning packages into images: icons rendered like dev-icons, photo crops, and
degraded copies.

The rendering follows ``shared/data/dev-icons/README.md`` exactly (fit the canvas,
keep the aspect ratio, centre on transparency), so the corpus and the dev set
differ in what is drawn, not in how it was rasterised. Every random choice takes
its own stream keyed by the seed and the image, so one icon's colour or
degradation never depends on which other icons were picked.
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import resvg_py
from PIL import Image

from qpcore.data.jobs import stable_int
from qpcore.data.protocol import composite_white

SVG_NS = "http://www.w3.org/2000/svg"
#: A pixel counts as drawn when some channel is more than this far from white.
INK_LEVEL = 20
#: An icon with less drawn area than this (on white) is passed over.
MIN_INK = 0.01
#: Share of originals that get one degraded copy.
P_DEGRADED = 0.3
DEGRADATIONS = ("jpeg", "rescale", "noise")
PHOTO_ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9)


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A stream of its own for one decision about one image."""
    return np.random.default_rng([seed, stable_int(key)])


def draw_colour(rng: np.random.Generator) -> str:
    """An ink colour for a monochrome icon: as people use such icons, mostly black
    or near-black, sometimes a saturated brand-like colour."""
    if rng.random() < 0.65:
        level = int(rng.integers(0, 49))
        tint = rng.integers(-8, 9, size=3)
        rgb = np.clip(level + tint, 0, 255)
    else:
        r, g, b = colorsys.hsv_to_rgb(
            float(rng.random()), float(rng.uniform(0.55, 1.0)), float(rng.uniform(0.45, 0.95))
        )
        rgb = np.round(np.array([r, g, b]) * 255)
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def icon_svg(icon: dict[str, Any], set_width: float, set_height: float, colour: str) -> str:
    """A standalone SVG of one iconify icon, ``currentColor`` replaced by ``colour``."""
    left = float(icon.get("left", 0))
    top = float(icon.get("top", 0))
    width = float(icon.get("width", set_width))
    height = float(icon.get("height", set_height))
    body = str(icon["body"]).replace("currentColor", colour)
    box = " ".join(f"{v:g}" for v in (left, top, width, height))
    return (
        f'<svg xmlns="{SVG_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="{box}" width="{width:g}" height="{height:g}">{body}</svg>'
    )


def fit(width: float, height: float, size: int) -> tuple[int, int]:
    """The largest size within ``size`` x ``size`` with the aspect ratio kept."""
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def centred(image: Image.Image, size: int) -> Image.Image:
    """``image`` in the middle of a transparent ``size`` x ``size`` canvas."""
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(image.convert("RGBA"), ((size - image.width) // 2, (size - image.height) // 2))
    return canvas


def render_svg(svg: str, width: float, height: float, size: int) -> Image.Image:
    """resvg's rendering of ``svg`` fitted into a transparent square canvas.

    Raises:
        ValueError: resvg cannot parse or render the SVG.
    """
    w, h = fit(width, height, size)
    png = resvg_py.svg_to_bytes(svg_string=svg, width=w, height=h)
    with Image.open(io.BytesIO(bytes(png))) as rendered:
        rendered.load()
        return centred(rendered, size)


def ink(image: Image.Image) -> float:
    """Share of pixels visibly drawn on white (icons for dark backgrounds have ~0)."""
    pixels = composite_white(image).astype(np.int16)
    return float(((255 - pixels).max(axis=2) > INK_LEVEL).mean())


@dataclass(frozen=True)
class Crop:
    """A photo crop: the box in the photo, in pixels."""

    x: int
    y: int
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.width},{self.height}"


def draw_crop(rng: np.random.Generator, photo_w: int, photo_h: int, size: int) -> Crop:
    """A crop of a random aspect ratio, scale and position; its long side is at
    least ``size`` (when the photo allows) so fitting it only ever shrinks it."""
    aspect = float(PHOTO_ASPECTS[int(rng.integers(0, len(PHOTO_ASPECTS)))])
    max_w = min(photo_w, photo_h * aspect)
    long_max = max(max_w, max_w / aspect)
    long_min = min(float(size), long_max)
    long_side = float(rng.uniform(long_min, long_max))
    if aspect >= 1:
        w, h = long_side, long_side / aspect
    else:
        w, h = long_side * aspect, long_side
    w, h = min(photo_w, round(w)), min(photo_h, round(h))
    x = int(rng.integers(0, photo_w - w + 1))
    y = int(rng.integers(0, photo_h - h + 1))
    return Crop(x, y, w, h)


def crop_photo(photo: Image.Image, crop: Crop, size: int) -> Image.Image:
    """The crop fitted into the canvas with an area filter, centred on transparency."""
    box = (crop.x, crop.y, crop.x + crop.width, crop.y + crop.height)
    part = photo.convert("RGB").crop(box)
    fitted = part.resize(fit(crop.width, crop.height, size), Image.Resampling.BOX)
    return centred(fitted, size)


def draw_degradation(seed: int, name: str) -> tuple[str, float] | None:
    """Whether an original gets a degraded copy, and which (kind, parameter)."""
    rng = rng_for(seed, f"degrade:{name}")
    if rng.random() >= P_DEGRADED:
        return None
    kind = DEGRADATIONS[int(rng.integers(0, len(DEGRADATIONS)))]
    if kind == "jpeg":
        return kind, int(rng.integers(30, 86))
    if kind == "rescale":
        return kind, round(float(rng.uniform(2.0, 4.0)), 2)
    return kind, round(float(rng.uniform(3.0, 12.0)), 2)


def degrade(image: Image.Image, kind: str, param: float, seed: int, name: str) -> Image.Image:
    """The parent over white, then one degradation: what a re-saved, up-scaled or
    scanned copy of the same drawing looks like."""
    flat = Image.fromarray(composite_white(image))
    if kind == "jpeg":
        buffer = io.BytesIO()
        flat.save(buffer, format="JPEG", quality=int(param))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")
    if kind == "rescale":
        small = (max(1, round(flat.width / param)), max(1, round(flat.height / param)))
        down = flat.resize(small, Image.Resampling.BILINEAR)
        return down.resize(flat.size, Image.Resampling.BILINEAR)
    if kind == "noise":
        rng = rng_for(seed, f"noise:{name}")
        pixels = np.asarray(flat, dtype=np.float32)
        noisy = pixels + rng.normal(0.0, param, size=pixels.shape)
        return Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    raise ValueError(f"unknown degradation {kind!r}")
