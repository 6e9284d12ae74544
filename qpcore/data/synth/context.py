"""What one image is made of (its plan) and the drawing helpers layouts share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property

import numpy as np
from PIL import ImageDraw

from qpcore.data.synth.canvas import Canvas, Paint, linear_gradient, radial_gradient
from qpcore.data.synth.colors import RGB, WHITE, Palette, shade
from qpcore.data.synth.knobs import SynthKnobs
from qpcore.data.synth.shapes import GLYPHS, Point, Shape, stroke_polyline, wave
from qpcore.data.synth.text import FONTS, fit_px, random_text, text_mask
from qpcore.data.synth.texture import field_paint, noise_paint, pattern_paint, ramp_colors

#: Slots of the decision vector; one per decision so that knobs stay independent.
_SLOTS = (
    "layout",
    "transparent",
    "text",
    "gradient",
    "texture",
    "texture_kind",
    "shadow",
    "outline",
    "semi",
    "strokes",
    "details",
    "thin",
    "scale",
    "blur",
    "rescale",
    "noise",
    "jpeg",
    "photo_kind",
    "photo_full",
    "soft_edges",
    "aliased",
    "glow",
)


class Stream(IntEnum):
    """Independent random streams per concern, so that e.g. turning text on or off does
    not reshuffle the colours or the post-processing of the same (seed, index)."""

    PLAN = 0
    PALETTE = 1
    GEOMETRY = 2
    STYLE = 3
    TEXT = 4
    TEXTURE = 5
    POST = 6
    BACKGROUND = 7
    PHOTO = 8
    EFFECTS = 9


def stream(seed: int, index: int, which: Stream) -> np.random.Generator:
    """The generator of one concern of one image; never global state, never ``hash()``."""
    return np.random.default_rng([seed, index, int(which)])


@dataclass(frozen=True)
class Plan:
    """Which ingredients one image asks for; layouts honour them as they see fit."""

    layout: str
    transparent: bool
    text: bool
    gradient: bool
    texture: str | None
    shadow: bool
    outline: bool
    semi: bool
    strokes: bool
    details: bool
    thin: bool
    scale: str
    blur: bool
    rescale: bool
    noise: bool
    jpeg: bool
    photo: str
    photo_full: bool
    soft_edges: bool
    aliased: bool
    glow: bool


def _weighted(pairs: tuple[tuple[str, float], ...], u: float) -> str:
    total = sum(w for _, w in pairs)
    acc = 0.0
    for name, weight in pairs:
        acc += weight / total
        if u < acc:
            return name
    return next(name for name, weight in reversed(pairs) if weight > 0)


def draw_plan(knobs: SynthKnobs, rng: np.random.Generator) -> Plan:
    """Every decision reads its own uniform, drawn whether or not it is used."""
    u = dict(zip(_SLOTS, rng.random(len(_SLOTS)).tolist(), strict=True))
    scale = (
        "small"
        if u["scale"] < knobs.p_small
        else "full"
        if u["scale"] > 1.0 - knobs.p_full_bleed
        else "normal"
    )
    return Plan(
        layout=_weighted(knobs.layouts, u["layout"]),
        transparent=u["transparent"] < knobs.p_transparent,
        text=u["text"] < knobs.p_text,
        gradient=u["gradient"] < knobs.p_gradient,
        texture=(
            _weighted(knobs.texture_kinds, u["texture_kind"])
            if u["texture"] < knobs.p_texture
            else None
        ),
        shadow=u["shadow"] < knobs.p_shadow,
        outline=u["outline"] < knobs.p_outline,
        semi=u["semi"] < knobs.p_semi_transparent,
        strokes=u["strokes"] < knobs.p_strokes,
        details=u["details"] < knobs.p_details,
        thin=u["thin"] < knobs.p_thin_lines,
        scale=scale,
        blur=u["blur"] < knobs.p_blur,
        rescale=u["rescale"] < knobs.p_rescale,
        noise=u["noise"] < knobs.p_noise,
        jpeg=u["jpeg"] < knobs.p_jpeg,
        photo=_weighted(knobs.photo_kinds, u["photo_kind"]),
        photo_full=u["photo_full"] < knobs.p_photo_full,
        soft_edges=u["soft_edges"] < knobs.p_soft_edges,
        aliased=u["aliased"] < knobs.p_aliased,
        glow=u["glow"] < knobs.p_glow,
    )


def random_shape(rng: np.random.Generator, kind: str, cx: float, cy: float, r: float) -> Shape:
    """A shape of ``kind`` with the proportions icons usually give it."""
    u = float(rng.random())
    if kind == "ellipse":
        return Shape(
            kind,
            cx,
            cy,
            r,
            aspect=float(rng.choice([rng.uniform(0.5, 0.85), rng.uniform(1.2, 1.6)])),
        )
    if kind == "rect":
        rot = 0.0 if u < 0.75 else float(rng.uniform(-math.pi / 4, math.pi / 4))
        return Shape(kind, cx, cy, r, aspect=float(rng.uniform(0.5, 1.1)), rot=rot)
    if kind == "rounded-rect":
        return Shape(
            kind, cx, cy, r, aspect=float(rng.uniform(0.6, 1.0)), k=float(rng.uniform(0.12, 0.6))
        )
    if kind == "polygon":
        n = int(rng.integers(3, 9))
        return Shape(kind, cx, cy, r, n=n, rot=0.0 if u < 0.6 else math.pi / n)
    if kind == "star":
        n = 5 if u < 0.5 else int(rng.integers(4, 9))
        return Shape(kind, cx, cy, r, n=n, k=float(rng.uniform(0.38, 0.6)))
    if kind in ("arc", "pie"):
        a0 = float(rng.uniform(0, 360))
        return Shape(
            kind,
            cx,
            cy,
            r,
            a0=a0,
            a1=a0 + float(rng.uniform(60, 300)),
            k=float(rng.uniform(0.2, 0.5)),
        )
    if kind == "ring":
        return Shape(kind, cx, cy, r, k=float(rng.uniform(0.2, 0.6)))
    if kind == "blob":
        terms = tuple(
            (int(o), float(rng.uniform(0.04, 0.12)), float(rng.uniform(0, 2 * math.pi)))
            for o in rng.integers(2, 6, size=int(rng.integers(2, 4)))
        )
        return Shape(kind, cx, cy, r * 0.85, harmonics=terms)
    if kind == "cross":
        return Shape(
            kind, cx, cy, r, k=float(rng.uniform(0.35, 0.6)), rot=0.0 if u < 0.7 else math.pi / 4
        )
    if kind == "arrow":
        return Shape(
            kind,
            cx,
            cy,
            r,
            k=float(rng.uniform(0.4, 0.6)),
            rot=float(rng.integers(0, 8)) * math.pi / 4,
        )
    if kind == "gear":
        return Shape(kind, cx, cy, r, n=int(rng.integers(6, 13)), k=float(rng.uniform(0.4, 0.7)))
    if kind == "crescent":
        return Shape(
            kind, cx, cy, r, k=float(rng.uniform(0.2, 0.6)), rot=float(rng.uniform(0, 2 * math.pi))
        )
    if kind == "document":
        return Shape(kind, cx, cy, r, k=float(rng.uniform(0.25, 0.45)))
    return Shape(kind, cx, cy, r)


@dataclass
class Ctx:
    """One image being drawn: its plan, palette, random streams and content layer."""

    size: int
    knobs: SynthKnobs
    plan: Plan
    pal: Palette
    seed: int
    index: int
    rng: np.random.Generator = field(init=False)
    canvas: Canvas = field(init=False)
    background: Canvas = field(init=False)
    features: set[str] = field(default_factory=set)
    cx: float = 0.0
    cy: float = 0.0
    R: float = 0.0
    main_shape: Shape | None = None
    outline_color: RGB = (0, 0, 0)
    outline_width: float = 0.0
    #: Set by layouts that honour the whole plan themselves, so ``finish`` adds nothing.
    complete: bool = False
    #: Set by layouts whose pixels must stay alone on white or transparency (one-colour
    #: silhouettes): no coloured backdrop, shadow or glow is added around them.
    bare: bool = False
    _gradients: int = 0
    _textured: bool = False

    def __post_init__(self) -> None:
        self.rng = stream(self.seed, self.index, Stream.GEOMETRY)
        ss = 1 if self.plan.aliased else self.knobs.supersample
        self.canvas = Canvas(self.size, ss)
        self.background = Canvas(self.size, ss)
        if self.plan.aliased:
            self.features.add("aliased")
        rng, size = self.rng, self.size
        if self.plan.scale == "small":
            self.R = size * float(rng.uniform(*self.knobs.small_scale))
            room = size / 2 - self.R
            self.cx = size / 2 + float(rng.uniform(-0.4, 0.4)) * room
            self.cy = size / 2 + float(rng.uniform(-0.4, 0.4)) * room
            self.features.add("small-scale")
        else:
            lo, hi = self.knobs.normal_scale
            self.R = size * float(rng.uniform(lo, hi))
            self.cx = size / 2 + float(rng.uniform(-0.02, 0.02)) * size
            self.cy = size / 2 + float(rng.uniform(-0.02, 0.02)) * size
        if self.plan.outline:
            pick = self.style_rng.random()
            self.outline_color = (
                self.pal.dark
                if pick < 0.75
                else WHITE
                if pick < 0.85
                else shade(self.pal.colors[0], -0.4)
            )
            self.outline_width = max(1.2, self.R * float(self.style_rng.uniform(0.025, 0.06)))

    # Streams most images never touch are made on first use (a generator costs ~25 us).

    @cached_property
    def style_rng(self) -> np.random.Generator:
        return stream(self.seed, self.index, Stream.STYLE)

    @cached_property
    def text_rng(self) -> np.random.Generator:
        return stream(self.seed, self.index, Stream.TEXT)

    @cached_property
    def texture_rng(self) -> np.random.Generator:
        return stream(self.seed, self.index, Stream.TEXTURE)

    @cached_property
    def photo_rng(self) -> np.random.Generator:
        return stream(self.seed, self.index, Stream.PHOTO)

    @property
    def full(self) -> bool:
        return self.plan.scale == "full"

    # --- paints ------------------------------------------------------------------

    def paint(self, color: RGB, main: bool = False) -> Paint:
        """``color``, or a gradient/texture version of it when the plan asks for one."""
        plan, srng = self.plan, self.style_rng
        if main and plan.texture and not self._textured:
            self._textured = True
            return self.texture_paint(plan.texture, color)
        if plan.gradient and (self._gradients == 0 or srng.random() < 0.35):
            self._gradients += 1
            if srng.random() < 0.2:
                stops = [(0.0, color), (1.0, self.pal.pick(srng, avoid=color))]
            else:
                stops = [
                    (0.0, shade(color, float(srng.uniform(0.1, 0.45)))),
                    (1.0, shade(color, -float(srng.uniform(0.05, 0.35)))),
                ]
            if srng.random() < 0.15:
                stops.insert(1, (float(srng.uniform(0.3, 0.7)), color))
            if srng.random() < 0.55:
                self.features.add("gradient-linear")
                return linear_gradient(stops, float(srng.uniform(0, 2 * math.pi)))
            self.features.add("gradient-radial")
            return radial_gradient(
                stops,
                float(srng.uniform(0.2, 0.8)),
                float(srng.uniform(0.1, 0.6)),
                float(srng.uniform(0.6, 1.3)),
            )
        return color

    def texture_paint(self, kind: str, color: RGB) -> Paint:
        trng = self.texture_rng
        self.features.add(f"texture-{kind}")
        if kind == "field":
            grain = float(trng.uniform(0, 8)) if trng.random() < 0.5 else 0.0
            return field_paint(trng, ramp_colors(trng, self.pal.colors), grain)
        if kind == "noise":
            return noise_paint(trng, color, float(trng.uniform(3, 22)), trng.random() < 0.4)
        other = self.pal.pick(trng, avoid=color) if trng.random() < 0.6 else shade(color, 0.35)
        return pattern_paint(trng, color, other, self.knobs.supersample)

    # --- drawing -------------------------------------------------------------------

    def shape(
        self,
        shape: Shape,
        paint: Paint,
        opacity: float = 1.0,
        outline: bool = True,
        width: float = 0.0,
        on: Canvas | None = None,
        contour: bool = False,
    ) -> None:
        """Fill (or, with ``width``, stroke) a shape; add the plan's contour if any.

        ``contour`` marks a stroke that outlines a drawn area (reported as ``outline``)
        rather than a line of its own (``stroke`` or ``thin-lines``).
        """
        canvas = on or self.canvas
        mask, left, top = canvas.mask(
            shape.bounds(width + self.outline_width),
            lambda d, s, ox, oy: shape.draw(d, s, ox, oy, width=width),
        )
        canvas.fill(mask, left, top, paint, opacity)
        self.features.add(shape.feature)
        if width > 0:
            self.features.add("outline" if contour else "stroke" if width > 2.5 else "thin-lines")
        if opacity < 1.0:
            self.features.add("semi-transparent")
        if outline and width == 0 and self.outline_width > 0:
            ow = self.outline_width
            mask, left, top = canvas.mask(
                shape.bounds(ow), lambda d, s, ox, oy: shape.draw(d, s, ox, oy, width=ow)
            )
            canvas.fill(mask, left, top, self.outline_color)
            self.features.add("outline")

    def polygon(self, pts: list[Point], paint: Paint, on: Canvas | None = None) -> None:
        canvas = on or self.canvas
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]

        def drawer(d: ImageDraw.ImageDraw, s: float, ox: float, oy: float) -> None:
            d.polygon([((x - ox) * s, (y - oy) * s) for x, y in pts], fill=255)

        mask, left, top = canvas.mask((min(xs), min(ys), max(xs), max(ys)), drawer)
        canvas.fill(mask, left, top, paint)
        self.features.add("polygon")

    def strokes(
        self, lines: list[list[Point]], width: float, color: RGB, opacity: float = 1.0
    ) -> None:
        """Stroked polylines, e.g. a line-icon glyph."""
        xs = [p[0] for line in lines for p in line]
        ys = [p[1] for line in lines for p in line]
        pad = width + 2

        def drawer(d: ImageDraw.ImageDraw, s: float, ox: float, oy: float) -> None:
            for line in lines:
                stroke_polyline(d, s, ox, oy, line, width)

        mask, left, top = self.canvas.mask(
            (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad), drawer
        )
        self.canvas.fill(mask, left, top, color, opacity)
        self.features.add("stroke" if width > 2.5 else "thin-lines")

    def glyph_strokes(
        self, name: str, cx: float, cy: float, r: float, width: float, color: RGB
    ) -> None:
        lines = (
            GLYPHS[name]
            if name != "wave"
            else (wave(float(self.rng.uniform(0, 6.3)), float(self.rng.uniform(1, 2.5))),)
        )
        self.strokes([[(cx + x * r, cy + y * r) for x, y in line] for line in lines], width, color)

    def text(
        self,
        content: str,
        cx: float,
        cy: float,
        w: float,
        h: float,
        paint: Paint,
        font: str | None = None,
        stroke: int = 0,
        on: Canvas | None = None,
    ) -> None:
        """Text fitted into a w x h box centred at (cx, cy)."""
        canvas = on or self.canvas
        font = font or str(self.text_rng.choice(FONTS))
        px = fit_px(content, font, w, h)
        mask = text_mask(self.size, content, font, px, cx, cy)
        if stroke and self.outline_width > 0:
            band = text_mask(self.size, content, font, px, cx, cy, stroke=stroke)
            canvas.fill(band, 0, 0, self.outline_color)
        canvas.fill(mask, 0, 0, paint)
        self.features.add("text")
        if px <= 14:
            self.features.add("details")

    def random_text(self) -> str:
        return random_text(self.text_rng)
