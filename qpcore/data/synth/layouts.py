"""Layouts: the few ways real icons and logos are composed, each honouring the plan."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from qpcore.data.synth.colors import WHITE, luminance, shade
from qpcore.data.synth.context import Ctx, random_shape
from qpcore.data.synth.flag import flag
from qpcore.data.synth.illustration import outlined
from qpcore.data.synth.marks import (
    BADGE_BASES,
    BODIES,
    PARTS,
    STROKE_GLYPHS,
    choose,
    mark_at,
    pick,
    satellite,
    symbol,
)
from qpcore.data.synth.photo import photo
from qpcore.data.synth.shapes import Shape
from qpcore.data.synth.silhouette import silhouette


def badge(ctx: Ctx) -> None:
    """A filled base shape (app icon, seal, button) with a contrasting sign or monogram."""
    rng, pal, plan = ctx.rng, ctx.pal, ctx.plan
    c0 = pal.colors[0]
    cx, cy, R = ctx.cx, ctx.cy, ctx.R
    base: Shape | None = None
    if ctx.full:
        ctx.background.paint_all(ctx.paint(c0, main=True))
        ctx.features.add("full-bleed")
        cx = cy = ctx.size / 2
        inner = ctx.size * float(rng.uniform(0.22, 0.36))
    else:
        kind = choose(rng, BADGE_BASES)
        base = random_shape(rng, kind, cx, cy, R)
        if kind == "star":
            base = Shape(
                "star", cx, cy, R, n=int(rng.integers(12, 25)), k=float(rng.uniform(0.82, 0.9))
            )
        if kind == "rounded-rect":
            base = replace(base, aspect=1.0 if rng.random() < 0.7 else base.aspect)
        ctx.shape(base, ctx.paint(c0, main=True))
        ctx.main_shape = base
        inner = R * float(rng.uniform(0.42, 0.62))
    fg = pal.contrast(c0) if rng.random() < 0.65 else pal.pick(rng, avoid=c0)
    if base is not None and (plan.thin or rng.random() < 0.2):
        width = float(rng.uniform(1.0, 2.0)) if plan.thin else R * float(rng.uniform(0.03, 0.06))
        ctx.shape(
            replace(base, r=base.r * float(rng.uniform(0.82, 0.9))), fg, width=width, outline=False
        )
    if plan.text:
        text = ctx.random_text()
        ctx.text(
            text[:3] if rng.random() < 0.6 else text,
            cx,
            cy,
            inner * 2,
            inner * 1.3,
            pal.contrast(c0),
            stroke=max(1, round(ctx.outline_width)),
        )
        if plan.strokes:
            a0 = float(rng.uniform(90, 200))
            arc = Shape("arc", cx, cy, inner * 1.25, a0=a0, a1=a0 + float(rng.uniform(120, 240)))
            ctx.shape(arc, fg, width=max(2.6, inner * 0.1), outline=False)
    else:
        symbol(ctx, cx, cy, inner, fg)
    if plan.semi:
        gloss = Shape("ellipse", cx, cy - 0.35 * R, 0.62 * R, aspect=0.45)
        ctx.shape(gloss, WHITE, opacity=float(rng.uniform(0.15, 0.35)), outline=False)
    if plan.details and base is not None and base.kind == "circle":
        n = int(rng.integers(8, 17))
        for i in range(n):
            a = 2 * math.pi * i / n
            dot = Shape(
                "star" if rng.random() < 0.5 else "circle",
                cx + 0.8 * R * math.cos(a),
                cy + 0.8 * R * math.sin(a),
                max(1.5, 0.05 * R),
                n=5,
                k=0.45,
            )
            ctx.shape(dot, fg, outline=False)
        ctx.features.add("details")


def emblem(ctx: Ctx) -> None:
    """A flat object: a body with a few parts on it (folder tab, lens, badge...)."""
    rng, pal, plan = ctx.rng, ctx.pal, ctx.plan
    c1 = pal.colors[0]
    cx, cy, R = ctx.cx, ctx.cy, ctx.R
    if ctx.full:
        ctx.background.paint_all(
            ctx.paint(pal.light if rng.random() < 0.6 else pal.pick(rng, avoid=c1))
        )
        ctx.features.add("full-bleed")
        R = ctx.size * float(rng.uniform(0.38, 0.5))
    body = random_shape(rng, choose(rng, BODIES), cx, cy, R * float(rng.uniform(0.72, 0.95)))
    if rng.random() < 0.25:
        step = body.r * float(rng.uniform(0.08, 0.15))
        for i in (2, 1):
            ctx.shape(replace(body, cx=cx + i * step, cy=cy - i * step), shade(c1, 0.25 * i))
    ctx.shape(body, ctx.paint(c1, main=True))
    ctx.main_shape = body
    for _ in range(int(rng.integers(1, 5))):
        part = satellite(rng, PARTS, cx, cy, body.r, (0, 0.9), (0.15, 0.55))
        color = pal.contrast(c1) if rng.random() < 0.25 else pal.pick(rng, avoid=c1)
        opacity = float(rng.uniform(0.45, 0.8)) if plan.semi and rng.random() < 0.6 else 1.0
        ctx.shape(part, ctx.paint(color), opacity=opacity)
    if rng.random() < 0.2:
        bx, by, br = cx + 0.62 * R, cy + 0.62 * R, 0.3 * R
        color = pal.pick(rng, avoid=c1)
        ctx.shape(Shape("circle", bx, by, br), color)
        ctx.glyph_strokes(
            pick(rng, ("plus", "check", "close")), bx, by, br * 0.6, br * 0.25, pal.contrast(color)
        )
    if plan.strokes:
        name = pick(rng, ("menu", "pulse", "wave", "code", "check", "chevron"))
        ctx.glyph_strokes(
            name, cx, cy - body.r * 0.15, body.r * 0.45, max(2.6, body.r * 0.08), pal.contrast(c1)
        )
    if plan.text:
        text = ctx.random_text()
        ctx.text(text[:4], cx, cy + body.r * 0.45, body.r * 1.2, body.r * 0.35, pal.contrast(c1))


def wordmark(ctx: Ctx) -> None:
    """A logo: a small mark next to or above a name, a name alone, or a name in a pill."""
    rng, pal, plan = ctx.rng, ctx.pal, ctx.plan
    cx, cy, R = ctx.cx, ctx.cy, ctx.R
    ink = pal.dark if rng.random() < 0.5 or luminance(pal.colors[0]) > 0.6 else pal.colors[0]
    mark = pal.colors[0]
    if not plan.text:
        mark_at(ctx, cx, cy, R * 0.8, mark, always_base=True)
        return
    text = ctx.random_text()
    arrangement = choose(rng, (("right", 0.35), ("below", 0.25), ("alone", 0.25), ("pill", 0.15)))
    text_y, text_h = cy, R * 0.5
    if arrangement == "right":
        mark_at(ctx, cx - 0.7 * R, cy, 0.28 * R, mark)
        ctx.text(text, cx + 0.3 * R, cy, 1.35 * R, 0.5 * R, ctx.paint(ink))
    elif arrangement == "below":
        mark_at(ctx, cx, cy - 0.35 * R, 0.5 * R, mark)
        text_y, text_h = cy + 0.6 * R, 0.3 * R
        ctx.text(text, cx, text_y, 1.9 * R, text_h, ctx.paint(ink))
    elif arrangement == "alone":
        ctx.text(
            text,
            cx,
            cy,
            1.95 * R,
            0.9 * R,
            ctx.paint(ink),
            stroke=max(1, round(ctx.outline_width)),
        )
        text_h = 0.9 * R
        if rng.random() < 0.4:
            swoosh = Shape("arc", cx, cy, R * 1.05, aspect=0.55, a0=20, a1=160, k=0.06)
            ctx.shape(swoosh, ctx.pal.pick(rng), width=max(1.0, 0.05 * R), outline=False)
    else:
        pill = Shape("rounded-rect", cx, cy, R, aspect=0.42, k=1.0)
        ctx.shape(pill, ctx.paint(mark, main=True))
        ctx.main_shape = pill
        ctx.text(text, cx, cy, 1.6 * R, 0.45 * R, pal.contrast(mark))
        text_h = 0.84 * R
    if plan.details:
        tag = ctx.random_text().upper()
        ctx.text(tag, cx, text_y + text_h / 2 + max(6.0, 0.09 * R), 1.2 * R, max(7.0, 0.1 * R), ink)


def lineart(ctx: Ctx) -> None:
    """A line icon: one stroke width, round caps, an optional frame and duotone fill."""
    rng, pal, plan = ctx.rng, ctx.pal, ctx.plan
    cx, cy, R = ctx.cx, ctx.cy, ctx.R
    color = pal.dark if rng.random() < 0.5 or luminance(pal.colors[0]) > 0.6 else pal.colors[0]
    width = (
        float(rng.uniform(1.0, 2.0)) if plan.thin else max(1.5, R * float(rng.uniform(0.06, 0.13)))
    )
    kind = choose(
        rng,
        (
            ("rounded-rect", 0.3),
            ("circle", 0.25),
            ("document", 0.1),
            ("polygon", 0.05),
            ("none", 0.3),
        ),
    )
    inner = R * 0.85
    if kind != "none":
        frame = random_shape(rng, kind, cx, cy, R * 0.92)
        if plan.semi:
            ctx.shape(frame, color, opacity=float(rng.uniform(0.15, 0.35)), outline=False)
        ctx.shape(frame, color, width=width, outline=False)
        ctx.main_shape = frame
        inner = R * 0.48
    if plan.text:
        ctx.text(ctx.random_text()[:2], cx, cy, inner * 1.8, inner * 1.2, color)
    elif rng.random() < 0.2:
        for i in range(3):
            rr = inner * (0.35 + 0.3 * i)
            ctx.shape(
                Shape("arc", cx, cy + inner * 0.5, rr, a0=225, a1=315),
                color,
                width=width,
                outline=False,
            )
    else:
        ctx.glyph_strokes(pick(rng, STROKE_GLYPHS), cx, cy, inner, width, color)
    if plan.details:
        for _ in range(int(rng.integers(2, 5))):
            a = float(rng.uniform(0, 2 * math.pi))
            ctx.shape(
                Shape("circle", cx + R * math.cos(a), cy + R * math.sin(a), max(1.2, width * 0.7)),
                color,
                outline=False,
            )
        ctx.features.add("details")


LAYOUT_FUNCS: dict[str, Callable[[Ctx], None]] = {
    "badge": badge,
    "emblem": emblem,
    "flag": flag,
    "wordmark": wordmark,
    "lineart": lineart,
    "photo": photo,
    "outlined": outlined,
    "silhouette": silhouette,
}


def finish(ctx: Ctx) -> None:
    """Honour the plan's remaining requests the layout had no natural place for."""
    if ctx.complete:
        return
    rng, pal, plan, feats = ctx.rng, ctx.pal, ctx.plan, ctx.features
    cx, cy, R = ctx.cx, ctx.cy, ctx.R
    if plan.strokes and "stroke" not in feats:
        y = min(cy + R * 0.95, ctx.size - 6.0)
        swoosh = Shape("arc", cx, y - R * 0.3, R * 0.8, aspect=0.35, a0=20, a1=160)
        ctx.shape(swoosh, pal.pick(rng), width=max(2.6, R * 0.05), outline=False)
    if plan.semi and "semi-transparent" not in feats:
        ctx.shape(
            Shape("circle", cx + R * 0.45, cy - R * 0.45, R * 0.4),
            pal.pick(rng),
            opacity=float(rng.uniform(0.35, 0.7)),
            outline=False,
        )
    if plan.details and "details" not in feats:
        for _ in range(int(rng.integers(2, 6))):
            a, d = float(rng.uniform(0, 2 * math.pi)), R * float(rng.uniform(0.9, 1.1))
            kind = "star" if rng.random() < 0.5 else "circle"
            ctx.shape(
                Shape(
                    kind,
                    cx + d * math.cos(a),
                    cy + d * math.sin(a),
                    float(rng.uniform(1.5, 4.0)),
                    n=4,
                    k=0.4,
                ),
                pal.pick(rng),
                outline=False,
            )
        feats.add("details")
    if plan.thin and "thin-lines" not in feats:
        main = ctx.main_shape
        if main is not None and main.kind not in ("arc", "ring"):
            inset = replace(main, r=main.r * float(rng.uniform(0.84, 0.92)))
            ctx.shape(
                inset,
                pal.contrast(pal.colors[0]),
                width=float(rng.uniform(1.0, 2.0)),
                outline=False,
            )
        else:
            y = min(cy + R * 1.02, ctx.size - 2.0)
            ctx.strokes(
                [[(cx - 0.8 * R, y), (cx + 0.8 * R, y)]], float(rng.uniform(1.0, 2.0)), pal.dark
            )
    if plan.text and "text" not in feats:
        ctx.text(ctx.random_text(), cx, cy, 1.2 * R, 0.4 * R, pal.contrast(pal.colors[0]))
