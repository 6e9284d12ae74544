"""Procedural textures: the photographic and noisy content that vtracer loses SSIM on.

No photos are downloaded: "photographic" here means a multi-octave smooth random field
(1/f-like spectrum, as natural images have) mapped through a colour ramp and shaded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from qpcore.data.synth.colors import RGB, shade


def smooth_field(rng: np.random.Generator, w: int, h: int, beta: float) -> np.ndarray:
    """A [0, 1] float32 field whose octave amplitudes fall as cells ** -beta."""
    acc = np.zeros((h, w), np.float32)
    for cells in (3, 6, 12, 24, 48):
        if cells > max(w, h):
            break
        grid = rng.standard_normal((cells, cells), dtype=np.float32)
        up = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
        acc += np.asarray(up, dtype=np.float32) * cells**-beta
    lo, hi = float(acc.min()), float(acc.max())
    return (acc - lo) / max(hi - lo, 1e-6)


def field_paint(
    rng: np.random.Generator, colors: list[RGB], grain: float
) -> Callable[[int, int], Image.Image]:
    """Photo-like content: a colour ramp over one field, shaded by a second field."""
    beta = float(rng.uniform(0.4, 1.3))
    shading = float(rng.uniform(0.1, 0.45))

    def paint(w: int, h: int) -> Image.Image:
        f = smooth_field(rng, w, h, beta)
        light = smooth_field(rng, w, h, beta + 0.3)
        xs = np.linspace(0, 1, len(colors), dtype=np.float32)
        rgb = np.stack([np.interp(f, xs, [c[i] for c in colors]) for i in range(3)], axis=-1)
        rgb = rgb.astype(np.float32) * (1 - shading + 2 * shading * light[..., None])
        if grain > 0:
            rgb += rng.standard_normal((h, w, 1), dtype=np.float32) * grain
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))

    return paint


def noise_paint(
    rng: np.random.Generator, base: RGB, sigma: float, color_noise: bool
) -> Callable[[int, int], Image.Image]:
    """A flat colour with film-grain-like Gaussian noise (luma or per channel)."""

    def paint(w: int, h: int) -> Image.Image:
        noise = rng.standard_normal((h, w, 3 if color_noise else 1), dtype=np.float32) * sigma
        rgb = np.asarray(base, dtype=np.float32) + noise
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))

    return paint


def pattern_paint(
    rng: np.random.Generator, a: RGB, b: RGB, supersample: int
) -> Callable[[int, int], Image.Image]:
    """Regular two-colour patterns: stripes, checks, dots or a grid."""
    kind = str(rng.choice(["stripes", "checks", "dots", "grid"]))
    period = float(rng.uniform(8, 28))
    angle = float(rng.choice([0.0, np.pi / 4, np.pi / 2, -np.pi / 4])) if kind == "stripes" else 0.0
    duty = float(rng.uniform(0.3, 0.6))

    def paint(w: int, h: int) -> Image.Image:
        s = supersample
        mask = Image.new("L", (w * s, h * s), 0)
        d = ImageDraw.Draw(mask)
        p = period * s
        if kind == "stripes":
            diag = (w + h) * s
            ca, sa = np.cos(angle), np.sin(angle)
            for i in range(int(-diag / p) - 1, int(diag / p) + 2):
                ox, oy = w * s / 2 + ca * i * p, h * s / 2 + sa * i * p
                d.line(
                    [(ox - sa * diag, oy + ca * diag), (ox + sa * diag, oy - ca * diag)],
                    fill=255,
                    width=max(1, round(p * duty)),
                )
        elif kind == "checks":
            for j in range(int(h * s / p) + 1):
                for i in range(j % 2, int(w * s / p) + 1, 2):
                    d.rectangle((i * p, j * p, (i + 1) * p - 1, (j + 1) * p - 1), fill=255)
        elif kind == "dots":
            rad = p * duty * 0.5
            for j in range(int(h * s / p) + 1):
                for i in range(int(w * s / p) + 1):
                    x, y = (i + 0.5) * p, (j + 0.5) * p
                    d.ellipse((x - rad, y - rad, x + rad, y + rad), fill=255)
        else:
            lw = max(1, round(s * rng.uniform(1, 3)))
            for i in range(int(max(w, h) * s / p) + 2):
                d.line([(i * p, 0), (i * p, h * s)], fill=255, width=lw)
                d.line([(0, i * p), (w * s, i * p)], fill=255, width=lw)
        if s > 1:
            mask = mask.reduce(s)
        return Image.composite(Image.new("RGB", (w, h), b), Image.new("RGB", (w, h), a), mask)

    return paint


def ramp_colors(rng: np.random.Generator, colors: tuple[RGB, ...]) -> list[RGB]:
    """3-4 ramp stops for a field: palette colours with light and dark variants."""
    base = [colors[int(i)] for i in rng.integers(0, len(colors), size=int(rng.integers(2, 4)))]
    stops = [
        shade(base[0], -float(rng.uniform(0.2, 0.6))),
        *base,
        shade(base[-1], float(rng.uniform(0.2, 0.7))),
    ]
    return stops
