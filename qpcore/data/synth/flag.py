"""Flags: the flat, large-area designs that make vtracer's colour quantization show."""

from __future__ import annotations

import math
from dataclasses import replace

from PIL import Image

from qpcore.data.synth.canvas import Canvas
from qpcore.data.synth.colors import WHITE, luminance
from qpcore.data.synth.context import Ctx, random_shape
from qpcore.data.synth.marks import choose, pick
from qpcore.data.synth.shapes import Shape


def flag(ctx: Ctx) -> None:
    """Stripes, crosses, triangles and cantons with an optional emblem, clipped to a frame."""
    rng, pal, plan, size = ctx.rng, ctx.pal, ctx.plan, ctx.size
    ratio = float(rng.choice([0.75, 2 / 3, 0.5, 1.0], p=[0.5, 0.25, 0.1, 0.15]))
    frame = choose(rng, (("rect", 0.6), ("rounded-rect", 0.2), ("circle", 0.2)))
    cx, cy, R = ctx.cx, ctx.cy, ctx.R
    if ctx.full:
        cx = cy = size / 2
        W = H = float(size)
        frame = "rect"
        ctx.features.add("full-bleed")
    else:
        W = 2 * R
        H = W if frame == "circle" else W * ratio
    x0, y0, x1, y1 = cx - W / 2, cy - H / 2, cx + W / 2, cy + H / 2
    colors = [*pal.colors, WHITE]
    order = [colors[int(i)] for i in rng.permutation(len(colors))]
    layer = Canvas(size, ctx.knobs.supersample)
    design = choose(
        rng,
        (
            ("hstripes", 0.3),
            ("vstripes", 0.15),
            ("nordic", 0.1),
            ("triangle", 0.1),
            ("canton", 0.1),
            ("diagonal", 0.07),
            ("disc", 0.08),
            ("saltire", 0.05),
            ("plain", 0.05),
        ),
    )

    def band(
        top: float, bottom: float, color: tuple[int, int, int], left: float = x0, right: float = x1
    ) -> None:
        w, h = right - left, bottom - top
        ctx.shape(
            Shape("rect", (left + right) / 2, (top + bottom) / 2, w / 2, aspect=h / w),
            color,
            outline=False,
            on=layer,
        )

    band(y0, y1, order[0])
    emblem_at = (cx, cy)
    if design in ("hstripes", "canton", "triangle"):
        n = int(rng.integers(2, 6)) if design != "canton" else int(rng.integers(5, 14))
        for i in range(1, n):
            band(y0 + H * i / n, y1, order[i % (2 if design == "canton" else len(order))])
        if design == "triangle":
            ctx.polygon(
                [(x0, y0), (x0 + W * float(rng.uniform(0.3, 0.5)), cy), (x0, y1)],
                order[-1],
                on=layer,
            )
            emblem_at = (x0 + W * 0.14, cy)
        elif design == "canton":
            cw, ch = W * 0.42, H * 0.54
            band(y0, y0 + ch, order[2 % len(order)], x0, x0 + cw)
            emblem_at = (x0 + cw / 2, y0 + ch / 2)
    elif design == "vstripes":
        for i in range(1, 3):
            band(y0, y1, order[i % len(order)], x0 + W * i / 3, x1)
    elif design == "nordic":
        t, vx = H * float(rng.uniform(0.12, 0.22)), x0 + W * 0.36
        band(cy - t / 2, cy + t / 2, order[1])
        band(y0, y1, order[1], vx - t / 2, vx + t / 2)
        emblem_at = (-1.0, -1.0)
    elif design == "diagonal":
        d = float(rng.uniform(0.1, 0.25))
        ctx.polygon(
            [
                (x0, y1),
                (x0, y1 - H * d * 2),
                (x1 - W * d * 2, y0),
                (x1, y0),
                (x1, y0 + H * d * 2),
                (x0 + W * d * 2, y1),
            ],
            order[1],
            on=layer,
        )
    elif design == "saltire":
        diag, t = math.hypot(W, H), H * 0.16
        for sign in (1, -1):
            ctx.shape(
                Shape("rect", cx, cy, diag / 2, aspect=t / diag, rot=sign * math.atan2(H, W)),
                order[1],
                outline=False,
                on=layer,
            )
    elif design == "disc":
        emblem_at = (cx - W * (0.1 if rng.random() < 0.3 else 0.0), cy)
        ctx.shape(
            Shape("circle", *emblem_at, H * float(rng.uniform(0.2, 0.32))),
            order[1],
            outline=False,
            on=layer,
        )
        emblem_at = (-1.0, -1.0)
    if emblem_at[0] >= 0 and (rng.random() < 0.55 or design == "plain"):
        ex, ey = emblem_at
        er = H * float(rng.uniform(0.1, 0.22)) * (0.7 if design == "canton" else 1.0)
        kind = pick(rng, ("star", "star", "circle", "crescent", "gear", "sun"))
        color = (252, 209, 22) if rng.random() < 0.4 else WHITE
        if plan.strokes:
            ctx.glyph_strokes(
                pick(rng, ("check", "plus", "close", "wave", "chevron")),
                ex,
                ey,
                er,
                max(2.6, er * 0.3),
                color,
            )
            kind = "none"
        if kind == "none":
            pass
        elif kind == "sun":
            shape = Shape("star", ex, ey, er, n=int(rng.integers(10, 17)), k=0.65)
        else:
            shape = random_shape(rng, kind, ex, ey, er)
            shape = replace(shape, k=0.45) if kind == "star" else shape
        if kind != "none":
            ctx.shape(shape, color, outline=False, on=layer)
        if plan.details:
            n = int(rng.integers(5, 13))
            for i in range(n):
                a = 2 * math.pi * i / n
                ctx.shape(
                    Shape(
                        "star",
                        ex + 1.6 * er * math.cos(a),
                        ey + 1.6 * er * math.sin(a),
                        max(1.5, er * 0.22),
                        n=5,
                        k=0.42,
                    ),
                    color,
                    outline=False,
                    on=layer,
                )
            ctx.features.add("details")
    if plan.text:
        ctx.text(
            ctx.random_text().upper(),
            cx,
            y1 - H * 0.2,
            W * 0.6,
            H * 0.12,
            WHITE if luminance(order[0]) < 0.6 else ctx.pal.dark,
            on=layer,
        )
    clip_shape = Shape(frame, cx, cy, W / 2, aspect=H / W, k=0.25)
    mask, left, top = layer.mask(
        clip_shape.bounds(), lambda d, s, ox, oy: clip_shape.draw(d, s, ox, oy)
    )
    full = Image.new("L", (size, size), 0)
    full.paste(mask, (left, top))
    layer.clip(full)
    ctx.canvas.over(layer)
    if plan.outline:
        ctx.shape(
            clip_shape, ctx.outline_color, width=ctx.outline_width, outline=False, contour=True
        )
