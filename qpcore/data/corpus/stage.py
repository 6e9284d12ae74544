"""The render step: pick, render and write each source's images, with provenance.

A source is staged in one go (its picks depend on which candidates turn out
blank), so the step runs one source per process. Every image is written
atomically and re-rendering is deterministic, so an interrupted step simply runs
again; ``provenance.csv``, written last, marks it complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from PIL import Image

from qpcore.data.corpus import fetch, render
from qpcore.data.corpus.sources import Source, brand_icon
from qpcore.fileio import write_atomic

PROVENANCE = "provenance.csv"
#: Called once per image made (the progress bar).
Tick = Callable[[], None]


@dataclass(frozen=True)
class Staged:
    """One staged image and where it came from (a row of ``provenance.csv``)."""

    image: str
    source: str
    group: str
    origin: str
    parent: str = ""
    degradation: str = ""
    degradation_param: str = ""
    colour: str = ""


@dataclass
class SourceReport:
    """What one source gave: for ``SOURCES.md`` and the closing summary."""

    name: str
    spec: str
    package_licence: str
    available: int
    used: int = 0
    degraded: int = 0
    blank: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    set_name: str = ""
    author: str = ""
    set_licence: str = ""
    set_licence_url: str = ""
    attribution: str = ""


def save_png(image: Image.Image, path: Path) -> None:
    """Write a PNG atomically unless it is there already (re-renders are identical)."""
    if path.exists():
        return
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


class _Writer:
    """Names, writes and records a source's originals and their degraded copies."""

    def __init__(self, source: Source, out: Path, seed: int, report: SourceReport) -> None:
        self.source, self.out, self.seed, self.report = source, out, seed, report
        self.rows: list[Staged] = []

    def add(self, image: Image.Image, group: str, origin: str, colour: str = "") -> None:
        stem = f"{self.source.name}_{self.report.used:04d}"
        name = f"images/{stem}.png"
        save_png(image, self.out / name)
        self.rows.append(Staged(name, self.source.name, group, origin, colour=colour))
        self.report.used += 1
        drawn = render.draw_degradation(self.seed, name)
        if drawn is None:
            return
        kind, param = drawn
        copy = f"images/{stem}_{kind}.png"
        save_png(render.degrade(image, kind, param, self.seed, copy), self.out / copy)
        source = f"{self.source.name}+{kind}"
        self.rows.append(Staged(copy, source, group, origin, name, kind, str(param), colour))
        self.report.degraded += 1


def _stage_icons(
    source: Source, artifact: Path, out: Path, seed: int, count: int, size: int, tick: Tick
) -> tuple[list[Staged], SourceReport]:
    icon_set = fetch.read_icon_set(artifact, source)
    info = icon_set.info
    names = [n for n in icon_set.visible if not brand_icon(n)]
    report = SourceReport(
        source.name,
        source.spec,
        icon_set.package_licence,
        available=len(icon_set.visible),
        set_name=str(info.get("name", "")) + (f" {info['version']}" if info.get("version") else ""),
        author=str((info.get("author") or {}).get("name", "")),
        set_licence=str((info.get("license") or {}).get("title", "")),
        set_licence_url=str((info.get("license") or {}).get("url", "")),
    )
    writer = _Writer(source, out, seed, report)
    variant = re.compile(source.variants) if source.variants else None
    bases: set[str] = set()
    bodies: set[str] = set()
    order = render.rng_for(seed, f"pick:{source.name}").permutation(len(names))
    for index in order:
        if report.used >= count:
            break
        name = names[int(index)]
        icon = icon_set.icons[name]
        base = variant.sub("", name, count=1) if variant else name
        body = hashlib.sha256(str(icon.get("body", "")).encode("utf-8")).hexdigest()
        if base in bases or body in bodies:
            continue
        colour = ""
        if "currentColor" in str(icon.get("body", "")):
            colour = render.draw_colour(render.rng_for(seed, f"colour:{source.name}:{name}"))
        width = float(icon.get("width", icon_set.width))
        height = float(icon.get("height", icon_set.height))
        try:
            svg = render.icon_svg(icon, icon_set.width, icon_set.height, colour or "#000")
            image = render.render_svg(svg, width, height, size)
        except (ValueError, KeyError) as exc:
            report.failed.append(f"{name}: {exc}")
            continue
        if render.ink(image) < render.MIN_INK:
            report.blank.append(name)
            continue
        bases.add(base)
        bodies.add(body)
        writer.add(image, f"{source.name}:{name}", f"{source.spec}:icons.json#{name}", colour)
        tick()
    return writer.rows, report


def _stage_photos(
    source: Source, artifact: Path, out: Path, seed: int, count: int, size: int, tick: Tick
) -> tuple[list[Staged], SourceReport]:
    photos = fetch.read_photos(artifact, source)
    licence, readme = fetch.wheel_licence(artifact)
    report = SourceReport(
        source.name,
        source.spec,
        licence,
        available=len(photos),
        set_name="scikit-learn sample images",
        author="Flickr users (attribution below)",
        set_licence="CC BY 2.0",
        set_licence_url="https://creativecommons.org/licenses/by/2.0/",
        attribution=readme.strip(),
    )
    writer = _Writer(source, out, seed, report)
    members = dict(zip((Path(m).stem for m, _ in source.members), source.members, strict=True))
    for k, (stem, data) in enumerate(photos.items()):
        with Image.open(io.BytesIO(data)) as opened:
            photo = opened.convert("RGB")
        rng = render.rng_for(seed, f"crop:{source.name}:{stem}")
        share = count // len(photos) + (1 if k < count % len(photos) else 0)
        for _ in range(share):
            crop = render.draw_crop(rng, photo.width, photo.height, size)
            origin = f"{source.spec}:{members[stem][0]}#crop={crop}"
            writer.add(render.crop_photo(photo, crop, size), f"{source.name}:{stem}", origin)
            tick()
    return writer.rows, report


def stage_source(
    source: Source,
    artifact: Path,
    out: Path,
    seed: int,
    count: int,
    size: int,
    tick: Callable[[], None] | None = None,
) -> tuple[list[Staged], SourceReport]:
    """Render ``count`` images of one source (fewer when it has fewer usable
    icons) into ``out/images``, each original followed by its degraded copy."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    step = tick or (lambda: None)
    if source.kind == "photos":
        return _stage_photos(source, artifact, out, seed, count, size, step)
    return _stage_icons(source, artifact, out, seed, count, size, step)


PROVENANCE_COLUMNS = tuple(f.name for f in fields(Staged))


def write_provenance(out: Path, rows: list[Staged]) -> None:
    """Written last and atomically: its presence means the render step finished."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, PROVENANCE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    write_atomic(out / PROVENANCE, buffer.getvalue())


def read_provenance(out: Path) -> list[Staged] | None:
    """The staged images of a completed render step, or ``None`` to render again."""
    path = out / PROVENANCE
    if not path.exists():
        return None
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != PROVENANCE_COLUMNS:
            return None
        rows = [Staged(**{k: row[k] or "" for k in PROVENANCE_COLUMNS}) for row in reader]
    if not all((out / row.image).exists() for row in rows):
        return None
    return rows
