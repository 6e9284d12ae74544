"""``generate``: one deterministic logo-like image from (seed, index)."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from qpcore.data.synth.canvas import feather, shadow_layer
from qpcore.data.synth.colors import make_palette, shade
from qpcore.data.synth.context import Ctx, Stream, draw_plan, stream
from qpcore.data.synth.knobs import SynthKnobs
from qpcore.data.synth.layouts import LAYOUT_FUNCS, finish
from qpcore.data.synth.post import degrade

#: Changes whenever the same (seed, index, size, knobs) would give other pixels, so that
#: caches of generated datasets can tell stale images from current ones.
GENERATOR_VERSION = "qpcore-synth/2"

#: Every name ``SynthImage.features`` can contain.
INGREDIENTS: tuple[str, ...] = (
    "circle",
    "ellipse",
    "rect",
    "rounded-rect",
    "polygon",
    "star",
    "arc",
    "ring",
    "blob",
    "cross",
    "arrow",
    "gear",
    "crescent",
    "stroke",
    "outline",
    "thin-lines",
    "details",
    "text",
    "gradient-linear",
    "gradient-radial",
    "texture-field",
    "texture-noise",
    "texture-pattern",
    "shadow",
    "transparent",
    "semi-transparent",
    "small-scale",
    "full-bleed",
    "blur",
    "rescale",
    "noise",
    "jpeg",
    "dead-leaves",
    "pink-noise",
    "turbulence",
    "scene",
    "shading",
    "highlight",
    "holes",
    "soft-edges",
    "aliased",
    "glow",
)

#: Features worth naming in the short ``source`` string.
_HEADLINE = (
    "dead-leaves",
    "pink-noise",
    "turbulence",
    "scene",
    "text",
    "gradient-linear",
    "gradient-radial",
    "texture-field",
    "texture-noise",
    "texture-pattern",
    "shadow",
    "transparent",
    "small-scale",
    "full-bleed",
    "soft-edges",
    "aliased",
    "glow",
    "rescale",
    "blur",
    "noise",
    "jpeg",
)


@dataclass(frozen=True)
class SynthImage:
    """A generated image and what went into it (for the manifest and for tests)."""

    image: Image.Image
    source: str
    features: tuple[str, ...]


def generate(seed: int, index: int, size: int = 256, knobs: SynthKnobs | None = None) -> SynthImage:
    """The ``index``-th image of generator ``seed``: pure in its arguments.

    Randomness comes only from numpy generators seeded with (seed, index, stream), never
    from global state or ``hash()``, so any process and any order give the same pixels.
    Shapes scale with ``size``; pixel-level noise does not, so sizes are not rescalings
    of each other.
    """
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be >= 0")
    if size < 16:
        raise ValueError("size must be >= 16")
    knobs = knobs or SynthKnobs()
    plan = draw_plan(knobs, stream(seed, index, Stream.PLAN))
    palette = make_palette(stream(seed, index, Stream.PALETTE))
    ctx = Ctx(size, knobs, plan, palette, seed, index)
    LAYOUT_FUNCS[plan.layout](ctx)
    finish(ctx)

    brng = stream(seed, index, Stream.BACKGROUND)
    u_bg, u_off = float(brng.random()), brng.uniform(0.005, 0.03, size=3).tolist()
    erng = stream(seed, index, Stream.EFFECTS)
    feather_px, glow_px, glow_opacity, u_glow = erng.uniform(
        (0.5, 0.01, 0.45, 0), (2.0, 0.04, 0.85, 1)
    )
    if plan.soft_edges and ctx.canvas.dirty:
        feather(ctx.canvas, float(feather_px) * size / 256)
        ctx.features.add("soft-edges")
    bare = ctx.bare
    if ctx.full and "full-bleed" not in ctx.features and not bare:
        # Layouts without a full-bleed variant of their own get a coloured backdrop.
        backdrop = palette.light if u_bg < 0.6 else shade(palette.colors[0], 0.7)
        ctx.background.paint_all(ctx.paint(backdrop))
        ctx.features.add("full-bleed")
    image: Image.Image | None = ctx.background.img if ctx.background.dirty else None
    opaque = not plan.transparent or (ctx.full and not bare)
    if opaque:
        color = (
            (255, 255, 255) if u_bg < 0.7 or bare else palette.light if u_bg < 0.9 else palette.dark
        )
        base = Image.new("RGBA", (size, size), (*color, 255))
        image = base if image is None else Image.alpha_composite(base, image)
    if plan.glow and not bare and ctx.canvas.dirty:
        # A halo in the content's own hue, lighter: semi-transparent over transparency.
        halo = shade(palette.colors[int(u_glow * len(palette.colors))], 0.3)
        layer = shadow_layer(
            ctx.canvas.img.getchannel("A"), 0, 0, float(glow_px) * size, float(glow_opacity), halo
        )
        image = layer if image is None else Image.alpha_composite(image, layer)
        ctx.features.add("glow")
    if plan.shadow and not bare:
        alpha = ctx.canvas.img.getchannel("A")
        dx, dy = round(u_off[0] * size * 0.7), round(u_off[1] * size)
        shadow = shadow_layer(alpha, dx, dy, u_off[2] * size, 0.35)
        image = shadow if image is None else Image.alpha_composite(image, shadow)
        ctx.features.add("shadow")
    image = ctx.canvas.img if image is None else Image.alpha_composite(image, ctx.canvas.img)

    features = ctx.features
    if plan.blur or plan.rescale or plan.noise or plan.jpeg:
        if not opaque:
            white = Image.new("RGBA", (size, size), (255, 255, 255, 255))
            image = Image.alpha_composite(white, image)
        post_rng = stream(seed, index, Stream.POST)
        image, applied = degrade(image.convert("RGB"), plan, knobs, post_rng)
        features.update(applied)
    elif not opaque and image.getchannel("A").getextrema()[0] < 255:
        features.add("transparent")
    else:
        image = image.convert("RGB")
    names = tuple(sorted(features))
    headline = [name for name in _HEADLINE if name in features]
    return SynthImage(image, "synth:" + "+".join([plan.layout, *headline]), names)
