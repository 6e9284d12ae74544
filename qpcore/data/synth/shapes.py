"""Geometric primitives of icons: filled shapes, their contours, and stroked glyphs.

Shapes live in canvas pixel coordinates; ``draw`` maps them into a (supersampled,
offset) mask so the same shape can be filled, outlined or used as a clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

Point = tuple[float, float]

#: Shape kinds and the ingredient (feature) name each one reports.
SHAPE_FEATURE: dict[str, str] = {
    "circle": "circle",
    "ellipse": "ellipse",
    "rect": "rect",
    "rounded-rect": "rounded-rect",
    "polygon": "polygon",
    "star": "star",
    "arc": "arc",
    "pie": "arc",
    "ring": "ring",
    "blob": "blob",
    "cross": "cross",
    "arrow": "arrow",
    "gear": "gear",
    "crescent": "crescent",
    "bolt": "polygon",
    "drop": "polygon",
    "document": "polygon",
}

_BOLT: tuple[Point, ...] = (
    (0.2, -1),
    (-0.6, 0.12),
    (-0.05, 0.12),
    (-0.25, 1),
    (0.6, -0.15),
    (0.05, -0.15),
)
_ARROW_HEAD = 0.25


@dataclass(frozen=True)
class Shape:
    """One primitive: centre, half-width ``r``, height ratio ``aspect``, rotation, extras.

    ``n`` is a vertex/point/tooth count, ``k`` a kind-specific ratio (inner radius,
    corner radius, band thickness), ``a0``/``a1`` arc angles in degrees and
    ``harmonics`` the (order, amplitude, phase) terms of a blob's outline.
    """

    kind: str
    cx: float
    cy: float
    r: float
    aspect: float = 1.0
    rot: float = 0.0
    n: int = 5
    k: float = 0.5
    a0: float = 0.0
    a1: float = 270.0
    harmonics: tuple[tuple[int, float, float], ...] = ()

    @property
    def feature(self) -> str:
        return SHAPE_FEATURE[self.kind]

    def bounds(self, pad: float = 0.0) -> tuple[float, float, float, float]:
        """A box that surely contains the shape (for sizing its mask)."""
        grow = 1.0 + sum(abs(a) for _, a, _ in self.harmonics)
        if self.kind in ("rect", "document", "cross", "arrow", "bolt"):
            grow = 1.45
        e = self.r * max(1.0, self.aspect) * grow + pad
        return (self.cx - e, self.cy - e, self.cx + e, self.cy + e)

    def _box(self, s: float, ox: float, oy: float, scale: float = 1.0) -> list[float]:
        rx, ry = self.r * scale, self.r * self.aspect * scale
        return [
            (self.cx - rx - ox) * s,
            (self.cy - ry - oy) * s,
            (self.cx + rx - ox) * s,
            (self.cy + ry - oy) * s,
        ]

    def points(self) -> list[Point]:
        """Outline of polygonal kinds in canvas coordinates."""
        kind, n = self.kind, self.n
        if kind == "rect":
            unit: list[Point] = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        elif kind == "polygon":
            unit = [
                (
                    math.cos(2 * math.pi * i / n - math.pi / 2),
                    math.sin(2 * math.pi * i / n - math.pi / 2),
                )
                for i in range(n)
            ]
        elif kind == "star":
            unit = [
                (
                    (1 if i % 2 == 0 else self.k) * math.cos(math.pi * i / n - math.pi / 2),
                    (1 if i % 2 == 0 else self.k) * math.sin(math.pi * i / n - math.pi / 2),
                )
                for i in range(2 * n)
            ]
        elif kind == "cross":
            t = self.k * 0.6
            unit = [
                (-t, -1),
                (t, -1),
                (t, -t),
                (1, -t),
                (1, t),
                (t, t),
                (t, 1),
                (-t, 1),
                (-t, t),
                (-1, t),
                (-1, -t),
                (-t, -t),
            ]
        elif kind == "arrow":
            t = self.k * 0.45
            unit = [
                (-1, -t),
                (_ARROW_HEAD, -t),
                (_ARROW_HEAD, -0.75),
                (1, 0),
                (_ARROW_HEAD, 0.75),
                (_ARROW_HEAD, t),
                (-1, t),
            ]
        elif kind == "gear":
            unit = []
            for i in range(n):
                a = 2 * math.pi * i / n
                step = math.pi / n
                for da, rad in ((-0.5, 0.78), (-0.3, 1.0), (0.3, 1.0), (0.5, 0.78), (1.5, 0.78)):
                    unit.append((rad * math.cos(a + da * step), rad * math.sin(a + da * step)))
        elif kind == "bolt":
            unit = list(_BOLT)
        elif kind == "drop":
            ts = np.linspace(0, 2 * math.pi, 40, endpoint=False)
            unit = [(0.8 * math.sin(t) * math.sin(t / 2), -math.cos(t)) for t in ts]
        elif kind == "document":
            f = self.k * 0.8
            unit = [(-0.75, -1), (0.75 - f, -1), (0.75, -1 + f), (0.75, 1), (-0.75, 1)]
        elif kind == "blob":
            ts = np.linspace(0, 2 * math.pi, 48, endpoint=False)
            rad = 1 + sum(a * np.cos(o * ts + p) for o, a, p in self.harmonics)
            unit = list(zip((rad * np.cos(ts)).tolist(), (rad * np.sin(ts)).tolist(), strict=True))
        else:
            raise ValueError(f"{kind} has no polygon outline")
        c, s = math.cos(self.rot), math.sin(self.rot)
        return [
            (
                self.cx + self.r * (x * c - y * self.aspect * s),
                self.cy + self.r * (x * s + y * self.aspect * c),
            )
            for x, y in unit
        ]

    def draw(
        self,
        d: ImageDraw.ImageDraw,
        s: float,
        ox: float,
        oy: float,
        width: float = 0.0,
        ink: int = 255,
    ) -> None:
        """Fill the shape, or only its contour when ``width`` (canvas pixels) is > 0."""
        w = max(1, round(width * s)) if width > 0 else 0
        kind = self.kind
        if kind in ("circle", "ellipse"):
            d.ellipse(
                self._box(s, ox, oy),
                fill=None if w else ink,
                outline=ink if w else None,
                width=w or 1,
            )
        elif kind == "rounded-rect":
            radius = self.k * self.r * min(1.0, self.aspect) * s
            d.rounded_rectangle(
                self._box(s, ox, oy),
                radius=radius,
                fill=None if w else ink,
                outline=ink if w else None,
                width=w or 1,
            )
        elif kind == "ring":
            band = max(1, round(self.k * self.r * s * 0.5))
            d.ellipse(self._box(s, ox, oy), outline=ink, width=w or band)
            if w:
                d.ellipse(self._box(s, ox, oy, 1 - self.k * 0.5), outline=ink, width=w)
        elif kind in ("arc", "pie"):
            box = self._box(s, ox, oy)
            if kind == "pie":
                d.pieslice(
                    box,
                    self.a0,
                    self.a1,
                    fill=None if w else ink,
                    outline=ink if w else None,
                    width=w or 1,
                )
            else:
                d.arc(
                    box,
                    self.a0,
                    self.a1,
                    fill=ink,
                    width=w or max(1, round(self.k * self.r * s * 0.5)),
                )
        elif kind == "crescent":
            d.ellipse(
                self._box(s, ox, oy),
                fill=None if w else ink,
                outline=ink if w else None,
                width=w or 1,
            )
            shift = self.r * (1 - self.k) * 0.9
            inner = Shape(
                "circle",
                self.cx + shift * math.cos(self.rot),
                self.cy + shift * math.sin(self.rot),
                self.r * (0.55 + 0.35 * self.k),
            )
            inner.draw(d, s, ox, oy, ink=0)
            if w:
                inner.draw(d, s, ox, oy, width=width, ink=ink)
        else:
            pts = [((x - ox) * s, (y - oy) * s) for x, y in self.points()]
            d.polygon(pts, fill=None if w else ink, outline=ink if w else None, width=w or 1)
            if kind == "gear":
                hole = Shape("circle", self.cx, self.cy, self.r * self.k * 0.6)
                hole.draw(d, s, ox, oy, ink=0)
                if w:
                    hole.draw(d, s, ox, oy, width=width, ink=ink)


# --- stroked glyphs (line-icon vocabulary), in unit coordinates [-1, 1] -----------------

GLYPHS: dict[str, tuple[tuple[Point, ...], ...]] = {
    "check": (((-0.7, 0.0), (-0.2, 0.5), (0.7, -0.45)),),
    "chevron": (((-0.3, -0.6), (0.3, 0.0), (-0.3, 0.6)),),
    "menu": (((-0.7, -0.5), (0.7, -0.5)), ((-0.7, 0.0), (0.7, 0.0)), ((-0.7, 0.5), (0.3, 0.5))),
    "plus": (((0.0, -0.7), (0.0, 0.7)), ((-0.7, 0.0), (0.7, 0.0))),
    "close": (((-0.6, -0.6), (0.6, 0.6)), ((-0.6, 0.6), (0.6, -0.6))),
    "pulse": (((-1, 0.1), (-0.45, 0.1), (-0.25, -0.6), (0.05, 0.7), (0.3, 0.1), (1, 0.1)),),
    "code": (
        ((-0.35, -0.5), (-0.85, 0.0), (-0.35, 0.5)),
        ((0.35, -0.5), (0.85, 0.0), (0.35, 0.5)),
        ((0.15, -0.7), (-0.15, 0.7)),
    ),
    "arrow": (((-0.7, 0.0), (0.7, 0.0)), ((0.25, -0.45), (0.7, 0.0), (0.25, 0.45))),
    "download": (
        ((0.0, -0.8), (0.0, 0.3)),
        ((-0.45, -0.15), (0.0, 0.3), (0.45, -0.15)),
        ((-0.75, 0.75), (0.75, 0.75)),
    ),
    "house": (
        ((-0.8, 0.0), (0.0, -0.75), (0.8, 0.0)),
        ((-0.55, -0.2), (-0.55, 0.8), (0.55, 0.8), (0.55, -0.2)),
    ),
}


def wave(phase: float, cycles: float) -> tuple[Point, ...]:
    xs = np.linspace(-1, 1, 17)
    return tuple(
        zip(xs.tolist(), (0.35 * np.sin(np.pi * cycles * xs + phase)).tolist(), strict=True)
    )


def stroke_polyline(
    d: ImageDraw.ImageDraw,
    s: float,
    ox: float,
    oy: float,
    pts: list[Point],
    width: float,
    ink: int = 255,
) -> None:
    """A polyline with round joins and round caps, like an SVG icon stroke."""
    w = max(1, round(width * s))
    mapped = [((x - ox) * s, (y - oy) * s) for x, y in pts]
    d.line(mapped, fill=ink, width=w, joint="curve")
    if w >= 3:
        half = w / 2
        for x, y in (mapped[0], mapped[-1]):
            d.ellipse((x - half, y - half, x + half, y + half), fill=ink)
