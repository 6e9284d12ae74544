"""Images to backbone inputs, and the on-disk cache of frozen backbones' features.

A frozen backbone gives an image the same features every epoch, so recomputing
them (the seed's design) spends nearly all of training in the backbone. Features
are computed once per (images, backbone) and stored under the cache root, keyed
by the images' bytes and the backbone's :meth:`~qpcore.backbone.Backbone.identity`
(its knobs, preprocessing, code version and weights): a changed image or a
changed backbone is a new key, never a stale hit. A new set of images takes the
rows it shares with sets stored before, so each image is computed once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from qpcore.backbone import Backbone
from qpcore.data.dataset import cache_root
from qpcore.data.pool import TimeLimit
from qpcore.data.protocol import load_image
from qpcore.errors import QPError, UnreadableImage
from qpcore.executor import Executor
from qpcore.fileio import write_atomic, write_atomic_with

Augment = Sequence[str]


def flip(pixels: np.ndarray, augment: Augment, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal/vertical flips: the vectorized quality of a flipped icon
    is the same, so the label stays valid."""
    if "hflip" in augment and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    if "vflip" in augment and rng.random() < 0.5:
        pixels = pixels[::-1]
    return np.ascontiguousarray(pixels)


class ImageInputs(Dataset):
    """Decodes image files and preprocesses them for the model's backbones.

    Flips, when asked, are drawn from ``(seed, epoch, index)``, so an epoch sees
    the same flips whatever the worker count, and again after a resume.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        preprocess: Callable[[np.ndarray], tuple[Tensor, ...]],
        augment: Augment = (),
        seed: int = 0,
    ) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess
        self.augment = tuple(augment)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        path = self.paths[index]
        try:
            pixels = load_image(path)
        except (UnreadableImage, OSError) as exc:
            raise QPError(f"{path}: {exc}") from exc
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            pixels = flip(pixels, self.augment, rng)
        return self.preprocess(pixels)


class _Single:
    """One backbone's preprocessing as a 1-tuple; a class, not a lambda, so that
    worker processes started with spawn (macOS) can unpickle it."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def __call__(self, pixels: np.ndarray) -> tuple[Tensor, ...]:
        return (self.backbone.preprocess(pixels),)


def compute_features(
    backbone: Backbone,
    paths: Sequence[Path],
    batch_size: int = 32,
    num_workers: int = 0,
    device: torch.device | None = None,
    desc: str = "features",
    progress: bool = True,
) -> np.ndarray:
    """``[len(paths), num_features]`` float32 features, no cache involved."""
    device = device or torch.device("cpu")
    dataset = ImageInputs(paths, _Single(backbone))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    backbone.to(device).eval()
    out = np.empty((len(paths), backbone.num_features), dtype=np.float32)
    done = 0
    with (
        torch.no_grad(),
        tqdm(total=len(paths), desc=desc, unit="img", leave=False, disable=not progress) as bar,
    ):
        for (batch,) in loader:
            values = backbone(batch.to(device)).flatten(1).float().cpu().numpy()
            out[done : done + len(values)] = values
            done += len(values)
            bar.update(len(values))
    return out


#: Images per task when an executor computes features: big enough that a task's
#: overhead (about 20 ms on Ray) is small against its work.
CHUNK = 64


@dataclass(frozen=True)
class _Chunk:
    index: int
    paths: tuple[str, ...]


def _chunk_features(chunk: _Chunk, backbone: Backbone, batch_size: int) -> tuple[int, Any]:
    try:
        paths = [Path(p) for p in chunk.paths]
        return chunk.index, compute_features(backbone, paths, batch_size, progress=False)
    except QPError as exc:  # an unreadable image: the caller raises it
        return chunk.index, str(exc)


def compute_features_on(
    executor: Executor,
    backbone: Backbone,
    paths: Sequence[Path],
    batch_size: int = 32,
    desc: str = "features",
    progress: bool = True,
) -> np.ndarray:
    """:func:`compute_features` with the work cut into chunks run by ``executor``
    (local processes, or a Ray cluster); the rows come back in ``paths`` order."""
    chunks = [
        _Chunk(i, tuple(str(p) for p in paths[start : start + CHUNK]))
        for i, start in enumerate(range(0, len(paths), CHUNK))
    ]
    call = partial(_chunk_features, backbone=backbone.cpu().eval(), batch_size=batch_size)
    out = np.empty((len(paths), backbone.num_features), dtype=np.float32)
    with tqdm(total=len(paths), desc=desc, unit="img", leave=False, disable=not progress) as bar:
        for index, value in executor.run(chunks, call, lambda c, e: (c.index, e), TimeLimit()):
            if isinstance(value, str):
                raise QPError(f"{desc}: {value}")
            out[index * CHUNK : index * CHUNK + len(value)] = value
            bar.update(len(value))
    return out


def image_digest(path: Path) -> str:
    """Digest of one image's bytes: what the cache knows an image by."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise QPError(f"{path}: cannot read image ({exc})") from exc


def cached_features(
    backbone: Backbone,
    paths: Sequence[Path],
    root: Path,
    batch_size: int = 32,
    num_workers: int = 0,
    device: torch.device | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> tuple[np.ndarray, bool]:
    """Features of ``paths`` (one row per path, repeats allowed) from the cache,
    computing and storing the missing set (on ``executor`` when one is given).
    Returns ``(features, hit)``."""
    # Rows are stored by sorted image content, so another split, order or file
    # name of the same images is a hit.
    digest_of = {path: image_digest(path) for path in dict.fromkeys(Path(p) for p in paths)}
    digests = sorted(set(digest_of.values()))
    row = {d: i for i, d in enumerate(digests)}
    first = {d: path for path, d in reversed(digest_of.items())}
    name = backbone.describe().get("name", "backbone")
    folder = root / "features" / f"{name}-{backbone.identity()}"
    key = hashlib.sha256("\n".join(digests).encode()).hexdigest()[:24]
    file = folder / f"{key}.npy"
    table: np.ndarray | None = None
    if file.is_file():
        try:
            table = np.load(file, allow_pickle=False)
        except (OSError, ValueError):
            table = None  # a damaged entry is recomputed, not trusted
        if table is not None and table.shape != (len(digests), backbone.num_features):
            table = None
    hit = table is not None
    if table is None:
        table = np.zeros((len(digests), backbone.num_features), np.float32)
        known = _stored_rows(folder, row, table)
        todo = [d for d in digests if d not in known]
        if todo and executor is not None:
            table[[row[d] for d in todo]] = compute_features_on(
                executor, backbone, [first[d] for d in todo], batch_size, name, progress
            )
        elif todo:
            table[[row[d] for d in todo]] = compute_features(
                backbone,
                [first[d] for d in todo],
                batch_size,
                num_workers,
                device,
                desc=name,
                progress=progress,
            )
        hit = not todo
        _save_atomic(file, table)
        _save_text_atomic(file.with_suffix(".digests"), "\n".join(digests) + "\n")
    return table[[row[digest_of[Path(p)]] for p in paths]], hit


def _stored_rows(folder: Path, row: dict[str, int], table: np.ndarray) -> set[str]:
    """Fill ``table`` with rows other stored sets hold; return the digests found.

    Why: held-out folds, a corpus plus its subsets, a training set plus the images
    an evaluation adds all overlap; each image is then computed once, not once per
    set. Each stored set lists its digests in a ``.digests`` file beside its table.
    """
    found: set[str] = set()
    if not folder.is_dir():
        return found
    for listing in sorted(folder.glob("*.digests")):
        if len(found) == len(row):
            break
        try:
            stored = listing.read_text(encoding="ascii").split()
            wanted = [(i, d) for i, d in enumerate(stored) if d in row and d not in found]
            if not wanted:
                continue
            rows = np.load(listing.with_suffix(".npy"), mmap_mode="r", allow_pickle=False)
            if rows.shape != (len(stored), table.shape[1]):
                continue
            for i, digest in wanted:
                table[row[digest]] = rows[i]
                found.add(digest)
        except (OSError, ValueError):
            continue  # a damaged entry is recomputed, not trusted
    return found


def model_features(
    backbones: Sequence[Backbone],
    paths: Sequence[Path],
    num_workers: int = 0,
    device: torch.device | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> tuple[Tensor, bool]:
    """``[len(paths), sum of widths]``: every backbone's cached features side by
    side, as the model concatenates them; also whether all were cache hits.
    With an ``executor``, missing features are computed there, on CPUs."""
    tables, hits = [], []
    for backbone in backbones:
        table, hit = cached_features(
            backbone,
            paths,
            cache_root(),
            num_workers=num_workers,
            device=device,
            progress=progress,
            executor=executor,
        )
        tables.append(table)
        hits.append(hit)
    return torch.from_numpy(np.concatenate(tables, axis=1)), all(hits)


def _save_text_atomic(file: Path, text: str) -> None:
    write_atomic(file, text, "the feature cache")


def _save_atomic(file: Path, array: np.ndarray) -> None:
    write_atomic_with(
        file, lambda handle: np.save(handle, array, allow_pickle=False), "the feature cache"
    )
