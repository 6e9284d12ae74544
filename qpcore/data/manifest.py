"""Reading and writing manifests: the CSV every labelled dataset is on disk.

A manifest is untrusted input (it may come from anyone), so every field is checked
and every problem is reported with its file and line, all of them at once.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from qpcore.data.protocol import PROTOCOL, VtracerParams
from qpcore.errors import ManifestError

PARAM_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(VtracerParams))
#: What the SVG of a label costs; absent from manifests written before qpcore 0.14.
SIZE_COLUMNS: tuple[str, ...] = ("svg_bytes", "svg_paths")
COLUMNS: tuple[str, ...] = (
    "image",
    "ssim",
    "label_protocol",
    "group",
    "source",
    *PARAM_COLUMNS,
    *SIZE_COLUMNS,
)
REQUIRED = ("image", "ssim")


@dataclass(frozen=True)
class Sample:
    """One labelled row: an image, its SSIM and the params that produced it.

    Attributes:
        image: Absolute path of the image.
        ssim: The label.
        params: The vtracer params of the label.
        group: Source-image id; rows sharing it stay on one side of a split.
        source: Free text, where the image came from.
        line: Line of the manifest the row was read from (1 = header).
        svg_bytes: Size of the label's SVG in bytes (None: not recorded).
        svg_paths: Its number of paths (None: not recorded).
    """

    image: Path
    ssim: float
    params: VtracerParams
    group: str
    source: str = ""
    line: int = 0
    svg_bytes: int | None = None
    svg_paths: int | None = None


@dataclass(frozen=True)
class Manifest:
    """A manifest file's rows and the protocol they were labelled with."""

    path: Path
    samples: list[Sample]
    protocol: str | None


def _parse_row(
    row: dict[str, str | None], line: int, folder: Path, check_images: bool
) -> tuple[Sample | None, list[str]]:
    problems = []
    image = (row.get("image") or "").strip()
    path: Path | None = None
    if not image:
        problems.append(f"line {line}: empty image path")
    else:
        path = Path(image) if Path(image).is_absolute() else folder / image
        if check_images and not path.is_file():
            problems.append(f"line {line}: image not found: {image}")
    raw = (row.get("ssim") or "").strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
        problems.append(f"line {line}: ssim {raw!r} is not a number")
    else:
        if not math.isfinite(value):
            problems.append(f"line {line}: ssim {raw!r} is not a finite number")
        elif not -1.0 <= value <= 1.0:
            problems.append(f"line {line}: ssim {value} is outside [-1, 1]")
    try:
        params = VtracerParams.from_mapping({k: row.get(k) for k in PARAM_COLUMNS})
    except ValueError as exc:
        problems.append(f"line {line}: bad vtracer params: {exc}")
        params = VtracerParams()
    sizes: list[int | None] = []
    for column in SIZE_COLUMNS:
        text = (row.get(column) or "").strip()
        number = int(text) if text.isdigit() and len(text) < 12 else None
        if text and number is None:
            problems.append(f"line {line}: {column} {text!r} is not a whole number of 0 or more")
        sizes.append(number)
    if problems or path is None:
        return None, problems
    group = (row.get("group") or "").strip() or image
    source = (row.get("source") or "").strip()
    return Sample(path, value, params, group, source, line, *sizes), []


def read_manifest(path: str | Path, check_images: bool = True) -> Manifest:
    """Read and validate a manifest; image paths are relative to its folder.

    Args:
        path: The CSV file (UTF-8, header row).
        check_images: Also check that every image file exists.

    Raises:
        ManifestError: Every bad row, with its line number.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, ["no such manifest file"])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(path, [f"not UTF-8 text (byte {exc.start})"]) from exc
    folder = path.parent
    samples: list[Sample] = []
    problems: list[str] = []
    protocols: dict[str, int] = {}
    seen: dict[tuple[Path, VtracerParams], Sample] = {}
    rows = _csv_rows(path, text)
    header = next(rows, ((1, 1), []))[1]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ManifestError(path, [f"line 1: missing required column {c!r}" for c in missing])
    for (line, last), values in rows:
        if not any(v.strip() for v in values):
            continue  # a blank line, as DictReader skips it
        if last != line:
            problems.append(
                f'line {line}: a field spans lines {line}-{last}; an unclosed quote (") '
                "swallows the lines after it"
            )
            continue
        if len(values) > len(header):
            problems.append(f"line {line}: {len(values)} fields, the header has {len(header)}")
            continue
        row: dict[str, str | None] = dict(zip(header, values, strict=False))
        protocol = (row.get("label_protocol") or "").strip()
        if protocol and protocol not in protocols:
            protocols[protocol] = line
        sample, row_problems = _parse_row(row, line, folder, check_images)
        problems += row_problems
        if sample is None:
            continue
        first = seen.setdefault((sample.image, sample.params), sample)
        if first is not sample:
            what = (
                "duplicate row"
                if first.ssim == sample.ssim
                else f"conflicting label ({sample.ssim} here, {first.ssim} there)"
            )
            problems.append(f"line {line}: {what}: same image and params as line {first.line}")
            continue
        samples.append(sample)
    if len(protocols) > 1:
        found = ", ".join(f"{p!r} (first at line {n})" for p, n in protocols.items())
        problems.append(f"mixes label protocols: {found}; one manifest holds one protocol")
    if not problems and not samples:
        problems.append("no rows: a manifest needs at least one labelled image")
    if problems:
        raise ManifestError(path, problems)
    return Manifest(path, samples, next(iter(protocols), None))


def _csv_rows(path: Path, text: str) -> Iterator[tuple[tuple[int, int], list[str]]]:
    """``((first line, last line), fields)`` of each record; malformed CSV raises.

    ``strict`` makes the csv module refuse text after a closing quote; a quote
    left open to the end of the file is an error too, with the line it opened on.
    """
    reader = csv.reader(io.StringIO(text), strict=True)
    line = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = str(exc)
            if "field larger than field limit" in message:
                message = f"a field is longer than {csv.field_size_limit()} characters"
            elif "unexpected end of data" in message:
                message = 'a quote (") opened here is never closed'
            raise ManifestError(path, [f"line {line}: malformed CSV: {message}"]) from None
        yield (line, reader.line_num), values
        line = reader.line_num + 1


def format_row(
    image: str,
    ssim: float,
    params: VtracerParams,
    group: str,
    source: str,
    svg_bytes: int | None = None,
    svg_paths: int | None = None,
) -> dict[str, Any]:
    """A manifest row as written by qpcore's tools (every column)."""
    return {
        "image": image,
        "ssim": f"{ssim:.6f}",
        "label_protocol": PROTOCOL,
        "group": group,
        "source": source,
        **params.as_dict(),
        "svg_bytes": "" if svg_bytes is None else svg_bytes,
        "svg_paths": "" if svg_paths is None else svg_paths,
    }


def rows_to_csv(rows: Iterable[dict[str, Any]], header: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def iter_raw_rows(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a manifest being written, without validation (for resuming)."""
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def error_line(image: str, error: str) -> str:
    """One row of ``errors.csv`` (image, error), CSV-quoted."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([image, error])
    return buffer.getvalue()
