"""Train/validation/test splits: by seed, stratified by quality band, group-aware.

Rows of one source image (a ``group``) stay together, or a model would be
validated on images it trained on. Within each quality band, groups are shuffled
by the seed and dealt to the split furthest below its target share of rows, so
every split sees the same mix of easy and hard images.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from qpcore.data.manifest import Sample

#: The seed's quality bands: < 0.6 low, 0.6-0.8 medium, >= 0.8 high.
BAND_EDGES: tuple[float, ...] = (0.6, 0.8)
SPLITS = ("train", "val", "test")

T = TypeVar("T", bound=Sample)


def band_of(value: float, edges: Sequence[float] = BAND_EDGES) -> int:
    """Index of the band ``value`` falls in (0 = lowest)."""
    return bisect.bisect_right(list(edges), value)


def split_samples(samples: Sequence[T], val: float, test: float, seed: int) -> dict[str, list[T]]:
    """Deal ``samples`` into train/val/test by group, stratified by band.

    Args:
        samples: The rows; ``group`` says which must stay together.
        val: Target share of rows for validation.
        test: Target share of rows for test.
        seed: Same seed, same split.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, rows in input order.
    """
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise ValueError("val and test shares must be >= 0 and sum to less than 1")
    assignment = _deal(samples, np.array([1.0 - val - test, val, test]), seed)
    out: dict[str, list[T]] = {name: [] for name in SPLITS}
    for sample in samples:
        out[SPLITS[assignment[sample.group]]].append(sample)
    return out


def fold_samples(samples: Sequence[T], folds: int, seed: int) -> list[list[T]]:
    """Deal ``samples`` into ``folds`` parts of about equal size, by group and
    stratified by band like :func:`split_samples`; rows in input order."""
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    assignment = _deal(samples, np.full(folds, 1.0 / folds), seed)
    out: list[list[T]] = [[] for _ in range(folds)]
    for sample in samples:
        out[assignment[sample.group]].append(sample)
    return out


def _deal(samples: Sequence[Sample], shares: np.ndarray, seed: int) -> dict[str, int]:
    """Group -> part index: within each band, groups in seeded order go to the
    part furthest below its share of rows (ties to the earlier part)."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        members[sample.group].append(i)
    by_band: dict[int, list[str]] = defaultdict(list)
    for group in sorted(members):
        mean = float(np.mean([samples[i].ssim for i in members[group]]))
        by_band[band_of(mean)].append(group)
    assignment: dict[str, int] = {}
    for band in sorted(by_band):
        groups = by_band[band]
        order = np.random.default_rng([seed, band]).permutation(len(groups))
        total = sum(len(members[g]) for g in groups)
        filled = np.zeros(len(shares))
        for k in order:
            group = groups[int(k)]
            deficit = shares * total - filled
            choice = int(np.argmax(np.where(shares > 0, deficit, -np.inf)))
            assignment[group] = choice
            filled[choice] += len(members[group])
    return assignment
