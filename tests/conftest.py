"""Shared fixtures: real (tiny) installed distributions made on disk by the tests.

Plugins reach qpcore only through entry points, so the tests make real
``*.dist-info`` folders on a path entry instead of patching the loader.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qpcore.registry import Registry, default_registry

REPO = Path(__file__).resolve().parents[1]

# A dataset and a backbone for config tests, until built-ins of those kinds exist.
TEST_COMPONENTS = """
from pydantic import Field
from qpcore import BackboneSpec, DatasetParams, DatasetSpec, Params, hookimpl

class RowsParams(DatasetParams):
    count: int = Field(8, ge=1, description="Rows to make.")

class FeaturesParams(Params):
    width: int = Field(4, ge=1, description="Feature width.")

@hookimpl
def qp_register_datasets():
    return [DatasetSpec("test_rows", lambda p: list(range(p.count)), RowsParams, "Test rows.")]

@hookimpl
def qp_register_backbones():
    return [BackboneSpec("test_features", lambda p: None, FeaturesParams, "Test features.")]
"""


def pip_install_offline(target: Path, build: Path, *sources: Path) -> None:
    """Install ``sources`` into ``target`` as a user would, with pip, but with no
    index and no build isolation (nothing may be downloaded here)."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--target", str(target), *(str(s) for s in sources)],
        check=True,
        capture_output=True,
        env={"PIP_NO_INDEX": "1", "TMPDIR": str(build), "PATH": "/usr/bin:/bin"},
    )


def make_distribution(
    root: Path,
    name: str,
    version: str,
    modules: dict[str, str],
    entry_points: dict[str, str],
) -> Path:
    """Write an installed distribution (modules + dist-info) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[qpcore]\n{lines}\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def components_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A path entry holding the ``qp-test-components`` distribution."""
    return make_distribution(
        tmp_path_factory.mktemp("components"),
        "qp-test-components",
        "1.0",
        {"qp_test_components": TEST_COMPONENTS},
        {"qp_test_components": "qp_test_components"},
    )


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Put path entries on ``sys.path`` and ``PYTHONPATH`` (for subprocesses)."""
    added: list[Path] = []

    def add(path: Path) -> None:
        added.append(path)
        monkeypatch.syspath_prepend(str(path))
        monkeypatch.setenv(
            "PYTHONPATH",
            os.pathsep.join([*(str(p) for p in added), os.environ.get("PYTHONPATH", "")]),
        )
        default_registry.cache_clear()

    yield add
    default_registry.cache_clear()
    for path in added:
        for name in list(sys.modules):
            module = sys.modules[name]
            if str(getattr(module, "__file__", "") or "").startswith(str(path)):
                del sys.modules[name]


@pytest.fixture
def registry(components_dir: Path, on_path: Callable[[Path], None]) -> Registry:
    """Installed plugins plus the test dataset and backbone."""
    on_path(components_dir)
    return default_registry()


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Each test sees the plugins installed for it, never a cache from another test.
    monkeypatch.delenv("QP_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("QP_DEBUG", raising=False)
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    # Datasets and features cached by tests stay out of the user's ~/.cache.
    monkeypatch.setenv("QP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qp-cache"))


def _labelled(folder: Path, count: int, track: str, per_image: int, seed: int) -> Path:
    from qpcore.data.jobs import synth_jobs
    from qpcore.data.labeler import MANIFEST, run_jobs

    jobs = synth_jobs(count, track, per_image, seed, 64)  # type: ignore[arg-type]
    run_jobs(jobs, folder, {"kind": "tests", "track": track}, workers=1, progress=False)
    return folder / MANIFEST


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 generated 64 px images, really labelled on the default track."""
    return _labelled(tmp_path_factory.mktemp("tiny"), 40, "default", 1, 0)


@pytest.fixture(scope="session")
def random_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 generated images with 2 random-track labels each."""
    return _labelled(tmp_path_factory.mktemp("tiny-random"), 20, "random", 2, 1)


@pytest.fixture(scope="session")
def best(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The best checkpoint of a small run trained through ``qp train``; its run
    folder holds ``metrics.jsonl`` beside it."""
    import yaml
    from click.testing import CliRunner
    from test_trainer import run_config

    from qpcore.cli import cli

    folder = tmp_path_factory.mktemp("eval-run")
    cfg = folder / "run.yaml"
    cfg.write_text(yaml.safe_dump(run_config(tiny_manifest, folder)))
    with pytest.MonkeyPatch.context() as patch:  # session scope: _private_cache is not active
        patch.setenv("QP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qp-cache"))
        result = CliRunner().invoke(cli, ["train", str(cfg), "--quiet"])
    assert result.exit_code == 0, result.output
    return folder / "run" / "best.pt"
