"""The vocabulary layouts share: weighted picks, signs and small logo marks."""

from __future__ import annotations

import math

import numpy as np

from qpcore.data.synth.context import Ctx, random_shape
from qpcore.data.synth.shapes import GLYPHS, Shape

Choices = tuple[tuple[str, float], ...]

BADGE_BASES: Choices = (
    ("circle", 0.3),
    ("rounded-rect", 0.35),
    ("polygon", 0.1),
    ("rect", 0.05),
    ("star", 0.05),
    ("blob", 0.05),
    ("gear", 0.04),
    ("drop", 0.03),
    ("document", 0.03),
)
BODIES: Choices = (
    ("rounded-rect", 0.3),
    ("circle", 0.2),
    ("document", 0.12),
    ("blob", 0.1),
    ("rect", 0.08),
    ("polygon", 0.08),
    ("ellipse", 0.06),
    ("drop", 0.03),
    ("crescent", 0.03),
)
PARTS = (
    "circle",
    "rounded-rect",
    "star",
    "polygon",
    "cross",
    "ellipse",
    "arc",
    "pie",
    "ring",
    "rect",
    "gear",
    "arrow",
    "blob",
    "bolt",
)
SYMBOLS = (
    "star",
    "cross",
    "polygon",
    "circle",
    "crescent",
    "arrow",
    "bolt",
    "drop",
    "gear",
    "ring",
    "arc",
    "pie",
    "rounded-rect",
    "ellipse",
    "blob",
    "rect",
)
STROKE_GLYPHS = (*GLYPHS, "wave")


def choose(rng: np.random.Generator, pairs: Choices) -> str:
    weights = np.array([w for _, w in pairs])
    return pairs[int(rng.choice(len(pairs), p=weights / weights.sum()))][0]


def pick(rng: np.random.Generator, names: tuple[str, ...]) -> str:
    return names[int(rng.integers(len(names)))]


def symbol(ctx: Ctx, cx: float, cy: float, r: float, color: tuple[int, int, int]) -> None:
    """A centred sign: a filled shape, a stroked glyph, or a shape with a smaller one inside."""
    rng = ctx.rng
    if ctx.plan.strokes and "stroke" not in ctx.features:
        ctx.glyph_strokes(
            pick(rng, STROKE_GLYPHS),
            cx,
            cy,
            r * 0.9,
            max(1.5, r * float(rng.uniform(0.14, 0.24))),
            color,
        )
        return
    shape = random_shape(rng, pick(rng, SYMBOLS), cx, cy, r)
    ctx.shape(shape, ctx.paint(color), outline=False)
    if shape.kind in ("circle", "rounded-rect", "polygon") and rng.random() < 0.3:
        inner = random_shape(rng, pick(rng, SYMBOLS), cx, cy, r * 0.5)
        ctx.shape(inner, ctx.pal.pick(rng, avoid=color), outline=False)


def mark_at(
    ctx: Ctx, cx: float, cy: float, r: float, color: tuple[int, int, int], always_base: bool = False
) -> None:
    """A small logo mark: a sign alone or on a base shape."""
    rng = ctx.rng
    if rng.random() < 0.5 or always_base:
        ctx.shape(
            random_shape(rng, pick(rng, ("circle", "rounded-rect", "polygon")), cx, cy, r),
            ctx.paint(color, main=True),
        )
        symbol(ctx, cx, cy, r * 0.55, ctx.pal.contrast(color))
    else:
        symbol(ctx, cx, cy, r, color)


def satellite(
    rng: np.random.Generator,
    kinds: tuple[str, ...],
    cx: float,
    cy: float,
    scale: float,
    reach: tuple[float, float],
    size: tuple[float, float],
) -> Shape:
    """A random shape of ``kinds`` at a random angle around ``(cx, cy)``: a part on
    a body, an add-on or a hole. ``reach`` and ``size`` are fractions of ``scale``
    (distance from the centre, radius). Draws angle, distance, kind, radius."""
    angle, dist = float(rng.uniform(0, 2 * math.pi)), scale * float(rng.uniform(*reach))
    kind = pick(rng, kinds)
    x, y = cx + dist * math.cos(angle), cy + dist * math.sin(angle)
    return random_shape(rng, kind, x, y, scale * float(rng.uniform(*size)))
