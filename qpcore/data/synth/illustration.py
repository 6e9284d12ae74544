"""Outlined illustrations: cartoon and emoji-style drawings with thin dark contours.

Real emoji and stickers trace worse than flat icons of the same size: a 1-3 px dark
contour around every part is a thin structure vtracer must keep, and inner shading (an
offset darker crescent or a soft gradient) plus highlights add regions that differ from
their neighbour by a few levels only. The flat layouts never combine those, so models
trained on them over-rate such drawings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageChops

from qpcore.data.synth.canvas import Paint, radial_gradient
from qpcore.data.synth.colors import RGB, WHITE, hsl, luminance, mix, shade
from qpcore.data.synth.context import Ctx, random_shape
from qpcore.data.synth.marks import PARTS, choose, pick, satellite
from qpcore.data.synth.shapes import Shape

#: Fill colours of emoji faces and of fruit, which icon palettes rarely produce.
_FACE_COLORS: tuple[RGB, ...] = ((255, 204, 77), (255, 214, 90), (250, 190, 60), (255, 220, 120))
_SKIN: tuple[RGB, ...] = ((255, 220, 177), (229, 184, 143), (198, 134, 66), (141, 85, 36))
_FRUIT: tuple[RGB, ...] = (
    (220, 40, 50),
    (255, 140, 20),
    (250, 210, 50),
    (120, 60, 150),
    (120, 190, 60),
    (240, 90, 120),
)
_BODIES = (
    ("rounded-rect", 0.2),
    ("circle", 0.2),
    ("blob", 0.2),
    ("drop", 0.08),
    ("star", 0.08),
    ("polygon", 0.08),
    ("ellipse", 0.08),
    ("crescent", 0.04),
    ("document", 0.04),
)


@dataclass(frozen=True)
class Toon:
    """The drawing style shared by every part of one illustration."""

    ink: RGB
    width: float
    light: tuple[float, float]  # unit vector towards the light, in image coordinates
    shading: str  # "offset", "gradient", "both" or "flat"
    shadow_opacity: float  # 1: an opaque darker shade; below 1: a translucent dark overlay
    highlights: bool


def _full_mask(ctx: Ctx, shape: Shape) -> Image.Image:
    mask, left, top = ctx.canvas.mask(shape.bounds(), lambda d, s, ox, oy: shape.draw(d, s, ox, oy))
    full = Image.new("L", (ctx.size, ctx.size), 0)
    full.paste(mask, (left, top))
    return full


def _shifted(mask: Image.Image, dx: int, dy: int) -> Image.Image:
    """``mask`` moved by (dx, dy) without wrapping around (``ImageChops.offset`` wraps)."""
    out = Image.new("L", mask.size, 0)
    out.paste(mask, (dx, dy))
    return out


def part(
    ctx: Ctx,
    toon: Toon,
    shape: Shape,
    color: RGB,
    shaded: bool = True,
    highlight: bool | None = None,
) -> Image.Image:
    """Fill, shade, highlight and contour one part; returns its coverage mask.

    The contour comes last so that it covers the seam between the fill and its shading,
    as in hand-inked drawings.
    """
    srng = ctx.style_rng
    mask = _full_mask(ctx, shape)
    lx, ly = toon.light
    paint: Paint = color
    if shaded and toon.shading in ("gradient", "both"):
        stops = [(0.0, shade(color, 0.35)), (0.5, color), (1.0, shade(color, -0.25))]
        paint = radial_gradient(stops, 0.5 + 0.3 * lx, 0.5 + 0.3 * ly, 1.15)
        ctx.features.add("gradient-radial")
    ctx.canvas.fill(mask, 0, 0, paint)
    ctx.features.add(shape.feature)
    if shaded and toon.shading in ("offset", "both"):
        d = max(1.5, shape.r * float(srng.uniform(0.1, 0.22)))
        crescent = ImageChops.subtract(mask, _shifted(mask, round(lx * d), round(ly * d)))
        if toon.shadow_opacity >= 1:
            ctx.canvas.fill(crescent, 0, 0, shade(color, -float(srng.uniform(0.15, 0.3))))
        else:
            ctx.canvas.fill(crescent, 0, 0, toon.ink, toon.shadow_opacity)
            ctx.features.add("semi-transparent")
        ctx.features.add("shading")
    if highlight is None:
        highlight = toon.highlights and shaded
    if highlight:
        hr = shape.r * float(srng.uniform(0.12, 0.22))
        spot = Shape(
            "ellipse",
            shape.cx + lx * shape.r * 0.5,
            shape.cy + ly * shape.r * 0.5 * shape.aspect,
            hr,
            aspect=float(srng.uniform(0.5, 1.0)),
        )
        clipped = ImageChops.multiply(_full_mask(ctx, spot), mask)
        opacity = 1.0 if srng.random() < 0.6 else float(srng.uniform(0.5, 0.85))
        ctx.canvas.fill(clipped, 0, 0, WHITE if srng.random() < 0.8 else shade(color, 0.6), opacity)
        ctx.features.add("highlight")
        if opacity < 1:
            ctx.features.add("semi-transparent")
    ctx.shape(shape, toon.ink, width=toon.width, outline=False, contour=True)
    return mask


def _line(ctx: Ctx, toon: Toon, pts: list[tuple[float, float]], scale: float = 1.0) -> None:
    """An inked line (mouth, vein, brow): the contour's width, which is what keeps it thin."""
    ctx.strokes([pts], toon.width * scale, toon.ink)


def _eyes(ctx: Ctx, toon: Toon, cx: float, cy: float, R: float) -> None:
    rng = ctx.rng
    style = choose(rng, (("dots", 0.45), ("big", 0.35), ("closed", 0.2)))
    gap, er = R * float(rng.uniform(0.25, 0.38)), R * float(rng.uniform(0.07, 0.12))
    for side in (-1, 1):
        ex = cx + side * gap
        if style == "dots":
            ctx.shape(Shape("ellipse", ex, cy, er, aspect=1.35), toon.ink, outline=False)
            glint = Shape("circle", ex - er * 0.3, cy - er * 0.5, er * 0.35)
            ctx.shape(glint, WHITE, outline=False)
        elif style == "big":
            part(ctx, toon, Shape("ellipse", ex, cy, er * 1.6, aspect=1.25), WHITE, shaded=False)
            ctx.shape(
                Shape("circle", ex + er * 0.2, cy + er * 0.2, er * 0.8), toon.ink, outline=False
            )
            ctx.shape(Shape("circle", ex, cy - er * 0.15, er * 0.3), WHITE, outline=False)
        else:
            arc = Shape("arc", ex, cy + er, er * 1.4, a0=200, a1=340)
            ctx.shape(arc, toon.ink, width=toon.width * 1.2, outline=False)


def _mouth(ctx: Ctx, toon: Toon, cx: float, cy: float, R: float) -> None:
    rng = ctx.rng
    style = choose(rng, (("smile", 0.45), ("open", 0.3), ("flat", 0.1), ("o", 0.15)))
    if style == "smile":
        ctx.shape(
            Shape("arc", cx, cy, R * float(rng.uniform(0.3, 0.5)), a0=25, a1=155),
            toon.ink,
            width=toon.width * 1.3,
            outline=False,
        )
    elif style == "open":
        mouth = Shape("pie", cx, cy, R * float(rng.uniform(0.3, 0.45)), a0=0, a1=180)
        mask = part(ctx, toon, mouth, (120, 30, 40), shaded=False)
        tongue = Shape("ellipse", cx, cy + mouth.r * 0.75, mouth.r * 0.55, aspect=0.5)
        ctx.canvas.fill(ImageChops.multiply(_full_mask(ctx, tongue), mask), 0, 0, (235, 100, 110))
        ctx.shape(mouth, toon.ink, width=toon.width, outline=False, contour=True)
    elif style == "flat":
        _line(ctx, toon, [(cx - R * 0.25, cy + R * 0.1), (cx + R * 0.25, cy + R * 0.1)], 1.3)
    else:
        part(ctx, toon, Shape("ellipse", cx, cy + R * 0.1, R * 0.12, aspect=1.2), (120, 30, 40))


def face(ctx: Ctx, toon: Toon, cx: float, cy: float, R: float) -> Shape:
    """An emoji face: head, eyes, mouth, maybe cheeks and brows."""
    rng, pal, plan = ctx.rng, ctx.pal, ctx.plan
    u = rng.random()
    color = (
        _FACE_COLORS[int(rng.integers(len(_FACE_COLORS)))]
        if u < 0.6
        else _SKIN[int(rng.integers(len(_SKIN)))]
        if u < 0.8
        else pal.colors[0]
    )
    head = Shape("circle", cx, cy, R * 0.92)
    if rng.random() < 0.3:
        head = random_shape(rng, "blob", cx, cy, R * 1.05)
    part(ctx, toon, head, color)
    _eyes(ctx, toon, cx, cy - R * 0.15, R)
    _mouth(ctx, toon, cx, cy + R * 0.22, R)
    if plan.semi or rng.random() < 0.35:
        for side in (-1, 1):
            cheek = Shape("ellipse", cx + side * R * 0.55, cy + R * 0.2, R * 0.15, aspect=0.6)
            ctx.shape(cheek, (245, 110, 120), opacity=float(rng.uniform(0.35, 0.6)), outline=False)
    if rng.random() < 0.3:
        for side in (-1, 1):
            bx = cx + side * R * 0.32
            _line(
                ctx,
                toon,
                [(bx - R * 0.12, cy - R * 0.42), (bx + R * 0.12, cy - R * 0.48 + side * R * 0.04)],
            )
    return head


def creature(ctx: Ctx, toon: Toon, cx: float, cy: float, R: float) -> Shape:
    """An animal head: ears behind, head, a lighter snout, nose and eyes."""
    rng, pal = ctx.rng, ctx.pal
    color = pal.colors[0] if rng.random() < 0.6 else _SKIN[int(rng.integers(len(_SKIN)))]
    ears = pick(rng, ("round", "pointy"))
    for side in (-1, 1):
        ex, ey = cx + side * R * 0.58, cy - R * 0.6
        if ears == "round":
            ear = Shape("circle", ex, ey, R * 0.3)
            inner = Shape("circle", ex, ey, R * 0.17)
        else:
            rot = -math.pi / 2 + side * 0.35
            ear = Shape("polygon", ex, ey, R * 0.36, n=3, rot=rot + math.pi / 2)
            inner = Shape("polygon", ex, ey + R * 0.04, R * 0.2, n=3, rot=rot + math.pi / 2)
        part(ctx, toon, ear, color, highlight=False)
        part(ctx, toon, inner, shade(color, 0.45), shaded=False, highlight=False)
    head = Shape("circle", cx, cy, R * 0.8)
    part(ctx, toon, head, color)
    snout = Shape("ellipse", cx, cy + R * 0.28, R * 0.36, aspect=0.7)
    part(ctx, toon, snout, shade(color, 0.55), shaded=False, highlight=False)
    nose = Shape("ellipse", cx, cy + R * 0.16, R * 0.1, aspect=0.7)
    ctx.shape(nose, toon.ink, outline=False)
    _eyes(ctx, toon, cx, cy - R * 0.12, R * 0.8)
    return head


def fruit(ctx: Ctx, toon: Toon, cx: float, cy: float, R: float) -> Shape:
    """A fruit or vegetable: a shaded body, a stem and a leaf with a vein."""
    rng = ctx.rng
    color = _FRUIT[int(rng.integers(len(_FRUIT)))] if rng.random() < 0.7 else ctx.pal.colors[0]
    kind = pick(rng, ("circle", "blob", "ellipse", "drop"))
    body = random_shape(rng, kind, cx, cy + R * 0.1, R * 0.78)
    if kind == "drop":
        body = Shape("drop", cx, cy + R * 0.1, R * 0.8, rot=math.pi, aspect=1.0)
    top = cy + R * 0.1 - body.r * body.aspect
    stem = Shape(
        "rect", cx, top - R * 0.08, R * 0.05, aspect=3.5, rot=float(rng.uniform(-0.3, 0.3))
    )
    part(ctx, toon, stem, (110, 70, 40), shaded=False, highlight=False)
    part(ctx, toon, body, color)
    angle = float(rng.uniform(-0.9, -0.3)) * (1 if rng.random() < 0.5 else -1)
    lx, ly = cx + math.sin(angle) * R * 0.35, top - R * 0.12
    leaf = Shape("drop", lx, ly, R * 0.28, aspect=0.55, rot=angle * 2)
    part(ctx, toon, leaf, hsl(float(rng.uniform(0.22, 0.36)), 0.6, 0.42), highlight=False)
    tip = (lx + math.sin(angle * 2) * R * 0.18, ly - math.cos(angle * 2) * R * 0.18)
    _line(ctx, toon, [(lx - (tip[0] - lx) * 0.6, ly - (tip[1] - ly) * 0.6), tip], 0.8)
    return body


def thing(ctx: Ctx, toon: Toon, cx: float, cy: float, R: float) -> Shape:
    """A generic object: a body with a few inked parts on it (a cartoon emblem)."""
    rng, pal = ctx.rng, ctx.pal
    c0 = pal.colors[0]
    body = random_shape(rng, choose(rng, _BODIES), cx, cy, R * float(rng.uniform(0.75, 0.92)))
    part(ctx, toon, body, c0)
    for _ in range(int(rng.integers(1, 4))):
        piece = satellite(rng, PARTS, cx, cy, body.r, (0, 0.55), (0.15, 0.4))
        part(ctx, toon, piece, pal.pick(rng, avoid=c0) if rng.random() < 0.7 else WHITE)
    return body


TEMPLATES = (("face", 0.3), ("creature", 0.2), ("fruit", 0.2), ("thing", 0.3))
_DRAW = {"face": face, "creature": creature, "fruit": fruit, "thing": thing}


def outlined(ctx: Ctx) -> None:
    """A cartoon drawing: every part filled, shaded, highlighted and inked with a thin
    dark contour; maybe on a sticker backing, with sparkles or a lettered banner."""
    rng, srng, pal, plan = ctx.rng, ctx.style_rng, ctx.pal, ctx.plan
    cx, cy, R = ctx.cx, ctx.cy, ctx.R
    px = ctx.size / 256
    pick_ink = srng.random()
    ink = (
        shade(pal.dark, -0.5)
        if pick_ink < 0.5
        else (30, 30, 35)
        if pick_ink < 0.8
        else mix(shade(pal.colors[0], -0.7), (0, 0, 0), 0.5)
    )
    angle = math.radians(float(srng.uniform(200, 250)))
    toon = Toon(
        ink=ink,
        width=max(0.8, float(srng.uniform(1.5, 3.0)) * px),
        light=(math.cos(angle), math.sin(angle)),
        shading=choose(srng, (("offset", 0.45), ("gradient", 0.15), ("both", 0.1), ("flat", 0.3))),
        shadow_opacity=1.0 if srng.random() < 0.7 else float(srng.uniform(0.12, 0.3)),
        highlights=srng.random() < 0.65,
    )
    # Text strokes (``Ctx.text``) use the contour colour and width.
    ctx.outline_color, ctx.outline_width = ink, toon.width
    if plan.text:
        cy -= R * 0.15
        R *= 0.85
    if rng.random() < 0.2:
        # A sticker's die-cut backing; it must fit the canvas (a cut-off sticker is not one).
        room = min(cx, cy, ctx.size - cx, ctx.size - cy) / 1.04 - toon.width - 1
        br = min(R * 1.08, room)
        backing = Shape("blob", cx, cy, br, harmonics=((3, 0.04, float(rng.uniform(0, 6))),))
        part(ctx, toon, backing, WHITE if rng.random() < 0.7 else pal.light, shaded=False)
        R = min(R, br / 1.08)
    template = choose(rng, TEMPLATES)
    ctx.main_shape = _DRAW[template](ctx, toon, cx, cy, R)
    if plan.details:
        for _ in range(int(rng.integers(2, 5))):
            a, d = float(rng.uniform(0, 2 * math.pi)), R * float(rng.uniform(0.95, 1.15))
            sparkle = Shape(
                "star",
                cx + d * math.cos(a),
                cy + d * math.sin(a),
                max(3.0, R * float(rng.uniform(0.08, 0.14))),
                n=4,
                k=0.4,
            )
            part(ctx, toon, sparkle, (255, 215, 60) if rng.random() < 0.6 else WHITE, shaded=False)
        ctx.features.add("details")
    if plan.semi and "semi-transparent" not in ctx.features:
        gloss = Shape("ellipse", cx - R * 0.15, cy - R * 0.35, R * 0.45, aspect=0.4)
        clip = ImageChops.multiply(_full_mask(ctx, gloss), _full_mask(ctx, ctx.main_shape))
        ctx.canvas.fill(clip, 0, 0, WHITE, float(rng.uniform(0.25, 0.5)))
        ctx.features.add("semi-transparent")
    if plan.text:
        by = cy + R * 1.0
        banner = Shape("rounded-rect", cx, by, R * 0.95, aspect=0.26, k=0.5)
        color = pal.pick(rng, avoid=pal.colors[0])
        part(ctx, toon, banner, color, shaded=False, highlight=False)
        fg = WHITE if luminance(color) < 0.6 else ink
        ctx.text(ctx.random_text(), cx, by, R * 1.6, R * 0.34, fg, stroke=1 if fg == WHITE else 0)
