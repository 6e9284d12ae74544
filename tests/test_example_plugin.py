"""The example third-party plugin, installed for real with pip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO, pip_install_offline

QP = str(Path(sys.executable).parent / "qp")
EXAMPLE = REPO / "examples" / "qp-plugin-example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the example into its own target folder (the venv stays clean)."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    # Build from a copy: setuptools writes build/ and *.egg-info into the source.
    source = tmp_path_factory.mktemp("src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source)
    pip_install_offline(target, build, source)
    assert list(target.glob("qp_plugin_example-0.1.0.dist-info"))
    return target


def test_listed_with_its_distribution(installed: Path, on_path: Callable[[Path], None]) -> None:
    on_path(installed)
    out = subprocess.run(
        [QP, "plugins", "--kind", "loss", "--json"], capture_output=True, text=True, check=True
    ).stdout
    (row,) = [r for r in json.loads(out) if r["name"] == "log_cosh"]
    assert row["distribution"] == "qp-plugin-example"
    assert row["version"] == "0.1.0"
    assert row["plugin"] == "qp_plugin_example"
    assert row["status"] == "ok"


def test_picked_by_name_and_params_validated(
    installed: Path, components_dir: Path, on_path: Callable[[Path], None], tmp_path: Path
) -> None:
    on_path(installed)
    on_path(components_dir)
    config = tmp_path / "run.yaml"
    config.write_text(
        "data: test_rows\nmodel: {backbone: test_features}\nloss: {name: log_cosh, scale: 4}\n"
    )
    ok = subprocess.run([QP, "config", "show", str(config)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "loss:\n  name: log_cosh\n  scale: 4.0\n" in ok.stdout
    bad = subprocess.run(
        [QP, "config", "validate", str(config), "--set", "loss.scale=0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "--set loss.scale: Input should be greater than 0" in bad.stderr
    typo = subprocess.run(
        [QP, "config", "validate", str(config), "--set", "loss.name=log_cos"],
        capture_output=True,
        text=True,
    )
    assert "Unknown loss 'log_cos'. Did you mean 'log_cosh'?" in typo.stderr


def test_the_plugins_own_tests_pass_with_the_qpcore_pytest_plugin(
    installed: Path, on_path: Callable[[Path], None], tmp_path: Path
) -> None:
    # The example's tests use the `qp_registry` fixture, which only exists if
    # qpcore's pytest11 plugin loads in a separate pytest run.
    on_path(installed)
    tests = shutil.copytree(EXAMPLE / "tests", tmp_path / "tests")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
