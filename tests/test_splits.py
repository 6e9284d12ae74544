"""Group-aware, band-stratified, seeded splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from qpcore.data.manifest import Sample
from qpcore.data.protocol import VtracerParams
from qpcore.data.splits import band_of, split_samples


def rows(n: int, per_group: int = 3, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n // per_group):
        base = float(rng.choice([0.4, 0.7, 0.95]))  # one band per group
        for k in range(per_group):
            out.append(Sample(Path(f"{g}_{k}.png"), base + 0.01 * k, VtracerParams(), f"g{g}"))
    return out


def test_groups_never_cross_splits() -> None:
    split = split_samples(rows(900), 0.15, 0.15, seed=0)
    groups = {name: {s.group for s in part} for name, part in split.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(p) for p in split.values()) == 900


def test_shares_and_bands_follow_the_targets() -> None:
    samples = rows(1200)
    split = split_samples(samples, 0.2, 0.1, seed=1)
    assert len(split["val"]) == pytest.approx(240, abs=6)
    assert len(split["test"]) == pytest.approx(120, abs=6)
    overall = Counter(band_of(s.ssim) for s in samples)
    for part in split.values():
        bands = Counter(band_of(s.ssim) for s in part)
        for band, count in overall.items():
            assert bands[band] / len(part) == pytest.approx(count / len(samples), abs=0.03)


def test_same_seed_same_split_other_seed_other_split() -> None:
    samples = rows(300)
    one = split_samples(samples, 0.15, 0.15, seed=4)
    assert one == split_samples(samples, 0.15, 0.15, seed=4)
    other = split_samples(samples, 0.15, 0.15, seed=5)
    assert {s.group for s in one["val"]} != {s.group for s in other["val"]}


def test_band_edges_are_the_seeds() -> None:
    assert [band_of(v) for v in (0.0, 0.599, 0.6, 0.799, 0.8, 1.0)] == [0, 0, 1, 1, 2, 2]


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError):
        split_samples(rows(30), 0.6, 0.5, seed=0)
