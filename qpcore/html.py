"""Markup helpers for the HTML report, shared by the core and by plugins.

Escaping is structural: markup is built only from :class:`Html` values, which
the helpers here make; any other value is escaped on the way in. Evaluators and
monitors contribute :class:`Section` objects built with these helpers, so a
file name or config value in a plugin's section can never become markup.

This module imports nothing heavy (Pillow only inside :func:`thumbnail`), so a
plugin can import it at module level without slowing ``qp plugins``.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qpcore.errors import QPError


class Html(str):
    """A string of markup that is safe to insert as it is."""


def esc(value: Any) -> Html:
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(esc(p) for p in parts))


def tag(name: str, *children: Any, **attrs: Any) -> Html:
    """``<name attrs>children</name>``; ``class_`` is ``class``; attribute values
    and non-Html children are escaped."""
    rendered = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{html.escape(str(v), quote=True)}"'
        for k, v in attrs.items()
        if v is not None
    )
    return Html(f"<{name}{rendered}>{join(children)}</{name}>")


def number(value: Any) -> str:
    """Metrics as people read them: 4 decimals, scientific when tiny or huge."""
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if value != 0 and not 1e-3 <= abs(value) < 1e5:
        return f"{value:.3g}"
    return f"{value:.4f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], sortable: bool = True) -> Html:
    """A table; numeric cells carry their value for sorting and align right."""
    head = tag("tr", *(tag("th", h) for h in headers))
    body = []
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, int | float) and not isinstance(cell, bool)
            if numeric and math.isfinite(cell):
                cells.append(tag("td", number(cell), class_="num", data_value=repr(cell)))
            else:
                cells.append(tag("td", "null" if cell is None else cell))
        body.append(tag("tr", *cells))
    return tag(
        "table", tag("thead", head), tag("tbody", *body), class_="sortable" if sortable else None
    )


def paragraph(*children: Any) -> Html:
    return tag("p", *children)


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def thumbnail(path: str | Path, size: int = 96) -> Html:
    """The image at ``path`` as a small inline PNG over a checkerboard (so
    transparency shows), or a note when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGBA")
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except (OSError, ValueError) as exc:
        return tag("span", f"unreadable ({type(exc).__name__})", class_="missing")
    return tag("img", src=png_uri(buffer.getvalue()), alt=Path(path).name, class_="thumb")


@dataclass(frozen=True)
class Figure:
    """A plot: ``name`` is its PNG's file stem in ``plots/``, ``title`` its caption."""

    name: str
    title: str
    png: bytes

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise QPError(f"figure name {self.name!r}: use letters, digits, - and _")


@dataclass
class Section:
    """A part of the report: a heading, markup made with this module's helpers,
    and figures shown below it."""

    title: str
    body: str = ""
    figures: list[Figure] = field(default_factory=list)


__all__ = [
    "Figure",
    "Html",
    "Section",
    "esc",
    "join",
    "number",
    "paragraph",
    "png_uri",
    "table",
    "tag",
    "thumbnail",
]
