"""Reading config files and ``--set`` overrides, keeping line numbers for errors.

A config error is only useful if it points at the line to fix, so files are parsed
into plain data *and* a map from each key's dotted path to its line.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from qpcore.config import Path_, RunConfig
from qpcore.errors import ConfigError, ConfigFileError, ConfigIssue
from qpcore.registry import Registry, default_registry
from qpcore.validate import resolve_config

#: The packaged config ``qp train`` uses when given none.
DEFAULT_CONFIG = "default"


def packaged_configs() -> list[str]:
    """Names of the packaged configs (``qp train NAME``), the default first."""
    names = sorted(
        entry.name.removesuffix(".yaml")
        for entry in resources.files("qpcore.defaults").iterdir()
        if entry.name.endswith(".yaml")
    )
    return sorted(names, key=lambda name: name != DEFAULT_CONFIG)


def default_config_text(name: str = DEFAULT_CONFIG) -> str:
    """The text of a packaged config."""
    if name not in packaged_configs():
        known = ", ".join(packaged_configs())
        raise ConfigFileError(f"no packaged config named {name!r}; packaged: {known}")
    return resources.files("qpcore.defaults").joinpath(f"{name}.yaml").read_text("utf-8")


def packaged_name(path: str | Path | None) -> str | None:
    """The packaged config ``path`` names, if it names one and no such file exists.

    A file always wins, so a config called ``random`` in the working folder is read
    as before; a bare word that is neither a file nor a packaged name is left to
    the file reader, whose error then lists the packaged names.
    """
    if path is None:
        return DEFAULT_CONFIG
    text = str(path)
    if Path(text).exists() or text not in packaged_configs():
        return None
    return text


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


#: A config is a few dozen keys; anything far larger is refused before it is
#: walked, because YAML aliases let a few hundred bytes stand for billions of
#: nodes (the "billion laughs" bomb) and every later step would expand them.
MAX_CONFIG_NODES = 20_000
MAX_CONFIG_DEPTH = 50


def parse_config_text(text: str, source: str) -> tuple[dict[str, Any], dict[Path_, int]]:
    """Parse YAML (JSON is YAML too) into data plus a ``path -> line`` map."""
    if not text.strip():
        raise ConfigFileError(f"{source}: the file is empty; a config is a mapping of keys")
    root: yaml.Node | None = None
    try:
        if source.endswith(".json"):
            data = json.loads(text)
            _check_json_size(data, source)
            try:  # JSON is YAML: its nodes give the line map
                root = yaml.compose(text, Loader=yaml.SafeLoader)
            except (yaml.YAMLError, RecursionError):
                root = None
        else:
            loader = _UniqueKeyLoader(text)
            try:
                root = loader.get_single_node()  # type: ignore[no-untyped-call]
                if root is not None:
                    _check_node_size(root, source)
                data = loader.construct_document(root) if root is not None else None  # type: ignore[no-untyped-call]
            finally:
                loader.dispose()  # type: ignore[no-untyped-call]
    except RecursionError as exc:
        raise ConfigFileError(
            f"{source}: nested too deeply to be a config (over {MAX_CONFIG_DEPTH} levels)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"{source}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError(f"{source}{where}: invalid YAML: {problem}") from exc
    if data is None:
        raise ConfigFileError(f"{source}: the file holds no settings (only comments?)")
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"{source}: a config must be a mapping of keys, not a {type(data).__name__}"
        )
    return data, _line_map(root) if root is not None else {}


def _too_big(source: str, line: int | None, depth: int) -> ConfigFileError:
    where = f":{line}" if line is not None else ""
    if depth > MAX_CONFIG_DEPTH:
        return ConfigFileError(
            f"{source}{where}: nested too deeply to be a config (over {MAX_CONFIG_DEPTH} levels)"
        )
    return ConfigFileError(
        f"{source}{where}: too large to be a config (over {MAX_CONFIG_NODES} values once "
        "its aliases are expanded); refused"
    )


def _check_node_size(root: yaml.Node, source: str) -> None:
    """Refuse a document whose alias-expanded tree is huge or deep, without expanding it.

    A node reached through several aliases is the same object, so its expanded
    size is computed once and memoised: the check costs the number of distinct
    nodes, however large the expansion is.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_CONFIG_DEPTH:
            raise _too_big(source, node.start_mark.line + 1, depth)
        if id(node) in sizes:
            return sizes[id(node)]
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total += size(key, depth + 1) + size(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
        if total > MAX_CONFIG_NODES:
            raise _too_big(source, node.start_mark.line + 1, depth)
        sizes[id(node)] = total
        return total

    size(root, 0)


def _check_json_size(data: Any, source: str) -> None:
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > MAX_CONFIG_DEPTH or count > MAX_CONFIG_NODES:
            raise _too_big(source, None, depth)
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


def _line_map(root: yaml.Node) -> dict[Path_, int]:
    lines: dict[Path_, int] = {}

    def visit(node: yaml.Node, path: Path_) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                visit(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, i)] = item.start_mark.line + 1
                visit(item, (*path, i))

    visit(root, ())
    return lines


def read_config_file(path: str | Path) -> tuple[dict[str, Any], dict[Path_, int]]:
    """Read and parse a YAML or JSON config file."""
    path = Path(path)
    if not path.exists():
        hint = ""
        if not path.suffix and len(path.parts) == 1:  # a bare word: maybe a mistyped name
            hint = f" (nor a packaged config name: {', '.join(packaged_configs())})"
        raise ConfigFileError(f"{path}: no such config file{hint}")
    if path.is_dir():
        raise ConfigFileError(f"{path}: is a folder, not a config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_config_text(text, str(path))


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> list[Path_]:
    """Apply ``dotted.key=value`` overrides in place; values are parsed as YAML.

    ``scheduler.patience=3`` on ``scheduler: reduce_on_plateau`` expands the bare
    name to ``{name: reduce_on_plateau, patience: 3}``; a numeric part indexes a list.

    Returns:
        The paths that were set, so errors there can point at ``--set``.
    """
    issues: list[ConfigIssue] = []
    paths: list[Path_] = []
    for text in overrides:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            issues.append(ConfigIssue("--set", f"{text!r} is not of the form dotted.key=value"))
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        problem = _set_path(data, parts, value)
        if problem:
            issues.append(ConfigIssue(key.strip(), f"--set: {problem}"))
        else:
            paths.append(tuple(int(p) if p.isdigit() else p for p in parts))
    if issues:
        raise ConfigError(issues, "--set")
    return paths


def _set_path(node: Any, parts: list[str], value: Any) -> str | None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"{part!r} is not an index of this list (length {len(node)})"
            if last:
                node[int(part)] = value
                return None
            if isinstance(node[int(part)], str):
                node[int(part)] = {"name": node[int(part)]}
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            return f"cannot set {part!r} inside a {type(node).__name__}"
        if last:
            node[part] = value
            return None
        child = node.get(part)
        if isinstance(child, str):  # a bare component name gains params
            node[part] = {"name": child}
        elif not isinstance(child, (dict, list)):
            node[part] = {}
        node = node[part]
    return None


def load_run_config(
    path: str | Path | Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
    registry: Registry | None = None,
    strict: bool = True,
) -> RunConfig:
    """Load a config file (the packaged default, or a mapping), apply overrides, validate.

    Raises:
        ConfigFileError: The file is missing, empty or not valid YAML/JSON.
        ConfigError: Every structural and parameter problem, with paths and lines.
        PluginError: A broken plugin or a name provided twice.
    """
    data, lines, source = read_config_source(path)
    overridden = apply_overrides(data, overrides)
    registry = registry or default_registry()
    return resolve_config(data, registry, source, lines, strict, overridden)


def read_config_source(
    path: str | Path | Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[Path_, int], str]:
    """The raw data of a config file, a packaged config (``None``: the
    default) or a mapping (copied), its line map and the name messages give
    it; for callers that must keep the data as written (a sweep stores it)
    before it is resolved."""
    if isinstance(path, Mapping):
        return copy.deepcopy(dict(path)), {}, "the config given"
    name = packaged_name(path)
    if name is not None:
        source = f"packaged config {name} ({name}.yaml)"
        data, lines = parse_config_text(default_config_text(name), source)
        return data, lines, source
    assert path is not None
    data, lines = read_config_file(path)
    return data, lines, str(path)


def dump_yaml(cfg: RunConfig | Mapping[str, Any]) -> str:
    """The config as YAML, keys in declaration order."""
    data = cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
