"""Anti-aliased masks, paints and correct alpha compositing on an RGBA canvas.

Everything is drawn as a coverage mask (supersampled, then box-reduced for smooth
edges like a real SVG renderer gives) and composited with Porter-Duff "over", limited
to the mask's bounding box so small elements cost little.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from qpcore.data.synth.colors import RGB

#: A fill: one colour, or a function giving an RGB image of a (width, height) box.
Paint = RGB | Callable[[int, int], Image.Image]

#: Draws into a mask: ``fn(draw, scale, ox, oy)`` maps canvas point p to (p - o) * scale.
Drawer = Callable[[ImageDraw.ImageDraw, float, float, float], None]


class Canvas:
    """A transparent RGBA layer of ``size`` x ``size`` pixels."""

    def __init__(self, size: int, supersample: int) -> None:
        self.size = size
        self.ss = supersample
        self.img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        self.dirty = False  # lets the final composition skip layers nothing was drawn on

    def mask(
        self, bounds: tuple[float, float, float, float], drawer: Drawer
    ) -> tuple[Image.Image, int, int]:
        """Coverage of ``drawer`` within ``bounds`` (x0, y0, x1, y1): (mask, left, top)."""
        x0 = max(0, int(np.floor(bounds[0])) - 1)
        y0 = max(0, int(np.floor(bounds[1])) - 1)
        x1 = min(self.size, int(np.ceil(bounds[2])) + 2)
        y1 = min(self.size, int(np.ceil(bounds[3])) + 2)
        if x1 <= x0 or y1 <= y0:
            return Image.new("L", (1, 1), 0), 0, 0
        big = Image.new("L", ((x1 - x0) * self.ss, (y1 - y0) * self.ss), 0)
        drawer(ImageDraw.Draw(big), float(self.ss), float(x0), float(y0))
        return (big.reduce(self.ss) if self.ss > 1 else big), x0, y0

    def fill(
        self, mask: Image.Image, left: int, top: int, paint: Paint, opacity: float = 1.0
    ) -> None:
        """Composite ``paint`` over the canvas where ``mask`` covers it."""
        box = mask.getbbox()
        if box is None or opacity <= 0:
            return
        m = mask.crop(box)
        if opacity < 1.0:
            m = m.point([round(v * opacity) for v in range(256)])
        if isinstance(paint, tuple):
            layer = Image.new("RGBA", m.size, (*paint, 255))
        else:
            layer = paint(*m.size).convert("RGBA")
        layer.putalpha(m)
        self.img.alpha_composite(layer, dest=(left + box[0], top + box[1]))
        self.dirty = True

    def paint_all(self, paint: Paint, opacity: float = 1.0) -> None:
        self.fill(Image.new("L", (self.size, self.size), 255), 0, 0, paint, opacity)

    def over(self, other: Canvas) -> None:
        """Composite another layer of the same size on top of this one."""
        self.img.alpha_composite(other.img)
        self.dirty = self.dirty or other.dirty

    def clip(self, mask: Image.Image) -> None:
        """Keep the canvas only where a full-size ``mask`` covers it."""
        self.img.putalpha(ImageChops.multiply(self.img.getchannel("A"), mask))


def shadow_layer(
    alpha: Image.Image, dx: int, dy: int, radius: float, opacity: float, color: RGB = (0, 0, 0)
) -> Image.Image:
    """A soft shadow of ``alpha``: blurred at quarter resolution, which is cheap and
    indistinguishable for radii of a few pixels."""
    size = alpha.size
    small = (max(1, size[0] // 4), max(1, size[1] // 4))
    blurred = alpha.resize(small, Image.Resampling.BOX)
    blurred = blurred.filter(ImageFilter.GaussianBlur(max(0.3, radius / 4)))
    blurred = blurred.resize(size, Image.Resampling.BILINEAR)
    moved = Image.new("L", size, 0)
    moved.paste(blurred, (dx, dy))
    layer = Image.new("RGBA", size, (*color, 255))
    layer.putalpha(moved.point([round(v * opacity) for v in range(256)]))
    return layer


def feather(canvas: Canvas, radius: float) -> None:
    """Soften every alpha edge of ``canvas`` by a Gaussian of ``radius`` pixels.

    Blurred premultiplied (Pillow's ``RGBa``): blurring colour and alpha apart would pull
    the black of transparent pixels into the edges as a dark fringe.
    """
    soft = canvas.img.convert("RGBa").filter(ImageFilter.GaussianBlur(radius))
    canvas.img = soft.convert("RGBA")


def _ramp(t: Image.Image, stops: list[tuple[float, RGB]]) -> Image.Image:
    """Map a 0-255 ``L`` image through colour stops (position in [0, 1], colour)."""
    xs = [p * 255 for p, _ in stops]
    x = np.arange(256)
    bands = [
        t.point(np.round(np.interp(x, xs, [c[i] for _, c in stops])).astype(int).tolist())
        for i in range(3)
    ]
    return Image.merge("RGB", bands)


def linear_gradient(
    stops: list[tuple[float, RGB]], angle: float
) -> Callable[[int, int], Image.Image]:
    """A linear gradient across the filled box at ``angle`` radians."""

    def paint(w: int, h: int) -> Image.Image:
        gw, gh = min(w, 32), min(h, 32)
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
        u = (xs / max(gw - 1, 1)) * np.cos(angle) + (ys / max(gh - 1, 1)) * np.sin(angle)
        u = (u - u.min()) / max(float(np.ptp(u)), 1e-6)
        t = Image.fromarray(np.round(u * 255).astype(np.uint8)).resize(
            (w, h), Image.Resampling.BILINEAR
        )
        return _ramp(t, stops)

    return paint


def radial_gradient(
    stops: list[tuple[float, RGB]], cx: float, cy: float, reach: float
) -> Callable[[int, int], Image.Image]:
    """A radial gradient centred at (cx, cy) in box fractions, reaching ``reach`` x the box."""

    def paint(w: int, h: int) -> Image.Image:
        gw, gh = min(w, 64), min(h, 64)
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
        d = np.hypot(xs / max(gw - 1, 1) - cx, ys / max(gh - 1, 1) - cy) / max(reach, 1e-3)
        t = Image.fromarray(np.round(np.clip(d, 0, 1) * 255).astype(np.uint8))
        return _ramp(t.resize((w, h), Image.Resampling.BILINEAR), stops)

    return paint
