"""What a corpus build tells people: ``SOURCES.md`` and the per-source summary.

``SOURCES.md`` sits beside the images because the licences (several sets are
CC BY) travel with the files, not with this code.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qpcore.data.corpus.render import DEGRADATIONS
from qpcore.data.corpus.stage import SourceReport
from qpcore.data.labeler import MANIFEST
from qpcore.data.protocol import PROTOCOL
from qpcore.fileio import write_atomic

SOURCES_MD = "SOURCES.md"
#: (track, labels per image): one default label, two random-track draws.
TRACKS: tuple[tuple[str, int], ...] = (("default", 1), ("random", 2))


def write_sources_md(out: Path, reports: Sequence[SourceReport], settings: dict[str, Any]) -> None:
    """Where every image came from and under which licence, next to the images."""
    lines = [
        "# Corpus sources",
        "",
        f"Built by `qp data corpus` with seed {settings['seed']}, "
        f"{settings['per_source']} originals per source, {settings['size']} px; "
        f"labels `{PROTOCOL}`. Per image: `provenance.csv`.",
        "",
        "| source | package | package licence | icon set | author | set licence "
        "| available | used | degraded copies | passed over (blank) |",
        "|---|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for r in reports:
        blank = ", ".join(r.blank[:8]) + (f" (+{len(r.blank) - 8})" if len(r.blank) > 8 else "")
        licence = f"[{r.set_licence}]({r.set_licence_url})" if r.set_licence_url else r.set_licence
        lines.append(
            f"| {r.name} | `{r.spec}` | {r.package_licence} | {r.set_name} | {r.author} "
            f"| {licence} | {r.available} | {r.used} | {r.degraded} | {blank or '-'} |"
        )
    for r in reports:
        if r.failed:
            lines += ["", f"Not renderable in {r.name}: " + "; ".join(r.failed)]
        if r.attribution:
            lines += ["", f"## {r.name} attribution", "", "```", r.attribution, "```"]
    lines += [
        "",
        "CC BY sets require attribution: the authors are named above. The images are "
        "renderings (and degraded renderings) of the packages' SVGs and photo crops.",
        "",
    ]
    write_atomic(out / SOURCES_MD, "\n".join(lines))


def source_table(out: Path) -> list[dict[str, Any]]:
    """Per source: images, rows and median label of each track (from the manifests)."""
    stats: dict[str, dict[str, Any]] = defaultdict(dict)
    for track, _ in TRACKS:
        path = out / track / MANIFEST
        if not path.exists():
            continue
        labels: dict[str, list[float]] = defaultdict(list)
        images: dict[str, set[str]] = defaultdict(set)
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                labels[row["source"]].append(float(row["ssim"]))
                images[row["source"]].add(row["image"])
        for name, values in labels.items():
            values.sort()
            stats[name]["images"] = len(images[name])
            stats[name][f"{track} rows"] = len(values)
            stats[name][f"{track} median"] = values[len(values) // 2]
    bases = list(dict.fromkeys(name.split("+")[0] for name in stats))
    kinds = ("", *DEGRADATIONS)

    def rank(name: str) -> tuple[int, int]:
        base, _, kind = name.partition("+")
        return bases.index(base), kinds.index(kind) if kind in kinds else len(kinds)

    return [{"source": name, **stats[name]} for name in sorted(stats, key=rank)]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The per-source summary as a Markdown table, with a total row."""
    head = ["source", "images"] + [f"{t} {k}" for t, _ in TRACKS for k in ("rows", "median")]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    totals: Counter[str] = Counter()
    for row in rows:
        cells = [row["source"], str(row.get("images", 0))]
        totals["images"] += row.get("images", 0)
        for track, _ in TRACKS:
            totals[f"{track} rows"] += row.get(f"{track} rows", 0)
            median = row.get(f"{track} median")
            cells += [str(row.get(f"{track} rows", 0)), "-" if median is None else f"{median:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    total = ["**total**", str(totals["images"])]
    for track, _ in TRACKS:
        total += [str(totals[f"{track} rows"]), ""]
    lines.append("| " + " | ".join(total) + " |")
    return "\n".join(lines)
