"""The JSON Schema of a run config, with every installed plugin's params in it.

Editors complete names and params from this schema, so each component slot becomes
a choice between the bare names and one object schema per installed component.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import create_model
from pydantic.json_schema import models_json_schema

from qpcore import __version__
from qpcore.config import KIND_MARK, RunConfig
from qpcore.params import Params
from qpcore.registry import Registry
from qpcore.specs import Kind


def _named_model(kind: Kind, name: str, params: type[Params]) -> type[Params]:
    title = f"{kind}.{name}"
    model: type[Params] = create_model(  # type: ignore[call-overload]
        title.replace(".", "__"),
        __base__=params,
        name=(Literal[name], ...),  # type: ignore[valid-type]
    )
    model.model_config["title"] = title
    return model


def config_schema(registry: Registry) -> dict[str, Any]:
    """JSON Schema (2020-12) of :class:`RunConfig` for the installed plugins."""
    registry.ensure_usable()
    per_kind: dict[Kind, list[tuple[str, type[Params]]]] = {}
    for entry in registry.entries():
        if entry.plugin.status == "ok":
            spec = entry.spec
            per_kind.setdefault(spec.kind, []).append(
                (spec.name, _named_model(spec.kind, spec.name, spec.params))
            )
    models = [(m, "validation") for items in per_kind.values() for _, m in items]
    keys, shared = models_json_schema([(RunConfig, "validation"), *models])
    schema = dict(keys[(RunConfig, "validation")])
    defs = shared.get("$defs", {})
    choices = {
        kind: _choice(kind, [(name, keys[(m, "validation")]) for name, m in items])
        for kind, items in per_kind.items()
    }
    _replace_slots(defs, choices)
    if "$ref" in schema:  # the top model lives in $defs; lift it
        schema = defs.pop(schema["$ref"].rsplit("/", 1)[-1])
        _replace_slots(schema, choices)
    schema["$defs"] = defs
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"qpcore {__version__} run config"
    return schema


def _choice(kind: Kind, options: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    names = [name for name, _ in options]
    return {
        "anyOf": [
            {"type": "string", "enum": names, "description": f"A {kind} with default params."},
            *(ref for _, ref in options),
        ]
    }


def _no_choice() -> dict[str, Any]:
    # No plugin of this kind is installed, so any name is accepted.
    return {
        "anyOf": [
            {"type": "string"},
            {"type": "object", "properties": {"name": {"type": "string"}}},
        ]
    }


def _replace_slots(node: Any, choices: dict[Kind, dict[str, Any]]) -> None:
    """Swap every property marked with ``x-qp-kind`` for that kind's choice."""
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if isinstance(value, dict) and KIND_MARK in value:
                node[key] = _slot(value, choices)
            else:
                _replace_slots(value, choices)
    elif isinstance(node, list):
        for item in node:
            _replace_slots(item, choices)


def _slot(prop: dict[str, Any], choices: dict[Kind, dict[str, Any]]) -> dict[str, Any]:
    kind: Kind = prop[KIND_MARK]
    choice = choices.get(kind) or _no_choice()
    out = {k: v for k, v in prop.items() if k in ("description", "default", "title")}
    if prop.get("type") == "array":
        out.update(type="array", items=choice)
    elif any(option.get("type") == "null" for option in prop.get("anyOf", [])):
        out["anyOf"] = [*choice["anyOf"], {"type": "null"}]
    else:
        out.update(choice)
    return out
