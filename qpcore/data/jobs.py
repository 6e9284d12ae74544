"""What to label: one job per source image, with its parameter draws.

Jobs are built in the parent process, in a fixed order, before any work starts,
so output names and parameter draws depend only on the inputs and the seed, never
on the number of workers or on which job finishes first.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qpcore.data.protocol import Track, VtracerParams, draw_params
from qpcore.errors import QPError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".tga"}
)
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Job:
    """One source image and the labels to make of it.

    Attributes:
        index: Position in the run; the manifest is written in this order.
        name: Output image path relative to the dataset folder (``images/x.png``);
            also the key that tells a resumed run the job is done.
        params: One parameter set per label of this image.
        group: Source-image id for group-aware splits.
        source: Where the image came from (generated images fill it in later).
        origin: The input file, for ``qp data label``.
        synth_seed: The generator seed, for ``qp data synth``.
        size: Canvas size of a generated image.
    """

    index: int
    name: str
    params: tuple[VtracerParams, ...]
    group: str
    source: str = ""
    origin: str | None = None
    synth_seed: int | None = None
    size: int = 256


def stable_int(text: str) -> int:
    """A process-independent 64-bit integer of ``text`` (``hash()`` is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def params_for(track: Track, seed: int, key: str, per_image: int) -> tuple[VtracerParams, ...]:
    """The parameter draws of one image: a function of the seed and the image only."""
    rng = np.random.default_rng([seed, stable_int(key)])
    return tuple(draw_params(track, rng, per_image))


def collect_inputs(inputs: Iterable[str]) -> list[Path]:
    """Expand files, folders (recursively, image files only) and globs, in order.

    Raises:
        QPError: For an input that is no file, no folder and matches nothing.
    """
    found: list[Path] = []
    missing: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif GLOB_CHARS & set(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                missing.append(f"{text}: the pattern matches no file")
            found += files
        else:
            missing.append(f"{text}: no such file or folder")
    if missing:
        raise QPError("Cannot read the inputs:\n  " + "\n  ".join(missing))
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def output_names(paths: Iterable[Path]) -> list[str]:
    """Each file keeps its name; a numeric suffix only on a collision."""
    taken: set[str] = set()
    names = []
    for path in paths:
        name, n = path.name, 1
        while name.lower() in taken:
            name = f"{path.stem}-{n}{path.suffix}"
            n += 1
        taken.add(name.lower())
        names.append(name)
    return names


def label_jobs(inputs: Iterable[str], track: Track, per_image: int, seed: int) -> list[Job]:
    """Jobs for ``qp data label``: one per input image."""
    paths = collect_inputs(inputs)
    jobs = []
    for index, (path, name) in enumerate(zip(paths, output_names(paths), strict=True)):
        rel = f"images/{name}"
        jobs.append(
            Job(
                index,
                rel,
                params_for(track, seed, rel, per_image),
                group=name,
                source=str(path),
                origin=str(path),
            )
        )
    return jobs


def synth_jobs(count: int, track: Track, per_image: int, seed: int, size: int) -> list[Job]:
    """Jobs for ``qp data synth``: one per generated image."""
    return [
        Job(
            i,
            f"images/synth_{i:06d}.png",
            params_for(track, seed, f"synth:{i}", per_image),
            group=f"synth:{i:06d}",
            synth_seed=seed,
            size=size,
        )
        for i in range(count)
    ]
