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


def test_every_hook_is_documented() -> None:
    text = (DOCS / "plugins.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("qp_")]
    assert len(hooks) == 14
    assert [h for h in hooks if f"`{h}(" not in text] == []


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
