"""Datasets by name: manifest, synthetic (cached) and folder; `qp data synth`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from qpcore import QPError
from qpcore.cli import cli
from qpcore.data.dataset import LabelledData
from qpcore.data.manifest import read_manifest
from qpcore.registry import Registry

from imaging import flat_logo, photo_like, save


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def load(registry: Registry, name: str, **options: object) -> LabelledData:
    spec = registry.get("dataset", name)
    return spec.factory(spec.params(**options))


def test_synth_is_the_same_whatever_the_number_of_workers(tmp_path: Path) -> None:
    runner = CliRunner()
    for workers in ("1", "2"):
        result = runner.invoke(
            cli,
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / workers),
                "--count",
                "12",
                "--seed",
                "3",
                "--size",
                "64",
                "--workers",
                workers,
                "--quiet",
            ],
        )
        assert result.exit_code == 0, result.stderr
    one, two = tmp_path / "1", tmp_path / "2"
    assert (one / "manifest.csv").read_text() == (two / "manifest.csv").read_text()
    names = sorted(p.name for p in (one / "images").iterdir())
    assert names == [f"synth_{i:06d}.png" for i in range(12)]
    for name in names:
        assert (one / "images" / name).read_bytes() == (two / "images" / name).read_bytes()
    samples = read_manifest(one / "manifest.csv").samples
    assert all(s.source.startswith("synth:") for s in samples)
    assert len({s.group for s in samples}) == 12


def test_synth_extends_with_a_larger_count(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["data", "synth", "--out", str(tmp_path / "d"), "--size", "48", "--quiet"]
    assert runner.invoke(cli, [*base, "--count", "4"]).exit_code == 0
    result = runner.invoke(cli, [*base, "--count", "6"])
    assert result.exit_code == 0 and "4 already done" in result.stderr
    assert len(read_manifest(tmp_path / "d" / "manifest.csv").samples) == 6


def test_synthetic_dataset_labels_once_then_loads_the_cache(cache: Path) -> None:
    registry = Registry.from_entrypoints(disabled=set())
    options = {"count": 10, "size": 48, "track": "random", "per_image": 2, "workers": 1}
    first = load(registry, "synthetic", **options)
    assert len(first.samples) == 20 and first.protocol == "vtracer-resvg-ssim/v1"
    (folder,) = cache.iterdir()
    manifest = folder / "manifest.csv"
    stamp = manifest.stat().st_mtime_ns
    again = load(registry, "synthetic", **options)
    assert again.samples == first.samples
    assert manifest.stat().st_mtime_ns == stamp  # nothing was labelled again
    other = load(registry, "synthetic", **{**options, "seed": 1})
    assert len(list(cache.iterdir())) == 2 and other.samples != first.samples


def test_a_run_waits_for_a_cache_folder_another_holds_then_reuses_it(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading
    import time

    from qpcore.locking import hold_folder

    registry = Registry.from_entrypoints(disabled=set())
    options = {"count": 4, "size": 48, "workers": 1}
    first = load(registry, "synthetic", **options)
    (folder,) = cache.iterdir()
    held, release = threading.Event(), threading.Event()

    def other_process() -> None:  # a lock file opened apart conflicts as another process's would
        with hold_folder(folder, "labelling run"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=other_process)
    holder.start()
    held.wait(10)
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    again = load(registry, "synthetic", **options)
    holder.join()
    assert time.monotonic() - started >= 0.9 and again.samples == first.samples
    err = capsys.readouterr().err
    assert err.count("waiting:") == 1 and "in use by another labelling run" in err


def test_manifest_and_folder_datasets(tmp_path: Path, cache: Path) -> None:
    for i in range(6):
        save((flat_logo if i % 2 else photo_like)(40), tmp_path / "icons" / f"i{i}.png")
    registry = Registry.from_entrypoints(disabled=set())
    folder = load(registry, "folder", path=str(tmp_path / "icons"), workers=1)
    assert len(folder.samples) == 6
    manifest = load(registry, "manifest", path=str(folder.origin))
    assert [s.ssim for s in manifest.samples] == [s.ssim for s in folder.samples]
    spec = registry.get("dataset", "manifest")
    split = manifest.split(spec.params(path="x", val_fraction=0.34, test_fraction=0.34))
    assert sum(map(len, split.values())) == 6 and all(split.values())


def test_split_knobs_are_validated() -> None:
    spec = Registry.from_entrypoints(disabled=set()).get("dataset", "manifest")
    with pytest.raises(ValueError, match="must be less than 1"):
        spec.params(path="m.csv", val_fraction=0.5, test_fraction=0.5)


def test_default_track_with_several_labels_is_refused(cache: Path) -> None:
    registry = Registry.from_entrypoints(disabled=set())
    with pytest.raises(QPError, match="per_image > 1 needs track: random"):
        load(registry, "synthetic", count=2, per_image=2)
