"""Text in fonts every installation has: Pillow's own scalable font and matplotlib's TTFs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

#: matplotlib's bundled fonts with Latin glyphs (DejaVu*Display and the STIX/cm symbol
#: fonts carry no letters), plus Pillow's default font under the name ``pillow-default``.
FONTS: tuple[str, ...] = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
    "pillow-default",
)

_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_REFERENCE_PX = 100

_ONSETS = (
    "b",
    "c",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "cl",
    "st",
    "tr",
    "qu",
    "x",
    "h",
    "j",
    "sh",
    "pl",
)
_VOWELS = ("a", "e", "i", "o", "u", "y", "ai", "io", "ea")
_CODAS = ("", "", "", "n", "x", "r", "s", "t", "m", "ck", "lt")
_AVOID = (
    "dick",
    "dik",
    "cock",
    "cum",
    "fuck",
    "fuk",
    "shit",
    "sex",
    "tit",
    "nig",
    "fag",
    "rape",
    "porn",
    "slut",
    "piss",
    "ass",
    "cunt",
    "kill",
    "nazi",
)


@lru_cache(maxsize=512)
def load_font(name: str, px: int) -> ImageFont.FreeTypeFont:
    """Cached: a font object is reused across images (FreeType loads cost ~0.1 ms)."""
    if name == "pillow-default":
        font = ImageFont.load_default(px)
        assert isinstance(font, ImageFont.FreeTypeFont)
        return font
    return ImageFont.truetype(str(_FONT_DIR / name), px)


def random_text(rng: np.random.Generator) -> str:
    """A pronounceable made-up brand name, initials, a number or a short code."""
    kind = rng.choice(
        ["word", "initials", "number", "code", "two-words"], p=[0.45, 0.25, 0.1, 0.1, 0.1]
    )
    if kind == "initials":
        return "".join(chr(65 + int(i)) for i in rng.integers(0, 26, size=int(rng.integers(1, 4))))
    if kind == "number":
        return str(int(rng.integers(0, 10 ** int(rng.integers(1, 5)))))
    if kind == "code":
        return rng.choice(["JS", "PY", "TS", "SQL", "PDF", "CSS", "XML", "GO", "C++", "DOC", "ZIP"])
    words = [_word(rng) for _ in range(2 if kind == "two-words" else 1)]
    style = rng.choice(["title", "upper", "lower"], p=[0.5, 0.3, 0.2])
    text = " ".join(words)
    return text.title() if style == "title" else text.upper() if style == "upper" else text


def _word(rng: np.random.Generator) -> str:
    """Syllables until the word avoids a handful of crude English substrings."""
    while True:
        syllables = int(rng.integers(1, 4))
        word = (
            "".join(
                _ONSETS[int(rng.integers(len(_ONSETS)))] + _VOWELS[int(rng.integers(len(_VOWELS)))]
                for _ in range(syllables)
            )
            + _CODAS[int(rng.integers(len(_CODAS)))]
        )
        if not any(bad in word for bad in _AVOID):
            return word


def fit_px(text: str, font: str, width: float, height: float) -> int:
    """The font size at which ``text`` just fits a width x height box."""
    left, top, right, bottom = load_font(font, _REFERENCE_PX).getbbox(text)
    scale = min(width / max(right - left, 1), height / max(bottom - top, 1))
    return max(6, min(400, int(_REFERENCE_PX * scale)))


def text_mask(
    size: int, text: str, font: str, px: int, cx: float, cy: float, stroke: int = 0
) -> Image.Image:
    """Coverage of ``text`` centred at (cx, cy); FreeType anti-aliases it already.

    With ``stroke`` > 0 only the contour band around the glyphs is returned.
    """
    f = load_font(font, px)
    left, top, right, bottom = f.getbbox(text, stroke_width=stroke)
    origin = (cx - (left + right) / 2, cy - (top + bottom) / 2)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).text(origin, text, font=f, fill=255, stroke_width=stroke, stroke_fill=255)
    if stroke:
        inner = Image.new("L", (size, size), 0)
        ImageDraw.Draw(inner).text(origin, text, font=f, fill=255)
        mask = ImageChops.subtract(mask, inner)
    return mask
