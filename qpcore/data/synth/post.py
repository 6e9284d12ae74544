"""Degradations after drawing: what happens to icons that were resized, shared or scanned."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from qpcore.data.synth.context import Plan
from qpcore.data.synth.knobs import SynthKnobs


def degrade(
    rgb: Image.Image, plan: Plan, knobs: SynthKnobs, rng: np.random.Generator
) -> tuple[Image.Image, list[str]]:
    """Blur, rescale, noise and JPEG, in the order a real pipeline applies them.

    Each parameter is drawn whether or not its step runs, so one knob never changes
    another step's strength.
    """
    size = rgb.size[0]
    radius = float(rng.uniform(*knobs.blur_radius)) * size / 256
    factor = float(rng.uniform(*knobs.rescale_factor))
    sigma = float(rng.uniform(*knobs.noise_sigma))
    quality = int(rng.integers(knobs.jpeg_quality[0], knobs.jpeg_quality[1] + 1))
    noise_seed = int(rng.integers(0, 2**31))
    applied: list[str] = []
    if plan.rescale:
        small = (max(1, round(size / factor)),) * 2
        rgb = rgb.resize(small, Image.Resampling.BILINEAR).resize(
            rgb.size, Image.Resampling.BILINEAR
        )
        applied.append("rescale")
    if plan.blur:
        rgb = rgb.filter(ImageFilter.GaussianBlur(radius))
        applied.append("blur")
    if plan.noise:
        noise = np.random.default_rng(noise_seed).standard_normal((size, size, 3), dtype=np.float32)
        pixels = np.asarray(rgb, dtype=np.float32) + noise * sigma
        rgb = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
        applied.append("noise")
    if plan.jpeg:
        buffer = io.BytesIO()
        rgb.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            rgb = decoded.convert("RGB")
        applied.append("jpeg")
    return rgb, applied
