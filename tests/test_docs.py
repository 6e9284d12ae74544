"""The docs describe what the code has: every hook, config key and built-in param."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from qpcore import hookspecs
from qpcore.config import RunConfig
from qpcore.registry import Registry

from conftest import REPO

DOCS = REPO / "docs"


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if (
            isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
            and name not in ("backbone",)
            and annotation.__name__ != "ComponentRef"
        ):
            keys += leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_hook_is_documented_with_its_signature() -> None:
    """Each hookspec appears in plugins.md as ``name(arg, ...)`` with the
    arguments it really takes, so a new or changed hook cannot go unnoticed."""
    import inspect

    text = (DOCS / "plugins.md").read_text()
    hooks = {
        name: getattr(hookspecs, name)
        for name in dir(hookspecs)
        if name.startswith("qp_") and callable(getattr(hookspecs, name))
    }
    assert set(hooks) == set(hookspecs.REGISTRATION_HOOKS.values()) | {
        n for n in hooks if n.startswith("qp_on_")
    }
    undocumented = [
        f"{name}({', '.join(inspect.signature(hook).parameters)})"
        for name, hook in hooks.items()
        if f"`{name}({', '.join(inspect.signature(hook).parameters)})" not in text
    ]
    assert undocumented == []


def test_every_hook_has_a_test_that_names_it() -> None:
    """A hook no test calls or implements by name can break unnoticed."""
    tests = [p for p in (REPO / "tests").glob("test_*.py") if p.name != "test_docs.py"]
    text = "\n".join(p.read_text() for p in tests)
    hooks = [n for n in dir(hookspecs) if n.startswith("qp_") and callable(getattr(hookspecs, n))]
    assert len(hooks) > 10
    assert [name for name in hooks if name not in text] == []


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "config.md").read_text()
    keys = leaf_keys(RunConfig)
    assert "trainer.early_stopping.patience" in keys
    assert [k for k in keys if f"`{k}`" not in text] == []


@pytest.mark.parametrize(
    ("kind", "doc"),
    [
        ("optimizer", "config.md"),
        ("scheduler", "config.md"),
        ("dataset", "data.md"),
        ("loss", "losses.md"),
        ("backbone", "model.md"),
        ("evaluator", "evaluation.md"),
        ("monitor", "monitors.md"),
        ("executor", "data.md"),
    ],
)
def test_every_builtin_and_param_is_documented(kind: str, doc: str) -> None:
    text = (DOCS / doc).read_text()
    registry = Registry.from_entrypoints(disabled=set())
    missing = []
    for entry in registry.entries(kind):  # type: ignore[arg-type]
        if entry.plugin.distribution != "qpcore":
            continue
        spec = entry.spec
        if not re.search(rf"`{spec.name}`", text):
            missing.append(spec.name)
        missing += [f"{spec.name}.{p}" for p in spec.params.model_fields if f"`{p}`" not in text]
    assert missing == []


def test_config_md_lists_the_packaged_monitors() -> None:
    import yaml

    from qpcore.config_io import packaged_configs

    text = (DOCS / "config.md").read_text()
    for name in packaged_configs():
        path = REPO / "qpcore" / "defaults" / f"{name}.yaml"
        monitors = yaml.safe_load(path.read_text())["monitors"]
        assert f"`[{', '.join(monitors)}]`" in text, name


def test_the_public_api_is_importable_from_qpcore_without_torch_up_front() -> None:
    import subprocess
    import sys

    import qpcore

    script = "import sys, qpcore; print('torch' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert found.stdout.strip() == "False", found.stderr
    for name in qpcore.__all__:
        assert getattr(qpcore, name) is not None, name
    assert qpcore.Backbone.__module__ == "qpcore.backbone"
    assert qpcore.Section.__module__ == "qpcore.html"
