"""The qp command line, through click's runner and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from qpcore import __version__
from qpcore.cli import cli

from conftest import make_distribution

QP = str(Path(sys.executable).parent / "qp")

GOOD = """\
data: test_rows
model: {backbone: test_features}
loss: {name: ranking, margin: 0.05}
scheduler: cosine
"""


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    assert invoke("--version") == (0, f"qp {__version__}\n", "")


def test_every_command_has_help() -> None:
    for args in (
        [],
        ["plugins"],
        ["config"],
        ["config", "validate"],
        ["config", "show"],
        ["config", "schema"],
    ):
        code, out, _ = invoke(*args, "--help")
        assert code == 0
        assert "Usage: " in out and len(out.splitlines()) > 4


def test_plugins_table_and_json() -> None:
    code, out, err = invoke("plugins")
    assert code == 0 and err == ""
    header, *rows = out.splitlines()
    assert header.split() == [
        "NAME",
        "KIND",
        "SUMMARY",
        "PLUGIN",
        "DISTRIBUTION",
        "VERSION",
        "STATUS",
    ]
    assert any(row.split()[:2] == ["focal", "loss"] for row in rows)
    code, out, _ = invoke("plugins", "--json", "--kind", "scheduler")
    listed = json.loads(out)
    assert {r["name"] for r in listed} == {"cosine", "onecycle", "reduce_on_plateau", "step"}
    plateau = next(r for r in listed if r["name"] == "reduce_on_plateau")
    assert plateau["distribution"] == "qpcore" and plateau["status"] == "ok"
    assert plateau["plugin"] == "qp_schedulers"


def test_plugins_rejects_an_unknown_kind() -> None:
    code, _, err = invoke("plugins", "--kind", "lossess")
    assert code == 2 and "Invalid value for '--kind'" in err


def test_validate_ok(tmp_path: Path, registry: object) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(GOOD)
    code, out, _ = invoke("config", "validate", str(path))
    assert code == 0
    picked = "data=test_rows, loss=ranking, optimizer=adam, scheduler=cosine"
    assert out == f"{path}: OK ({picked}, backbone=test_features)\n"


def test_validate_errors_exit_2_without_traceback(tmp_path: Path, registry: object) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(GOOD.replace("0.05", "-1"))
    code, out, err = invoke("config", "validate", str(path), "--set", "trainer.epochs=0")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"Error: 2 config errors in {path}:",
        "  line 3: loss.margin: Input should be greater than or equal to 0",
        "  --set trainer.epochs: Input should be greater than or equal to 1",
    ]
    assert "Traceback" not in err


def test_traceback_only_when_asked(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    code, _, err = invoke("config", "validate", missing)
    assert (code, err) == (2, f"Error: {missing}: no such config file\n")
    result = CliRunner().invoke(cli, ["--traceback", "config", "validate", missing])
    assert result.exit_code == 1 and type(result.exception).__name__ == "ConfigFileError"
    result = CliRunner().invoke(cli, ["config", "validate", missing], env={"QP_DEBUG": "1"})
    assert type(result.exception).__name__ == "ConfigFileError"


def test_show_default_resolves_every_component() -> None:
    code, out, _ = invoke("config", "show")
    assert code == 0
    assert not out.startswith("#")  # nothing left unresolved
    assert "  backbone:\n    name: vectorizer\n" in out
    assert "  cache_dir: null\n" in out  # the synthetic dataset, resolved
    assert "  ssim_weight: 1.0\n" in out  # the combined loss, resolved with its defaults


def test_packaged_configs_are_picked_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = invoke("train", "--help")
    assert code == 0 and "packaged config (default, random;" in " ".join(out.split())
    code, out, _ = invoke("config", "show", "random")
    assert code == 0
    assert "  backbone:\n    name: vectorizer_response\n" in out
    assert "  params_input: true\n" in out and "  track: random\n" in out
    # A file of that name still wins, as before packaged names existed.
    monkeypatch.chdir(tmp_path)
    Path("random").write_text("model: {backbone: image_stats}\ndata: synthetic\n")
    code, out, _ = invoke("config", "show", "random")
    assert code == 0 and "    name: image_stats\n" in out
    code, _, err = invoke("config", "validate", "nonesuch")
    assert code == 2 and "nor a packaged config name: default, random" in err


def test_show_file_prints_resolved_yaml(tmp_path: Path, registry: object) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(GOOD)
    code, out, _ = invoke("config", "show", str(path), "--set", "trainer.epochs=3")
    assert code == 0
    assert "loss:\n  name: ranking\n  margin: 0.05\n" in out
    assert "  epochs: 3\n" in out and "  warmup_epochs: 0\n" in out


def test_schema_covers_installed_params(tmp_path: Path) -> None:
    code, out, _ = invoke("config", "schema")
    assert code == 0
    schema = json.loads(out)
    loss = schema["properties"]["loss"]["anyOf"]
    assert "focal" in loss[0]["enum"]
    assert {"$ref": "#/$defs/loss__focal"} in loss
    focal = schema["$defs"]["loss__focal"]
    assert focal["properties"]["name"]["const"] == "focal"
    assert "gamma" in focal["properties"] and focal["additionalProperties"] is False
    monitor = schema["$defs"]["scheduler__reduce_on_plateau"]
    assert "val_loss" in monitor["properties"]["monitor"]["enum"]
    out_file = tmp_path / "schema.json"
    assert invoke("config", "schema", "--out", str(out_file))[0] == 0
    assert json.loads(out_file.read_text()) == schema


def test_broken_plugin_through_a_real_process(
    tmp_path: Path, on_path: Callable[[Path], None], components_dir: Path
) -> None:
    on_path(components_dir)
    on_path(
        make_distribution(
            tmp_path, "qp-extra", "2.3.1", {"qp_extra": "import timm_x\n"}, {"qp_extra": "qp_extra"}
        )
    )
    listed = subprocess.run([QP, "plugins", "--json"], capture_output=True, text=True)
    assert listed.returncode == 2
    broken = [r for r in json.loads(listed.stdout) if r["status"] == "broken"]
    assert [(r["plugin"], r["distribution"], r["version"]) for r in broken] == [
        ("qp_extra", "qp-extra", "2.3.1")
    ]
    assert "No module named 'timm_x'. Fix it or set QP_DISABLE_PLUGINS=qp-extra" in listed.stderr
    config = tmp_path / "run.yaml"
    config.write_text(GOOD)
    refused = subprocess.run(
        [QP, "config", "validate", str(config)], capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("Error: Cannot load plugin qp_extra from qp-extra 2.3.1:")
    assert "Traceback" not in refused.stderr
    import os

    env = {**os.environ, "QP_DISABLE_PLUGINS": "qp-extra"}
    accepted = subprocess.run(
        [QP, "config", "validate", str(config)], capture_output=True, text=True, env=env
    )
    assert accepted.returncode == 0, accepted.stderr


@pytest.mark.parametrize(
    ("text", "message"), [("", "the file is empty"), ("a: [1,\n", "invalid YAML")]
)
def test_bad_files_exit_2(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    code, _, err = invoke("config", "validate", str(path))
    assert code == 2 and message in err and "Traceback" not in err


def test_schema_to_an_unwritable_place_exits_2(tmp_path: Path) -> None:
    code, _, err = invoke("config", "schema", "--out", str(tmp_path / "no" / "such" / "x.json"))
    assert code == 2 and "cannot write" in err and "Internal error" not in err


def test_debug_variable_false_means_off(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["config", "validate", str(tmp_path / "x.yaml")], env={"QP_DEBUG": "false"}
    )
    assert result.exit_code == 2 and result.exception is not None
    assert type(result.exception) is SystemExit


def test_misspelt_disable_name_is_warned_about() -> None:
    code, _, err = invoke("plugins", env={"QP_DISABLE_PLUGINS": "qp_lossez"})
    assert code == 0
    assert "Warning: QP_DISABLE_PLUGINS names 'qp-lossez', which matches no plugin." in err


def test_the_command_line_starts_without_torch() -> None:
    """``qp --help`` and ``--version`` must not pay for torch: the heavy commands
    load when they run, and their listed help is the commands' own."""
    import importlib

    from qpcore.cli import LAZY_COMMANDS

    script = "import sys, qpcore.cli; print('torch' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert found.stdout.strip() == "False", found.stderr
    for name, (module, attribute, short) in LAZY_COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        assert command.get_short_help_str(1000) == short, name
    listed = CliRunner().invoke(cli, ["--help"]).output
    assert all(f"  {name} " in listed for name in [*LAZY_COMMANDS, "plugins", "config"])


def test_listing_plugins_and_validating_configs_import_no_heavy_library() -> None:
    """``qp plugins`` and ``qp config validate`` need only names and params
    models; plugins that imported torch, scipy or matplotlib to register made
    both take seconds. Factories import what they build when called."""
    script = (
        "import sys\n"
        "from qpcore.config_io import load_run_config, packaged_configs\n"
        "from qpcore.registry import Registry\n"
        "registry = Registry.from_entrypoints()\n"
        "assert registry.problems() == [], registry.problems()\n"
        "for name in packaged_configs():\n"
        "    load_run_config(name, registry=registry)\n"
        "loaded = {name.partition('.')[0] for name in sys.modules}\n"
        "print(sorted(loaded & {'torch', 'torchvision', 'scipy', 'matplotlib', 'cv2', 'sklearn'}))"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert found.stdout.strip() == "[]", found.stderr
