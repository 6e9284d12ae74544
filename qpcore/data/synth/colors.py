"""Colour palettes in the style of flat icons: a few saturated hues plus neutrals."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]

WHITE: RGB = (255, 255, 255)

#: Generic heraldic colours (red, blue, green, yellow, sky, orange, maroon, black,
#: white): flags draw from a small fixed set of strong colours rather than free hues.
FLAG_COLORS: tuple[RGB, ...] = (
    (206, 17, 38),
    (0, 56, 168),
    (0, 122, 61),
    (252, 209, 22),
    (100, 170, 225),
    (255, 130, 0),
    (128, 20, 50),
    (20, 20, 20),
    (255, 255, 255),
)


@dataclass(frozen=True)
class Palette:
    """The colours of one image; ``colors[0]`` is the dominant one."""

    colors: tuple[RGB, ...]
    light: RGB
    dark: RGB

    def pick(self, rng: np.random.Generator, avoid: RGB | None = None) -> RGB:
        """A palette colour, different from ``avoid`` when the palette allows it."""
        choices = [c for c in self.colors if c != avoid] or list(self.colors)
        return choices[int(rng.integers(len(choices)))]

    def contrast(self, color: RGB) -> RGB:
        """White on dark colours, the palette's dark on light ones: legible glyphs."""
        return WHITE if luminance(color) < 0.6 else self.dark


def hsl(h: float, s: float, lightness: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, float(np.clip(lightness, 0, 1)), float(np.clip(s, 0, 1)))
    return (round(r * 255), round(g * 255), round(b * 255))


def luminance(color: RGB) -> float:
    r, g, b = color
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def shade(color: RGB, amount: float) -> RGB:
    """Lighter towards white for ``amount > 0``, darker towards black for ``< 0``."""
    return mix(color, WHITE, amount) if amount >= 0 else mix(color, (0, 0, 0), -amount)


def make_palette(rng: np.random.Generator) -> Palette:
    """Harmonious hues the way designers pick them, so images are not rainbow noise."""
    scheme = rng.choice(
        ["analogous", "complementary", "triad", "free", "mono", "flag"],
        p=[0.25, 0.2, 0.12, 0.15, 0.16, 0.12],
    )
    count = int(rng.integers(2, 6))
    h0 = float(rng.random())
    grey = rng.random() < 0.12
    colors: list[RGB] = []
    if scheme == "flag":
        idx = rng.choice(len(FLAG_COLORS) - 1, size=min(count, 4), replace=False)
        colors = [FLAG_COLORS[int(i)] for i in idx]
    else:
        for i in range(count):
            if scheme == "analogous":
                h = h0 + rng.uniform(-0.09, 0.09) * i
            elif scheme == "complementary":
                h = h0 + 0.5 * (i % 2) + rng.uniform(-0.04, 0.04)
            elif scheme == "triad":
                h = h0 + i / 3 + rng.uniform(-0.03, 0.03)
            elif scheme == "mono":
                h = h0
            else:
                h = float(rng.random())
            s = rng.uniform(0.0, 0.15) if grey and i == 0 else rng.uniform(0.45, 0.95)
            lightness = rng.uniform(0.3, 0.75) if scheme == "mono" else rng.uniform(0.38, 0.65)
            colors.append(hsl(h, s, lightness))
    light = hsl(h0, rng.uniform(0.0, 0.5), rng.uniform(0.88, 0.97))
    dark = hsl(h0, rng.uniform(0.0, 0.3), rng.uniform(0.08, 0.28))
    return Palette(tuple(colors), light, dark)
