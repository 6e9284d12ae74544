"""The ground-truth label protocol ``vtracer-resvg-ssim/v1``, step by step.

Every label in the project comes from :func:`label_image`. Each step is its own
function so the labeller can time them and the tests can check them one by one;
the spec is ``shared/spec/label-protocol.md`` and this module follows it literally.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import resvg_py
import vtracer
from PIL import Image

from qpcore.data.ssim import ssim
from qpcore.errors import UnreadableImage

PROTOCOL = "vtracer-resvg-ssim/v1"

#: Images with more pixels than this are refused before decoding (a
#: decompression bomb would otherwise take the whole machine's memory).
MAX_PIXELS = 4096 * 4096

#: The smallest side the protocol can score: SSIM's Gaussian window is 11 px.
MIN_SIDE = 11

Track = Literal["default", "random"]


@dataclass(frozen=True)
class VtracerParams:
    """All eleven vtracer parameters; the defaults are the default track."""

    colormode: Literal["color", "binary"] = "color"
    hierarchical: Literal["stacked", "cutout"] = "stacked"
    mode: Literal["spline", "polygon", "none"] = "spline"
    filter_speckle: int = 4
    color_precision: int = 6
    layer_difference: int = 16
    corner_threshold: int = 60
    length_threshold: float = 4.0
    max_iterations: int = 10
    splice_threshold: int = 45
    path_precision: int = 8

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> VtracerParams:
        """Build from strings or numbers (e.g. a manifest row); missing keys default."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in values and values[f.name] not in (None, ""):
                raw = values[f.name]
                kwargs[f.name] = raw if f.type.startswith("Literal") else _number(f.type, raw)
        params = cls(**kwargs)
        params.validate()
        return params

    def validate(self) -> None:
        """Raise ``ValueError`` on a value vtracer would reject or misread."""
        choices = {
            "colormode": ("color", "binary"),
            "hierarchical": ("stacked", "cutout"),
            "mode": ("spline", "polygon", "none"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if not 1 <= self.color_precision <= 8:
            raise ValueError("color_precision must lie in [1, 8]")
        for name in (
            "filter_speckle",
            "layer_difference",
            "corner_threshold",
            "max_iterations",
            "splice_threshold",
            "path_precision",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not np.isfinite(self.length_threshold) or self.length_threshold < 0:
            raise ValueError("length_threshold must be a finite number >= 0")


def _number(type_name: str, raw: Any) -> int | float:
    if type_name == "int":
        value = float(raw)
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {raw!r}")
        return int(value)
    return float(raw)


DEFAULT_PARAMS = VtracerParams()

#: Random-track distribution: (low, high) inclusive ranges of the protocol.
RANDOM_RANGES: dict[str, tuple[float, float]] = {
    "filter_speckle": (0, 32),
    "color_precision": (1, 8),
    "layer_difference": (1, 64),
    "corner_threshold": (20, 120),
    "length_threshold": (3.5, 10.0),
    "splice_threshold": (20, 90),
    "path_precision": (2, 8),
}


def random_params(rng: np.random.Generator) -> VtracerParams:
    """One draw from the random track's distribution (the spec's table)."""
    colormode = "color" if rng.random() < 0.85 else "binary"
    mode = "spline" if rng.integers(0, 2) == 0 else "polygon"
    ints = {
        name: int(rng.integers(lo, hi + 1))
        for name, (lo, hi) in RANDOM_RANGES.items()
        if name != "length_threshold"
    }
    lo, hi = RANDOM_RANGES["length_threshold"]
    length = round(float(rng.uniform(lo, hi)), 2)
    return VtracerParams(colormode=colormode, mode=mode, length_threshold=length, **ints)


def draw_params(track: Track, rng: np.random.Generator, count: int) -> list[VtracerParams]:
    """``count`` parameter sets for one image: the default, or random draws."""
    if track == "default":
        return [DEFAULT_PARAMS] * count
    return [random_params(rng) for _ in range(count)]


# --- the four steps ------------------------------------------------------------


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float image scaled to 8 bits, never clipped.

    Pillow's own conversion clips such modes to 0-255, so a 16-bit gradient
    turns almost all white and gets a wrong label. 16-bit data is divided by
    257 (65535 -> 255); float data is read as 0-1 (or 0-255 when it goes above
    1). Values that fit none of these ranges are refused, not clipped.
    """
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise UnreadableImage(f"{image.mode} image holds values that are not finite")
    low, high = float(values.min()), float(values.max())
    if image.mode == "F" and low >= 0 and high <= 1:
        scale = 255.0
    elif image.mode.startswith("I;16") or (low >= 0 and high > 255 and high <= 65535):
        scale = 1 / 257
    elif low >= 0 and high <= 255:
        scale = 1.0
    else:
        raise UnreadableImage(
            f"{image.mode} image with values {low:g} to {high:g}: neither 8-bit, 16-bit nor "
            "0-1 data; convert it to 8 bits first"
        )
    return Image.fromarray(np.rint(values * scale).astype(np.uint8), "L")


def composite_white(image: Image.Image) -> np.ndarray:
    """RGBA over an opaque white background, as 8-bit RGB (steps 1 and 3).

    An opaque image is its own composite, so it skips the compositing (the
    same pixels, a millisecond less per label on the labeller's hot path).
    """
    image = to_8bit(image)
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode == "RGBA":
        pixels = np.asarray(image)
        if pixels[:, :, 3].min() == 255:
            return np.ascontiguousarray(pixels[:, :, :3])
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Step 1: the original as ``H x W x 3`` uint8.

    Raises:
        UnreadableImage: Empty, not an image, truncated, or over ``max_pixels``.
    """
    if Path(path).stat().st_size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise UnreadableImage(
                    f"image is {width}x{height}, over the limit of {max_pixels} pixels"
                )
            check_side(width, height)
            image.load()
            return composite_white(image)
    except UnreadableImage:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # Pillow raises ValueError for e.g. a text chunk that decompresses too large.
        raise UnreadableImage(f"not a readable image: {exc}") from exc


def check_side(width: int, height: int) -> None:
    """Refuse an image the protocol cannot score (the labeller and predictor agree)."""
    if min(width, height) < MIN_SIDE:
        raise UnreadableImage(
            f"image is {width}x{height}: too small, the label protocol needs at least "
            f"{MIN_SIDE} pixels on each side"
        )


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of the original; compression level 1 (lossless, just faster)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def vectorize(pixels: np.ndarray, params: VtracerParams) -> str:
    """Step 2: vtracer with all eleven params passed explicitly."""
    return vtracer.convert_raw_image_to_svg(
        encode_png(pixels), img_format="png", **params.as_dict()
    )


def render(svg: str, width: int, height: int) -> np.ndarray:
    """Step 3: resvg at the original size, composited over white."""
    png = resvg_py.svg_to_bytes(svg_string=svg, width=width, height=height)
    with Image.open(io.BytesIO(bytes(png))) as image:
        return composite_white(image)


@dataclass
class Label:
    """One label and where its time went (seconds per step)."""

    ssim: float
    params: VtracerParams
    timings: dict[str, float] = field(default_factory=dict)
    #: Size of vtracer's SVG in UTF-8 bytes, and its ``<path>`` elements: the
    #: cost side of a setting, what ``qp suggest`` trades against the SSIM.
    svg_bytes: int = 0
    svg_paths: int = 0


def label_pixels(pixels: np.ndarray, params: VtracerParams = DEFAULT_PARAMS) -> Label:
    """Steps 2-4 on an already loaded original."""
    t0 = time.perf_counter()
    svg = vectorize(pixels, params)
    t1 = time.perf_counter()
    rendered = render(svg, pixels.shape[1], pixels.shape[0])
    t2 = time.perf_counter()
    score = ssim(pixels, rendered)
    t3 = time.perf_counter()
    timings = {"vectorize": t1 - t0, "render": t2 - t1, "ssim": t3 - t2}
    return Label(score, params, timings, len(svg.encode()), svg.count("<path"))


def label_image(path: str | Path, params: VtracerParams = DEFAULT_PARAMS) -> float:
    """The label of one image file: the SSIM it keeps through vtracer and resvg."""
    return label_pixels(load_image(path), params).ssim


# --- params as a model input ---------------------------------------------------

#: One-hot encoded categorical params, in a fixed order.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "colormode": ("color", "binary"),
    "hierarchical": ("stacked", "cutout"),
    "mode": ("spline", "polygon", "none"),
}

#: Names of the entries of :func:`encode_params`' vector.
ENCODED_PARAM_NAMES: tuple[str, ...] = (
    *RANDOM_RANGES,
    *(f"{name}={value}" for name, values in CATEGORIES.items() for value in values),
)


def encode_params(params: VtracerParams) -> np.ndarray:
    """The params as the second input of a random-track model, as the spec says:
    numeric params scaled to [0, 1] by the random track's ranges, categorical ones
    one-hot. ``max_iterations`` is constant on both tracks, so it carries nothing."""
    numeric = [
        (float(getattr(params, name)) - lo) / (hi - lo) for name, (lo, hi) in RANDOM_RANGES.items()
    ]
    onehot = [
        1.0 if getattr(params, name) == value else 0.0
        for name, values in CATEGORIES.items()
        for value in values
    ]
    return np.asarray(numeric + onehot, dtype=np.float32)
