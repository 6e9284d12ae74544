"""``qp plugin new``: every kind's package installs, registers and passes its own tests.

The round trip is what a plugin author does: generate, ``pip install``, ``qp
plugins``, ``pytest``. Installing and starting pytest dominate the cost, so the
packages of all kinds are installed with one pip call into one target folder and
their tests run in one pytest process (results read back per kind from its
JUnit XML); each package's tests still run exactly as generated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from qpcore.cli import cli
from qpcore.scaffold import MAX_NAME, PluginNames, template_text
from qpcore.specs import KINDS

from conftest import pip_install_offline

BIN = Path(sys.executable).parent
QP = str(BIN / "qp")
RUFF = BIN / "ruff"


def component(kind: str) -> str:
    return f"tpl_{kind}"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One generated package per kind, written by the command itself."""
    root = tmp_path_factory.mktemp("generated")
    out = {}
    for kind in KINDS:
        folder = root / PluginNames.of(component(kind), kind).distribution
        code, stdout, stderr = invoke(
            "plugin", "new", component(kind), "--kind", kind, "--out", str(folder)
        )
        assert code == 0, stderr
        assert f"Wrote {folder}" in stdout
        out[kind] = folder
    return out


@pytest.fixture(scope="module")
def site(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install every generated package into one target folder, offline."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    pip_install_offline(target, build, *packages.values())
    return target


def environment(site: Path) -> dict[str, str]:
    extra = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), extra) if p)}


@pytest.fixture(scope="module")
def listed(site: Path) -> dict[str, dict[str, object]]:
    """``qp plugins --json`` with the packages installed, by component name."""
    run = subprocess.run(
        [QP, "plugins", "--json"], capture_output=True, text=True, env=environment(site)
    )
    assert run.returncode == 0, run.stderr
    return {row["name"]: row for row in json.loads(run.stdout) if row["name"]}


@dataclass(frozen=True)
class Outcome:
    """One generated test: its file, name and how it ended."""

    file: str
    name: str
    status: str  # passed, failed, error or skipped
    message: str


@pytest.fixture(scope="module")
def generated_run(
    packages: dict[str, Path], site: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Outcome], str]:
    """The generated tests of every kind whose kit check exists, in one pytest run.

    Run from outside the packages (and with the installed copies on the path),
    so they test what pip installed, not the source folders.
    """
    root = tmp_path_factory.mktemp("pytest")
    ini = root / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    report = root / "junit.xml"
    pytest_bin = BIN / "pytest"
    command = [str(pytest_bin)] if pytest_bin.exists() else [sys.executable, "-m", "pytest"]
    dirs = [str(packages[kind] / "tests") for kind in KINDS]
    run = subprocess.run(
        [
            *command,
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ini),
            "--rootdir",
            str(root),
            f"--junitxml={report}",
            *dirs,
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env=environment(site),
    )
    output = run.stdout[-6000:] + run.stderr[-3000:]
    if not report.exists():
        return [], output
    outcomes = []
    for case in ET.parse(report).getroot().iter("testcase"):
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status, message = child.tag, child.get("message", "")
        outcomes.append(Outcome(case.get("classname", ""), case.get("name", ""), status, message))
    return outcomes, output


def test_names_follow_the_convention() -> None:
    names = PluginNames.of("my_loss", "loss")
    assert (names.distribution, names.package, names.component, names.params) == (
        "qp-my-loss",
        "qp_my_loss",
        "MyLoss",
        "MyLossParams",
    )
    assert PluginNames.of("tiny", "monitor").component == "TinyMonitor"
    # A class called Backbone would shadow the base class the module imports.
    assert PluginNames.of("backbone", "backbone").component == "BackboneBackbone"
    assert PluginNames.of("x__y_", "loss").distribution == "qp-x-y"


def test_every_kind_has_its_templates() -> None:
    # Read through importlib.resources, as an installed wheel serves them.
    for kind in KINDS:
        assert "$hook" in template_text(f"{kind}.py.tmpl")
        assert f"assert_{kind}_conforms" in template_text(f"test_{kind}.py.tmpl")


def test_writes_a_complete_package_that_lints_clean(packages: dict[str, Path]) -> None:
    for kind, folder in packages.items():
        package = f"qp_{component(kind)}"
        # pip builds in the source folder (build/, *.egg-info): not the scaffold's.
        files = {
            str(p.relative_to(folder))
            for p in folder.rglob("*")
            if p.is_file() and not {"build", f"{package}.egg-info"} & set(p.parts)
        }
        assert files == {
            "README.md",
            "pyproject.toml",
            f"{package}/__init__.py",
            f"tests/test_{component(kind)}.py",
        }, kind
        pyproject = (folder / "pyproject.toml").read_text(encoding="utf-8")
        assert f'[project.entry-points.qpcore]\n{package} = "{package}"\n' in pyproject
        assert "`$" not in (folder / "README.md").read_text(encoding="utf-8")
    folders = [str(p) for p in packages.values()]
    for args in (["check"], ["format", "--check"]):
        run = subprocess.run([str(RUFF), *args, *folders], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_qp_plugins_lists_the_new_component(
    kind: str, listed: dict[str, dict[str, object]]
) -> None:
    row = listed.get(component(kind))
    assert row is not None, f"{component(kind)} is not listed"
    assert row["kind"] == kind
    assert row["distribution"] == PluginNames.of(component(kind), kind).distribution
    assert (row["version"], row["plugin"], row["status"]) == (
        "0.1.0",
        f"qp_{component(kind)}",
        "ok",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_generated_tests_pass(kind: str, generated_run: tuple[list[Outcome], str]) -> None:
    outcomes, output = generated_run
    mine = [o for o in outcomes if o.file.endswith(f"test_{component(kind)}")]
    assert len(mine) >= 4, output
    bad = [f"{o.name}: {o.status} {o.message}" for o in mine if o.status != "passed"]
    assert not bad, "\n".join(bad) + "\n" + output
    assert "test_conforms" in {o.name for o in mine}


def test_refuses_a_bad_name(tmp_path: Path) -> None:
    for name in ("MyLoss", "9lives", "my-loss", "_x", "x" * (MAX_NAME + 1)):
        code, _, err = invoke("plugin", "new", name, "--kind", "loss", "--out", str(tmp_path / "p"))
        assert code == 2, name
        assert f"Error: {name!r} is" in err
    assert not (tmp_path / "p").exists()


def test_refuses_an_unknown_kind(tmp_path: Path) -> None:
    code, _, err = invoke("plugin", "new", "tiny", "--kind", "lossy", "--out", str(tmp_path / "p"))
    assert code == 2 and "Invalid value for '--kind'" in err
    assert not (tmp_path / "p").exists()


def test_refuses_a_folder_that_holds_something(tmp_path: Path) -> None:
    folder = tmp_path / "qp-tiny"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    code, _, err = invoke("plugin", "new", "tiny", "--kind", "loss", "--out", str(folder))
    assert code == 2 and f"Error: {folder}: already exists" in err
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("")
    code, _, err = invoke("plugin", "new", "tiny", "--kind", "loss", "--out", str(a_file))
    assert code == 2


def test_writes_into_an_empty_folder_and_defaults_to_qp_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    code, _, _ = invoke("plugin", "new", "tiny", "--kind", "loss", "--out", str(tmp_path / "empty"))
    assert code == 0 and (tmp_path / "empty" / "qp_tiny" / "__init__.py").is_file()
    monkeypatch.chdir(tmp_path)
    code, out, _ = invoke("plugin", "new", "tiny_two", "--kind", "optimizer")
    assert code == 0 and (tmp_path / "qp-tiny-two" / "pyproject.toml").is_file()
    assert "pip install -e './qp-tiny-two[test]'" in out


def test_refuses_a_name_already_installed(tmp_path: Path) -> None:
    # A component name offered twice stops every qp command; a second qp_NAME
    # module would shadow the first.
    code, _, err = invoke("plugin", "new", "mae", "--kind", "loss", "--out", str(tmp_path / "a"))
    assert code == 2 and "loss 'mae' is already offered by the plugin qp_losses" in err
    code, _, err = invoke("plugin", "new", "losses", "--kind", "loss", "--out", str(tmp_path / "b"))
    assert code == 2 and "a module called qp_losses is already importable" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_help_names_the_convention() -> None:
    code, out, _ = invoke("plugin", "new", "--help")
    assert code == 0
    assert "qp-NAME" in out and "qp_NAME" in out
