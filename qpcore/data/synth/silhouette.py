"""One-colour silhouettes: brand-logo marks and wordmarks on white or transparency.

A single colour looks like the easiest case for a tracer, yet real logo silhouettes keep
less SSIM than models expect: their outline is long and intricate, with holes, hairline
parts and letter counters, and they come at every scale and in wide wordmark shapes
where the stroke is only a few pixels thick. The mark is designed as a binary mask at
three times the canvas size and box-reduced into place, which gives coverage-exact
anti-aliasing at any final scale.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageOps

from qpcore.data.synth.colors import RGB, shade
from qpcore.data.synth.context import Ctx, random_shape
from qpcore.data.synth.marks import PARTS, SYMBOLS, choose, pick, satellite
from qpcore.data.synth.shapes import GLYPHS, Shape, stroke_polyline
from qpcore.data.synth.text import FONTS, fit_px, text_mask

_BASES = (
    "circle",
    "blob",
    "star",
    "polygon",
    "gear",
    "rounded-rect",
    "drop",
    "crescent",
    "cross",
    "arrow",
    "bolt",
    "ellipse",
)
_HOLES = ("circle", "star", "polygon", "rounded-rect", "ellipse", "crescent", "drop")
#: Heavy fonts first: logos are mostly set in bold faces.
_LOGO_FONTS = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneralBol.ttf",
    "cmb10.ttf",
)


class Design:
    """A square binary mask the mark is drawn on, in design pixels (``n`` x ``n``)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.img = Image.new("L", (n, n), 0)
        self.draw = ImageDraw.Draw(self.img)

    def shape(self, shape: Shape, ink: int = 255, width: float = 0.0) -> None:
        shape.draw(self.draw, 1.0, 0.0, 0.0, width=width, ink=ink)

    def polygon(self, pts: list[tuple[float, float]], ink: int = 255) -> None:
        self.draw.polygon(pts, fill=ink)

    def lines(self, lines: list[list[tuple[float, float]]], width: float, ink: int = 255) -> None:
        for line in lines:
            stroke_polyline(self.draw, 1.0, 0.0, 0.0, line, width, ink)

    def text(
        self, content: str, font: str, cx: float, cy: float, w: float, h: float
    ) -> Image.Image:
        return text_mask(self.n, content, font, fit_px(content, font, w, h), cx, cy)

    def union(self, mask: Image.Image) -> None:
        self.img = ImageChops.lighter(self.img, mask)
        self.draw = ImageDraw.Draw(self.img)

    def cut(self, mask: Image.Image) -> None:
        self.img = ImageChops.subtract(self.img, mask)
        self.draw = ImageDraw.Draw(self.img)

    def mirror(self) -> None:
        """Left-right symmetry, as most emblems have."""
        self.union(ImageOps.mirror(self.img))


def organic_outline(
    rng: np.random.Generator, cx: float, cy: float, r: float
) -> list[tuple[float, float]]:
    """A closed curve with many harmonics (a splash, leaf, animal or cloud outline)."""
    ts = np.linspace(0, 2 * math.pi, 360, endpoint=False)
    rad = np.ones_like(ts)
    budget = 0.75
    for order in rng.integers(2, 13, size=int(rng.integers(3, 8))):
        amp = min(budget, float(rng.uniform(0.03, 0.3)) / math.sqrt(order))
        budget -= amp
        rad += amp * np.cos(order * ts + float(rng.uniform(0, 2 * math.pi)))
    if rng.random() < 0.3:  # spikes: a burst or a splash
        k = int(rng.integers(5, 16))
        rad += float(rng.uniform(0.15, 0.5)) * np.abs(np.cos(k * ts / 2)) ** float(
            rng.uniform(4, 20)
        )
    aspect = float(rng.uniform(0.6, 1.0))
    xs, ys = cx + r * rad * np.cos(ts), cy + r * aspect * rad * np.sin(ts)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def _emblem(ctx: Ctx, design: Design) -> None:
    rng, plan = ctx.rng, ctx.plan
    n = design.n
    c, r = n / 2, n * 0.28
    base = random_shape(rng, pick(rng, _BASES), c, c, r)
    design.shape(base)
    ctx.features.add(base.feature)
    for _ in range(int(rng.integers(0, 5))):
        addon = satellite(rng, PARTS, c, c, r, (0.5, 1.1), (0.15, 0.5))
        design.shape(addon)
        ctx.features.add(addon.feature)
    if rng.random() < 0.4:
        design.mirror()
    if rng.random() < 0.6:
        for _ in range(int(rng.integers(1, 4))):
            hole = satellite(rng, _HOLES, c, c, r, (0, 0.45), (0.08, 0.3))
            design.shape(hole, ink=0)
        ctx.features.add("holes")
    if plan.thin or rng.random() < 0.35:
        _thin_parts(ctx, design, c, r)
    if plan.strokes:
        a0 = float(rng.uniform(0, 360))
        swoosh = Shape(
            "arc",
            c,
            c,
            r * float(rng.uniform(1.15, 1.4)),
            aspect=float(rng.uniform(0.4, 1.0)),
            a0=a0,
            a1=a0 + float(rng.uniform(90, 220)),
        )
        design.shape(swoosh, width=n * float(rng.uniform(0.015, 0.035)))
        ctx.features.add("stroke")


def _thin_parts(ctx: Ctx, design: Design, c: float, r: float) -> None:
    """Hairline parts: rays, an orbit ring or antennae, 0.4-1.2 % of the design wide."""
    rng = ctx.rng
    width = design.n * float(rng.uniform(0.004, 0.012))
    style = pick(rng, ("rays", "ring", "antennae"))
    if style == "rays":
        k = int(rng.integers(6, 20))
        a0 = float(rng.uniform(0, math.pi))
        lines = []
        for i in range(k):
            a = a0 + 2 * math.pi * i / k
            r0, r1 = r * 1.05, r * float(rng.uniform(1.2, 1.55))
            lines.append(
                [
                    (c + r0 * math.cos(a), c + r0 * math.sin(a)),
                    (c + r1 * math.cos(a), c + r1 * math.sin(a)),
                ]
            )
        design.lines(lines, width)
    elif style == "ring":
        ring = Shape(
            "ellipse", c, c, r * float(rng.uniform(1.1, 1.4)), aspect=float(rng.uniform(0.35, 1.0))
        )
        design.shape(ring, width=width)
    else:
        for side in (-1, 1):
            x = c + side * r * 0.4
            design.lines([[(x, c - r * 0.8), (x + side * r * 0.3, c - r * 1.4)]], width)
            design.shape(Shape("circle", x + side * r * 0.3, c - r * 1.4, width * 1.8))
    ctx.features.add("thin-lines")


def _organic(ctx: Ctx, design: Design) -> None:
    rng = ctx.rng
    n = design.n
    c = n / 2
    lobes = int(rng.integers(1, 4))
    for i in range(lobes):
        dx = 0.0 if i == 0 else float(rng.uniform(-0.15, 0.15)) * n
        dy = 0.0 if i == 0 else float(rng.uniform(-0.12, 0.12)) * n
        design.polygon(organic_outline(rng, c + dx, c + dy, n * float(rng.uniform(0.15, 0.27))))
    ctx.features.add("blob")
    if rng.random() < 0.35:
        design.mirror()
    if rng.random() < 0.4:
        hole = Shape(
            "circle",
            c + n * float(rng.uniform(-0.06, 0.06)),
            c - n * 0.05,
            n * float(rng.uniform(0.015, 0.05)),
        )
        design.shape(hole, ink=0)
        ctx.features.add("holes")
    if ctx.plan.thin or rng.random() < 0.25:
        _thin_parts(ctx, design, c, n * 0.25)


def _knockout(ctx: Ctx, design: Design, text: str | None) -> None:
    """A solid base with a sign or letters cut out of it: holes by construction."""
    rng = ctx.rng
    n = design.n
    c, r = n / 2, n * 0.32
    base = random_shape(
        rng, pick(rng, ("circle", "rounded-rect", "polygon", "drop", "star", "gear")), c, c, r
    )
    if base.kind == "star":
        base = Shape("star", c, c, r, n=int(rng.integers(12, 25)), k=float(rng.uniform(0.82, 0.9)))
    design.shape(base)
    ctx.features.update((base.feature, "holes"))
    if text is not None:
        design.cut(design.text(text, pick(rng, _LOGO_FONTS), c, c, r * 1.2, r * 0.9))
        ctx.features.add("text")
    elif rng.random() < 0.5:
        glyph = pick(rng, tuple(GLYPHS))
        lines = [[(c + x * r * 0.55, c + y * r * 0.55) for x, y in line] for line in GLYPHS[glyph]]
        design.lines(lines, r * float(rng.uniform(0.1, 0.2)), ink=0)
    else:
        sign = random_shape(rng, pick(rng, SYMBOLS), c, c, r * 0.5)
        design.shape(sign, ink=0)
    if ctx.plan.thin or rng.random() < 0.3:
        inset = Shape(
            base.kind, c, c, r * 0.86, aspect=base.aspect, n=base.n, k=base.k, rot=base.rot
        )
        design.shape(inset, ink=0, width=n * float(rng.uniform(0.005, 0.012)))
        ctx.features.add("thin-lines")


def _wordmark(ctx: Ctx, design: Design, text: str) -> None:
    """A name, maybe with a mark before it, a swoosh or rule under it and a tagline."""
    rng, plan = ctx.rng, ctx.plan
    n = design.n
    c = n / 2
    font = pick(rng, _LOGO_FONTS) if rng.random() < 0.7 else pick(rng, FONTS)
    text_h = n * float(rng.uniform(0.1, 0.22))
    left, width = n * 0.04, n * 0.92
    if rng.random() < 0.45:
        mr = text_h * float(rng.uniform(0.6, 0.9))
        mark = random_shape(rng, pick(rng, _BASES), left + mr, c, mr)
        design.shape(mark)
        ctx.features.add(mark.feature)
        if rng.random() < 0.5:
            design.shape(random_shape(rng, pick(rng, _HOLES), left + mr, c, mr * 0.4), ink=0)
            ctx.features.add("holes")
        left += 2.4 * mr
        width = n * 0.96 - left
    name = design.text(text, font, left + width / 2, c, width, text_h)
    inked = name.getbbox()
    if inked is not None and left > n * 0.04:
        # A short name fitted to the height leaves a gap; set it right after the mark.
        moved = Image.new("L", name.size, 0)
        moved.paste(name.crop(inked), (round(left), inked[1]))
        name = moved
    design.union(name)
    ctx.features.add("text")
    box = design.img.getbbox() or (0, 0, n, n)
    below = box[3] + n * 0.02
    if plan.strokes:
        swoosh = Shape(
            "arc",
            (box[0] + box[2]) / 2,
            below - n * 0.04,
            (box[2] - box[0]) * 0.5,
            aspect=0.12,
            a0=15,
            a1=165,
        )
        design.shape(swoosh, width=n * float(rng.uniform(0.01, 0.025)))
        ctx.features.add("stroke")
    elif plan.thin:
        design.lines([[(box[0], below), (box[2], below)]], n * float(rng.uniform(0.003, 0.008)))
        ctx.features.add("thin-lines")
    if plan.details:
        tag = ctx.random_text().upper()
        design.union(
            design.text(
                tag,
                pick(rng, FONTS),
                (box[0] + box[2]) / 2,
                below + n * 0.05,
                (box[2] - box[0]) * 0.8,
                n * 0.035,
            )
        )
        ctx.features.add("details")


def _ink(ctx: Ctx) -> RGB:
    """Logos in one colour are mostly black or the brand's colour, never white."""
    u = float(ctx.style_rng.random())
    if u < 0.4:
        return (20, 20, 22) if u < 0.25 else ctx.pal.dark
    color = ctx.pal.colors[0]
    return color if u < 0.85 else shade(color, -0.35)


def silhouette(ctx: Ctx) -> None:
    """A one-colour mark at a random scale and its own aspect ratio, nothing else."""
    rng, plan, size = ctx.rng, ctx.plan, ctx.size
    ctx.bare = ctx.complete = True
    design = Design(3 * size)
    if plan.text:
        kind = choose(rng, (("wordmark", 0.65), ("lettermark", 0.35)))
    else:
        kind = choose(rng, (("emblem", 0.45), ("organic", 0.3), ("knockout", 0.25)))
    if kind == "wordmark":
        _wordmark(ctx, design, ctx.random_text())
    elif kind == "lettermark":
        letters = ctx.random_text()[: int(rng.integers(1, 4))]
        if rng.random() < 0.5:
            _knockout(ctx, design, letters)
        else:
            n = design.n
            design.union(
                design.text(letters, pick(rng, _LOGO_FONTS), n / 2, n / 2, n * 0.7, n * 0.6)
            )
            ctx.features.add("text")
    elif kind == "emblem":
        _emblem(ctx, design)
    elif kind == "organic":
        _organic(ctx, design)
    else:
        _knockout(ctx, design, None)
    if plan.details and "details" not in ctx.features:
        n = design.n
        for _ in range(int(rng.integers(2, 6))):
            a = float(rng.uniform(0, 2 * math.pi))
            d = n * float(rng.uniform(0.36, 0.45))
            dot = Shape(
                pick(rng, ("circle", "star")),
                n / 2 + d * math.cos(a),
                n / 2 + d * math.sin(a),
                n * float(rng.uniform(0.008, 0.02)),
                n=5,
                k=0.45,
            )
            design.shape(dot)
        ctx.features.add("details")
    _place(ctx, design, stretch=kind in ("emblem", "organic", "knockout"))


def _place(ctx: Ctx, design: Design, stretch: bool) -> None:
    """Scale the mark to a random size keeping (about) its aspect ratio, and paint it."""
    rng, plan, size = ctx.rng, ctx.plan, ctx.size
    box = design.img.getbbox()
    if box is None:
        return
    crop = design.img.crop(box)
    aspect = crop.width / crop.height * (float(rng.uniform(0.8, 1.25)) if stretch else 1.0)
    if plan.scale == "small":
        half = float(rng.uniform(*ctx.knobs.small_scale))
    elif plan.scale == "full":
        half = float(rng.uniform(0.44, 0.49))
    else:
        half = math.exp(float(rng.uniform(math.log(0.2), math.log(0.49))))
    longest = 2 * half * size
    tw, th = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
    tw, th = max(1, round(tw)), max(1, round(th))
    resample = Image.Resampling.NEAREST if plan.aliased else Image.Resampling.BOX
    mark = crop.resize((tw, th), resample)
    room_x, room_y = (size - tw) / 2, (size - th) / 2
    jitter = 0.6 if plan.scale == "small" else 0.1
    x = round(room_x * (1 + float(rng.uniform(-jitter, jitter))))
    y = round(room_y * (1 + float(rng.uniform(-jitter, jitter))))
    full = Image.new("L", (size, size), 0)
    full.paste(mark, (x, y))
    # Translucent one-colour marks (watermarks) are a minority even among semi-transparent
    # designs; the draw happens either way so the stream does not shift.
    translucent = float(rng.uniform(0.45, 0.85))
    opacity = translucent if plan.semi and rng.random() < 0.4 else 1.0
    ctx.canvas.fill(full, 0, 0, _ink(ctx), opacity)
    if opacity < 1:
        ctx.features.add("semi-transparent")
