"""Photograph-like images without photographs: the statistical models of natural images.

Real photos lose much more SSIM in vtracer than flat icons, and unevenly: on the default
track their labels spread over roughly 0.4-0.9, where icons sit near 0.97. No photos can be
shipped or downloaded,
so the layout draws what vision science uses as stand-ins, each with the two properties
that matter to a tracer: a roughly 1/f amplitude spectrum (detail at every scale) and
occlusion edges between regions.

- ``dead-leaves``: random discs and ellipses with power-law radii occluding each other
  (Matheron's model; its images are scale-invariant like natural ones),
- ``pink-noise``: colour fields with a 1/f**beta spectrum (clouds, foliage, water),
- ``turbulence``: fractal sums of absolute noise, warped into marble, wood, rock or fire,
- ``scene``: sky gradient, sun, clouds, hills with haze, water and a few objects.

Every one then goes through a camera: optical blur, tone curve, vignetting, signal-dependent
sensor noise and usually a JPEG encoder, at the strengths of real photos (not the heavier
degradations of ``post``, which can still follow).
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np
from PIL import Image, ImageDraw

from qpcore.data.synth.canvas import Paint
from qpcore.data.synth.colors import RGB, WHITE, shade
from qpcore.data.synth.context import Ctx, random_shape
from qpcore.data.synth.knobs import SynthKnobs
from qpcore.data.synth.marks import choose
from qpcore.data.synth.shapes import Shape

Array = np.ndarray
#: A model's RGB image (float, 0-255) and how much fine texture each pixel takes (0-1).
Model = tuple[Array, Array | float]

#: Hue/saturation/lightness ranges of the materials photos are mostly made of.
_MATERIALS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "foliage": ((0.18, 0.38), (0.25, 0.7), (0.12, 0.55)),
    "earth": ((0.04, 0.12), (0.2, 0.6), (0.12, 0.6)),
    "stone": ((0.0, 1.0), (0.0, 0.12), (0.2, 0.8)),
    "water": ((0.5, 0.62), (0.25, 0.7), (0.2, 0.65)),
    "sand": ((0.08, 0.15), (0.25, 0.6), (0.55, 0.85)),
    "flowers": ((0.0, 1.0), (0.55, 0.95), (0.35, 0.7)),
    "skin": ((0.03, 0.09), (0.3, 0.6), (0.35, 0.8)),
}


def _hsl(h: float, s: float, lightness: float) -> Array:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, min(max(lightness, 0.0), 1.0), min(max(s, 0.0), 1.0))
    return np.array([r, g, b], np.float32) * 255


def _hsl_array(h: Array, s: Array, lightness: Array) -> Array:
    """Vectorised HSL to RGB (0-255), the formula ``colorsys`` applies one colour at a time."""
    s, lightness = np.clip(s, 0, 1), np.clip(lightness, 0, 1)
    c = (1 - np.abs(2 * lightness - 1)) * s
    hp = (h % 1.0) * 6
    x = c * (1 - np.abs(hp % 2 - 1))
    zero = np.zeros_like(c)
    sector = np.minimum(hp.astype(int), 5)
    r = np.choose(sector, [c, x, zero, zero, x, c])
    g = np.choose(sector, [x, c, c, x, zero, zero])
    b = np.choose(sector, [zero, zero, x, c, c, x])
    m = lightness - c / 2
    return (np.stack([r, g, b], axis=-1) + m[..., None]).astype(np.float32) * 255


def natural_colors(
    rng: np.random.Generator, n: int, materials: int = 2, allowed: tuple[str, ...] = ()
) -> Array:
    """``n`` colours from one to ``materials`` materials: photos are muted and clustered,
    unlike an icon palette's free saturated hues."""
    names = allowed or tuple(_MATERIALS)
    chosen = [names[int(i)] for i in rng.integers(0, len(names), size=max(1, materials))]
    ranges = np.array([_MATERIALS[name] for name in chosen], np.float32)  # (m, 3, 2)
    pick = ranges[rng.integers(0, len(chosen), size=n)]
    u = rng.random((n, 3)).astype(np.float32)
    hsl_ = pick[..., 0] + (pick[..., 1] - pick[..., 0]) * u
    return _hsl_array(hsl_[:, 0], hsl_[:, 1], hsl_[:, 2])


def spectral_noise(
    rng: np.random.Generator, h: int, w: int, beta: float, n: int = 1, down: int = 1
) -> Array:
    """``n`` zero-mean, unit-variance fields with amplitude spectrum 1/f**beta (beta ~ 1
    is the natural-image average), via one inverse real FFT.

    ``down`` > 1 synthesises at that fraction of the size and enlarges bicubically: for
    steep spectra (beta >= 1.5) the octaves that loses carry almost no energy, and the
    FFT is most of a photo's cost.
    """
    sh, sw = max(4, -(-h // down)), max(4, -(-w // down))
    fy = np.fft.fftfreq(sh).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(sw).astype(np.float32)[None, :]
    f = np.sqrt(fx * fx + fy * fy) * np.float32(down)
    f[0, 0] = np.inf
    amp = f ** np.float32(-beta)
    parts = rng.standard_normal((2, n, sh, sw // 2 + 1), dtype=np.float32)
    out = np.fft.irfft2((parts[0] + 1j * parts[1]) * amp, s=(sh, sw), axes=(-2, -1))
    out = out.astype(np.float32)
    if down > 1:
        out = np.stack(
            [np.asarray(Image.fromarray(c).resize((w, h), Image.Resampling.BICUBIC)) for c in out]
        )
    out -= out.mean(axis=(1, 2), keepdims=True)
    out /= np.maximum(out.std(axis=(1, 2), keepdims=True), 1e-6)
    return out


def value_octave(rng: np.random.Generator, h: int, w: int, cells: int) -> Array:
    """Smooth noise with ``cells`` features across the longer side (bicubic lattice)."""
    gh, gw = max(2, round(cells * h / max(w, h))) + 1, max(2, round(cells * w / max(w, h))) + 1
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC))


def _ramp(t: Array, stops: Array) -> Array:
    """Map [0, 1] values through colour stops spaced evenly: (h, w) -> (h, w, 3).

    Through a 1024-entry table (an index gather), three times faster than ``np.interp``.
    """
    grid = np.linspace(0, 1, 1024, dtype=np.float32)
    xs = np.linspace(0, 1, len(stops), dtype=np.float32)
    table = np.stack([np.interp(grid, xs, stops[:, c]) for c in range(3)], axis=-1)
    index = np.clip(t * 1023 + 0.5, 0, 1023).astype(np.intp)
    return table.astype(np.float32)[index]


def _sorted_by_lightness(colors: Array) -> Array:
    return colors[np.argsort(colors @ np.array([0.2126, 0.7152, 0.0722], np.float32))]


# --- the models -------------------------------------------------------------------------


def dead_leaves(rng: np.random.Generator, w: int, h: int, px: float) -> Model:
    """Occluding discs and ellipses, radii with density r**-3 between r_min and r_max.

    A pink-noise underlayer stands in for the leaves below the last ones drawn, so a
    bounded number of leaves (the cost is ~3 us each) never leaves a flat gap.
    """
    r_min = math.exp(float(rng.uniform(math.log(0.6), math.log(6.0)))) * px
    r_max = max(r_min * 2, float(rng.uniform(0.12, 0.45)) * max(w, h))
    coverage = float(rng.uniform(1.2, 2.5))
    ratio2 = (r_min / r_max) ** 2
    mean_area = math.pi * 2 * r_min**2 * math.log(r_max / r_min) / (1 - ratio2)
    n = int(min(1800, max(40, coverage * w * h / mean_area)))
    colors = natural_colors(rng, n, int(rng.integers(1, 4)))
    under = spectral_noise(rng, h, w, 1.3, down=2)[0]
    base = colors[: min(4, n)].mean(axis=0)
    img = np.clip(base + under[..., None] * 30, 0, 255).astype(np.uint8)
    canvas = Image.fromarray(img)
    draw = ImageDraw.Draw(canvas)
    radii = r_min * (1 - rng.random(n) * (1 - ratio2)) ** -0.5
    xs, ys = rng.uniform(-0.1 * w, 1.1 * w, n), rng.uniform(-0.1 * h, 1.1 * h, n)
    aspects = np.where(rng.random(n) < 0.35, rng.uniform(0.4, 0.9, n), 1.0)
    flip = rng.random(n) < 0.5
    boxes = rng.random(n) < float(rng.uniform(0.0, 0.3))
    fills = [tuple(c) for c in np.round(colors).astype(int).tolist()]
    for i in range(n):
        r, x, y = float(radii[i]), float(xs[i]), float(ys[i])
        rx, ry = (r, r * aspects[i]) if flip[i] else (r * aspects[i], r)
        if boxes[i]:
            draw.rectangle((x - rx, y - ry, x + rx, y + ry), fill=fills[i])
        else:
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=fills[i])
    rgb = np.asarray(canvas, np.float32)
    light = spectral_noise(rng, h, w, 1.8, down=4)[0]
    return rgb * (1 + float(rng.uniform(0.05, 0.25)) * light[..., None]), 1.0


def pink_noise(rng: np.random.Generator, w: int, h: int, px: float) -> Model:
    """A 1/f luminance field through a ramp of natural colours, plus smoother chroma.

    ``beta`` spans rough (gravel, foliage: low labels) to smooth (clouds, bokeh: high
    labels), which is the spread real photos show.
    """
    beta = float(rng.uniform(0.7, 1.8))
    fields = spectral_noise(rng, h, w, beta, 1)
    chroma = spectral_noise(rng, h, w, beta + 0.4, 2, down=2)
    contrast = float(rng.uniform(0.5, 1.6))
    t = 0.5 + 0.5 * np.tanh(fields[0] * contrast)
    stops = _sorted_by_lightness(natural_colors(rng, int(rng.integers(3, 6)), 2))
    rgb = _ramp(t, stops)
    amount = float(rng.uniform(4, 22))
    rgb[..., 0] += chroma[0] * amount
    rgb[..., 2] += chroma[1] * amount
    rgb[..., 1] -= (chroma[0] + chroma[1]) * amount * 0.5
    return rgb, 1.0


def turbulence(rng: np.random.Generator, w: int, h: int, px: float) -> Model:
    """Fractal turbulence (a sum of |noise| octaves), raw or warping stripes and rings."""
    style = choose(rng, (("marble", 0.3), ("wood", 0.2), ("rock", 0.3), ("fire", 0.2)))
    gain = float(rng.uniform(0.45, 0.7))
    base_cells = float(rng.uniform(2, 6))
    turb = np.zeros((h, w), np.float32)
    amp, cells = 1.0, base_cells
    while cells <= max(w, h) / 1.5:
        turb += amp * np.abs(value_octave(rng, h, w, round(cells)))
        amp *= gain
        cells *= 2
    turb /= max(float(turb.max()), 1e-6)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    scale = max(w, h)
    if style == "marble":
        angle, freq = float(rng.uniform(0, math.pi)), float(rng.uniform(2, 7))
        u = (xs * math.cos(angle) + ys * math.sin(angle)) / scale
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * u + float(rng.uniform(3, 9)) * turb)
        stops = np.array([[40, 40, 45], [150, 150, 150], [235, 232, 225], [250, 250, 248]])
        stops = stops * np.array(_hsl(float(rng.random()), 0.15, 0.5) / 128)
    elif style == "wood":
        cx, cy = float(rng.uniform(-0.5, 1.5)) * w, float(rng.uniform(-0.5, 1.5)) * h
        freq = float(rng.uniform(8, 25))
        r = np.hypot(xs - cx, (ys - cy) * float(rng.uniform(0.2, 1.0))) / scale
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * r + float(rng.uniform(1, 4)) * turb)
        stops = np.array([[70, 40, 20], [130, 80, 45], [185, 130, 80], [215, 170, 115]])
    elif style == "rock":
        t = turb
        stops = _sorted_by_lightness(natural_colors(rng, 4, 2))
    else:
        t = np.clip(turb * 1.3 - (ys / scale) * float(rng.uniform(0.0, 0.6)), 0, 1)
        stops = np.array([[10, 5, 5], [150, 20, 5], [240, 120, 10], [255, 230, 120]])
    return _ramp(np.clip(t, 0, 1), np.asarray(stops, np.float32)), 1.0


def _ridge(rng: np.random.Generator, w: int, base: float, height: float, rough: float) -> Array:
    """A hill line: 1-D fractal noise, the larger octaves much stronger (like mountains)."""
    y = np.zeros(w, np.float32)
    amp, cells = height, float(rng.uniform(1.5, 3.5))
    while cells < w / 2:
        knots = rng.standard_normal(int(cells) + 2).astype(np.float32)
        y += amp * np.interp(np.linspace(0, int(cells) + 1, w), np.arange(len(knots)), knots)
        amp *= rough
        cells *= 2.2
    return base - y


_GROUND = ("foliage", "earth", "stone", "sand")


def scene(rng: np.random.Generator, w: int, h: int, px: float) -> Model:
    """A landscape: sky, sun, clouds, hazy hills, maybe water, trees, houses and rocks.

    Each layer is computed only on the rows it can cover (a full-frame float pass costs
    ~0.3 ms, and a scene has dozens).
    """
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    horizon = h * float(rng.uniform(0.35, 0.68))
    # Skies are smooth: fine texture belongs to the ground.
    detail = np.clip((ys - horizon) / (0.05 * h + 1), 0.12, 1)[..., None]
    time_of_day = choose(rng, (("day", 0.55), ("sunset", 0.25), ("overcast", 0.15), ("dusk", 0.05)))
    top, low = {
        "day": ((40, 100, 190), (190, 220, 240)),
        "sunset": ((50, 60, 130), (250, 160, 80)),
        "overcast": ((140, 145, 155), (215, 215, 220)),
        "dusk": ((15, 20, 50), (90, 70, 110)),
    }[time_of_day]
    jitter = rng.uniform(-20, 20, size=(2, 3)).astype(np.float32)
    t = np.clip(ys / max(horizon, 1.0), 0, 1) ** float(rng.uniform(0.6, 1.6))
    sky_top = np.array(top, np.float32) + jitter[0]
    sky_low = np.array(low, np.float32) + jitter[1]
    rgb = np.broadcast_to(sky_top + (sky_low - sky_top) * t[..., None], (h, w, 3)).copy()
    sky_rows = max(1, min(h, math.ceil(horizon) + 1))
    sky = rgb[:sky_rows]
    sun_x, sun_y = float(rng.uniform(0.1, 0.9)) * w, horizon * float(rng.uniform(0.15, 0.95))
    sun_r = float(rng.uniform(0.025, 0.07)) * max(w, h)
    reach = float(rng.uniform(2.5, 6))
    if rng.random() < 0.5 and time_of_day != "overcast":
        d = np.hypot(xs - sun_x, ys[:sky_rows] - sun_y)
        glow = np.exp(-((d / (sun_r * reach)) ** 2))
        sun_color = np.array(
            (255, 250, 225) if time_of_day == "day" else (255, 210, 140), np.float32
        )
        sky += glow[..., None] * (sun_color - sky) * 0.6
        disc = np.clip(sun_r + 0.7 - d, 0, 1)
        sky += disc[..., None] * (sun_color - sky)
    if rng.random() < 0.6:
        cloud = spectral_noise(rng, sky_rows, w, float(rng.uniform(1.4, 2.0)), down=2)[0]
        cover = np.clip((cloud - float(rng.uniform(-0.2, 1.0))) * float(rng.uniform(0.6, 2)), 0, 1)
        cover *= np.clip((horizon - ys[:sky_rows]) / (0.15 * h + 1), 0, 1)
        grey = 235 - 60 * np.clip(cloud - 1.5, 0, 1)
        sky += cover[..., None] * (grey[..., None] - sky)
    layers = int(rng.integers(1, 5))
    ground_colors = natural_colors(rng, layers, 2, _GROUND)
    water = rng.random() < 0.25
    textures = spectral_noise(rng, h, w, float(rng.uniform(0.8, 1.5)), layers, down=2)
    for i in range(layers):
        depth = (i + 1) / layers  # 1 = nearest
        base = horizon + (h - horizon) * (0.25 * depth if water else 0.55 * depth - 0.15)
        height = h * float(rng.uniform(0.03, 0.16)) * (1.3 - depth * 0.6)
        ridge = _ridge(rng, w, base, height, 0.45)
        y0 = int(min(h - 1, max(0, math.floor(float(ridge.min())))))
        inside = np.clip(ys[y0:] - ridge[None, :] + 0.5, 0, 1)[..., None]
        color = ground_colors[i] + (sky_low - ground_colors[i]) * (1 - depth) * 0.7
        strength = float(rng.uniform(0.06, 0.35)) * depth
        texture = color * (1 + textures[i, y0:, :, None] * strength)
        rgb[y0:] += inside * (texture - rgb[y0:])
    if water:
        line = horizon + (h - horizon) * float(rng.uniform(0.3, 0.6))
        y0 = int(min(h - 1, math.floor(line)))
        below = np.clip(ys[y0:] - line, 0, 1)[..., None]
        mirror = np.clip(2 * line - ys[y0:, 0], 0, h - 1).astype(int)
        ripple = spectral_noise(rng, max(2, h // 6), w, 1.2)[0]
        ripple = np.asarray(Image.fromarray(ripple).resize((w, h - y0)))[..., None]
        reflected = rgb[mirror] * float(rng.uniform(0.55, 0.85)) * (1 + 0.12 * ripple)
        rgb[y0:] += below * (reflected - rgb[y0:])
        horizon = line
    _objects(rng, rgb, horizon, px)
    return rgb, detail


def _objects(rng: np.random.Generator, rgb: Array, horizon: float, px: float) -> None:
    """A few trees, houses and rocks standing on the ground, nearer ones larger."""
    h, w = rgb.shape[:2]
    count = int(rng.integers(0, 7))
    for _ in range(count):
        foot = horizon + (h - horizon) * float(rng.uniform(0.05, 1.0)) ** 0.7
        size = (foot - horizon + 0.05 * h) * float(rng.uniform(0.4, 1.4))
        x = float(rng.uniform(0, w))
        kind = choose(rng, (("tree", 0.5), ("pine", 0.2), ("house", 0.15), ("rock", 0.15)))
        mask = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(mask)
        if kind in ("tree", "pine"):
            trunk = max(1.0, size * 0.06)
            d.rectangle((x - trunk, foot - size * 0.45, x + trunk, foot), fill=255)
            _paint_mask(rgb, mask, _hsl(float(rng.uniform(0.05, 0.1)), 0.4, 0.2), rng)
            mask = Image.new("L", (w, h), 0)
            d = ImageDraw.Draw(mask)
            if kind == "pine":
                for k in range(3):
                    top = foot - size * (1.0 - 0.22 * k)
                    half = size * (0.18 + 0.08 * k)
                    d.polygon(
                        [(x, top), (x - half, top + size * 0.4), (x + half, top + size * 0.4)], 255
                    )
            else:
                for _ in range(int(rng.integers(3, 7))):
                    rr = size * float(rng.uniform(0.15, 0.3))
                    bx = x + size * float(rng.uniform(-0.25, 0.25))
                    by = foot - size * float(rng.uniform(0.55, 0.9))
                    d.ellipse((bx - rr, by - rr, bx + rr, by + rr), fill=255)
            green = _hsl(float(rng.uniform(0.2, 0.36)), float(rng.uniform(0.3, 0.7)), 0.25)
            _paint_mask(rgb, mask, green, rng)
        elif kind == "house":
            hw = size * 0.35
            d.rectangle((x - hw, foot - size * 0.5, x + hw, foot), fill=255)
            _paint_mask(rgb, mask, natural_colors(rng, 1, 2)[0], rng)
            mask = Image.new("L", (w, h), 0)
            ImageDraw.Draw(mask).polygon(
                [
                    (x - hw * 1.2, foot - size * 0.5),
                    (x, foot - size * 0.85),
                    (x + hw * 1.2, foot - size * 0.5),
                ],
                255,
            )
            _paint_mask(rgb, mask, np.array((130, 50, 40), np.float32), rng)
        else:
            rr = size * 0.25
            d.ellipse((x - rr * 1.4, foot - rr, x + rr * 1.4, foot + rr * 0.3), fill=255)
            _paint_mask(
                rgb, mask, _hsl(float(rng.random()), 0.08, float(rng.uniform(0.3, 0.6))), rng
            )


def _paint_mask(rgb: Array, mask: Image.Image, color: Array, rng: np.random.Generator) -> None:
    box = mask.getbbox()
    if box is None:
        return
    x0, y0, x1, y1 = box
    m = np.asarray(mask.crop(box), np.float32)[..., None] / 255
    shading = 1 + 0.25 * value_octave(rng, y1 - y0, x1 - x0, 3)[..., None]
    region = rgb[y0:y1, x0:x1]
    region += m * (color * shading - region)


MODELS: dict[str, Callable[[np.random.Generator, int, int, float], Model]] = {
    "dead-leaves": dead_leaves,
    "pink-noise": pink_noise,
    "turbulence": turbulence,
    "scene": scene,
}


# --- the camera ---------------------------------------------------------------------------


def camera(rng: np.random.Generator, rgb: Array, knobs: SynthKnobs, px: float) -> Image.Image:
    """Lens blur, tone curve, vignetting, sensor noise and JPEG, as a camera applies them.

    Every strength is drawn whether or not its step runs, so a knob changes only its step.
    """
    h, w = rgb.shape[:2]
    radius = float(rng.uniform(*knobs.photo_blur_radius)) * px
    gamma = float(rng.uniform(0.8, 1.25))
    vignette = float(rng.uniform(0.15, 0.5))
    vignette *= float(rng.random() < 0.35)
    sigma = float(rng.uniform(*knobs.photo_noise_sigma))
    chroma = float(rng.uniform(0.2, 0.8))
    jpeg = rng.random() < knobs.p_photo_jpeg
    quality = int(rng.integers(knobs.photo_jpeg_quality[0], knobs.photo_jpeg_quality[1] + 1))
    noise_rng = np.random.default_rng(int(rng.integers(0, 2**31)))
    x = np.clip(rgb, 0, 255)
    if vignette:
        yy = (np.arange(h, dtype=np.float32)[:, None] / max(h - 1, 1) - 0.5) * 2
        xx = (np.arange(w, dtype=np.float32)[None, :] / max(w - 1, 1) - 0.5) * 2
        x = x * (1 - vignette * (xx * xx + yy * yy) / 2)[..., None]
    img = Image.fromarray(np.round(x).astype(np.uint8))
    img = img.point([round(255 * (v / 255) ** gamma) for v in range(256)] * 3)
    values = np.asarray(img)
    if radius > 0.05:
        values = cv2.GaussianBlur(values, (0, 0), sigmaX=radius, sigmaY=radius)
    # Luma noise at full resolution; chroma noise coarser (demosaicing and in-camera
    # denoising leave it blotchy) and weaker. Shot noise grows with the signal: sigma is
    # the level at mid-grey.
    luma = noise_rng.standard_normal((h, w, 1), dtype=np.float32)
    ch, cw = max(1, h // 2), max(1, w // 2)
    coarse = noise_rng.standard_normal((ch, cw, 3), dtype=np.float32) * np.float32(chroma)
    color = np.stack(
        [
            np.asarray(Image.fromarray(coarse[..., c]).resize((w, h), Image.Resampling.BILINEAR))
            for c in range(3)
        ],
        axis=-1,
    )
    level = (sigma * np.sqrt(0.25 + 1.5 * np.arange(256, dtype=np.float32) / 255)).astype(
        np.float32
    )
    noisy = values + (luma + color) * level[values]
    img = Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))
    if jpeg:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            img = decoded.convert("RGB")
    return img


def photo_paint(ctx: Ctx, kind: str) -> Paint:
    """A paint that fills its box with a ``kind`` photo shot through the camera."""
    prng, knobs = ctx.photo_rng, ctx.knobs
    px = ctx.size / 256
    ctx.features.add(kind)

    def paint(w: int, h: int) -> Image.Image:
        rgb, where = MODELS[kind](prng, w, h, px)
        # Fine texture (bark, grass, fabric, pores) at a strength spanning two orders of
        # magnitude: the single biggest cause of the spread of photos' labels.
        beta = float(prng.uniform(0.3, 1.0))
        strength = math.exp(float(prng.uniform(math.log(0.03), math.log(0.55))))
        detail = spectral_noise(prng, h, w, beta)[0]
        rgb *= 1 + np.clip(detail * np.float32(strength), -0.9, 0.9)[..., None] * where
        return camera(prng, rgb, knobs, px)

    return paint


def photo(ctx: Ctx) -> None:
    """A photograph filling the canvas, letterboxed, or framed as a tile with overlays.

    Real photos are rectangles covering the whole image, so the new models mostly fill
    the canvas; the v1 ``field`` tile keeps its icon-like framing (avatars, thumbnails).
    """
    rng, pal, plan = ctx.rng, ctx.pal, ctx.plan
    cx, cy, R = ctx.cx, ctx.cy, ctx.R
    kind = plan.photo
    framing = rng.random()
    ratio = float(rng.choice([0.75, 2 / 3, 0.5625]))
    if kind == "field":
        paint = ctx.texture_paint(plan.texture or "field", pal.colors[0])
    else:
        paint = photo_paint(ctx, kind)
    tile = kind == "field" or (not plan.photo_full and framing < 0.5)
    if not tile:
        ctx.features.discard("small-scale")  # a photograph spans the canvas's width
    if ctx.full or (not tile and plan.photo_full):
        ctx.background.paint_all(paint)
        ctx.features.add("full-bleed")
    elif not tile:
        half = ctx.size / 2
        rect = Shape("rect", half, half, half, aspect=ratio)
        ctx.shape(rect, paint, outline=False)
        ctx.main_shape = rect
    else:
        frame = random_shape(
            rng, choose(rng, (("rounded-rect", 0.5), ("circle", 0.3), ("rect", 0.2))), cx, cy, R
        )
        ctx.shape(frame, paint)
        ctx.main_shape = frame
        if plan.strokes:
            ctx.shape(
                replace(frame, r=frame.r * 0.9), WHITE, width=max(2.6, R * 0.04), outline=False
            )
    if tile:
        overlay = rng.random()
        if overlay < 0.3:
            _mountain_sign(ctx, cx, cy, R)
        elif overlay < 0.45:
            _play_button(ctx, cx, cy, R)
    else:
        # A photograph carries no icon furniture; the plan's strokes, details and thin
        # lines would be drawn over it by ``finish``, which is not what photos look like.
        ctx.complete = True
    if plan.text and tile:
        ctx.text(ctx.random_text(), cx, cy + 0.6 * R, 1.4 * R, 0.25 * R, WHITE, stroke=1)
    elif plan.text:
        # A photo's text is a watermark or a date stamp in a corner, not a caption.
        size = ctx.size
        h = size * float(rng.uniform(0.04, 0.08))
        bottom = size / 2 + (size / 2 if ctx.main_shape is None else ctx.main_shape.r * ratio)
        x = size * (0.78 if rng.random() < 0.7 else 0.22)
        color = WHITE if rng.random() < 0.7 else (255, 150, 40)
        ctx.text(ctx.random_text(), x, bottom - h, size * 0.36, h, color)


def _mountain_sign(ctx: Ctx, cx: float, cy: float, R: float) -> None:
    base = cy + 0.55 * R
    ctx.polygon([(cx - 0.7 * R, base), (cx - 0.2 * R, cy - 0.15 * R), (cx + 0.3 * R, base)], WHITE)
    ctx.polygon(
        [(cx, base), (cx + 0.35 * R, cy + 0.1 * R), (cx + 0.7 * R, base)],
        shade(ctx.pal.colors[0], 0.6),
    )
    sun: RGB = (252, 209, 22)
    ctx.shape(Shape("circle", cx + 0.4 * R, cy - 0.4 * R, 0.14 * R), sun, outline=False)


def _play_button(ctx: Ctx, cx: float, cy: float, R: float) -> None:
    ctx.shape(Shape("circle", cx, cy, 0.35 * R), (0, 0, 0), opacity=0.45, outline=False)
    ctx.shape(
        Shape("polygon", cx + 0.05 * R, cy, 0.2 * R, n=3, rot=math.pi / 2), WHITE, outline=False
    )
