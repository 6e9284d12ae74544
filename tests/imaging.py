"""Images the data tests draw for themselves (no fixtures from outside the repo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def flat_logo(size: int = 96) -> Image.Image:
    """Two flat shapes on white: vectorizes almost perfectly."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([size // 8, size // 8, size // 2, size // 2], fill=(200, 30, 40))
    draw.ellipse([size // 2, size // 2, size - size // 8, size - size // 8], fill=(20, 90, 200))
    return image


def photo_like(size: int = 96, seed: int = 0) -> Image.Image:
    """Smooth colour fields plus grain: vtracer loses much of it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    field = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 25, (size, size, 3))
    pixels = np.clip(np.asarray(field, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(0.6))


def transparent_badge(size: int = 96) -> Image.Image:
    """RGBA with a transparent background and a half-transparent shape."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([8, 8, size - 8, size - 8], fill=(30, 160, 60, 255))
    draw.rectangle([size // 3, size // 3, size - 10, size - 10], fill=(250, 200, 0, 128))
    return image


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
