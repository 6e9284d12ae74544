"""Phase 2 of config validation: components by name, params by their own models.

Both phases run on every check and every problem is collected before reporting,
so one run of ``qp config validate`` shows everything that is wrong, each problem
at its dotted path and, where it came from a file, its line.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from qpcore.config import ComponentRef, Path_, RunConfig, dotted, get_at, iter_components, set_at
from qpcore.epoch_metrics import check_metric_name
from qpcore.errors import ConfigError, ConfigIssue
from qpcore.registry import Registry
from qpcore.specs import Kind, SchedulerSpec


def _issues_from(error: ValidationError, prefix: Path_ = ()) -> list[ConfigIssue]:
    issues = []
    for err in error.errors(include_url=False):
        loc = tuple(part for part in err["loc"] if not str(part).startswith("function-"))
        message = err["msg"].removeprefix("Value error, ")
        issues.append(ConfigIssue(dotted((*prefix, *loc)), message))
    return issues


def _split_ref(value: Any) -> tuple[str, dict[str, Any]] | None:
    if isinstance(value, ComponentRef):
        return value.name, value.options
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return value["name"], {k: v for k, v in value.items() if k != "name"}
    return None  # structural problem: phase 1 reports it


def resolve_component(
    name: str, options: dict[str, Any], path: Path_, kind: Kind, registry: Registry
) -> tuple[ComponentRef | None, list[ConfigIssue]]:
    """One component entry at ``path``: its reference with validated params and
    spec, or ``None`` and the problems found (paths under ``path``)."""
    if name not in registry.names(kind):
        return None, [ConfigIssue(dotted((*path, "name")), registry.unknown_message(kind, name))]
    spec = registry.get(kind, name)
    try:
        params = spec.params.model_validate(options)
    except ValidationError as exc:
        return None, _issues_from(exc, path)
    if isinstance(spec, SchedulerSpec) and spec.metric_param:
        try:
            check_metric_name(getattr(params, spec.metric_param))
        except ValueError as exc:
            return None, [ConfigIssue(dotted((*path, spec.metric_param)), str(exc))]
    ref = ComponentRef(name=name, **params.model_dump(mode="json"))
    ref._params, ref._spec = params, spec
    return ref, []


def _cross_checks(cfg: RunConfig) -> list[ConfigIssue]:
    """Rules that span sections, checked once both phases passed."""
    issues = []
    scheduler = cfg.scheduler
    warmup = getattr(scheduler.params, "warmup_epochs", 0) if scheduler else 0
    if warmup >= cfg.trainer.epochs:
        issues.append(
            ConfigIssue(
                "scheduler.warmup_epochs",
                f"must be less than trainer.epochs ({cfg.trainer.epochs}): "
                "warmup would leave the scheduler no epoch",
            )
        )
    if cfg.trainer.batch_size == 1 and cfg.model.head.batch_norm:
        issues.append(
            ConfigIssue(
                "trainer.batch_size",
                "BatchNorm cannot train on batches of one row: use a batch_size of 2 or more, "
                "or set model.head.batch_norm=false",
            )
        )
    return issues


def resolve_config(
    data: Mapping[str, Any],
    registry: Registry,
    source: str | None = None,
    lines: Mapping[Path_, int] | None = None,
    strict: bool = True,
    overridden: Collection[Path_] = (),
    kinds: Collection[Kind] | None = None,
) -> RunConfig:
    """Validate ``data`` in both phases and fill in every component's defaults.

    Args:
        data: The config as plain data (parsed YAML/JSON plus overrides).
        registry: Installed components; must be usable (no broken plugin).
        source: File name for messages.
        lines: ``path -> line`` of the source file, to point at the line at fault.
        strict: When false, a component of a kind that has no installed plugin at
            all is kept as written instead of being an error (``qp config show``
            of the packaged default, before every kind of plugin exists).
        overridden: Paths set by ``--set``: their problems point at ``--set``,
            not at a line of the file.
        kinds: Resolve only components of these kinds and keep the others as
            written (a checkpoint loaded for prediction needs its backbones, not
            the loss or optimizer it was trained with, which may not be installed).
            Cross-section checks are skipped: they concern training.

    Raises:
        ConfigError: Listing every problem with its dotted path (and line).
        PluginError: When a plugin is broken or a name is provided twice.
    """
    registry.ensure_usable()
    issues: list[ConfigIssue] = []
    cfg: RunConfig | None = None
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        issues += _issues_from(exc)
    flagged = {issue.path for issue in issues}
    # Phase 2 runs even when phase 1 failed, on whatever components are readable,
    # so a bad epoch count and a misspelt loss are reported together.
    for path, kind, value in iter_components(cfg.model_dump() if cfg else data):
        ref_parts = _split_ref(value)
        if ref_parts is None or dotted((*path, "name")) in flagged:
            continue
        if not strict and not registry.names(kind):
            continue
        if kinds is not None and kind not in kinds:
            continue
        ref, found = resolve_component(*ref_parts, path, kind, registry)
        issues += found
        if ref is not None and cfg is not None:
            set_at(cfg, path, ref)
    if cfg is not None and not issues and kinds is None:
        issues += _cross_checks(cfg)
    if issues:
        located = [_locate(issue, lines or {}, overridden) for issue in issues]
        # File order reads best; problems without a line come last.
        located.sort(key=lambda i: (i.line is None, i.line or 0))
        raise ConfigError(located, source)
    assert cfg is not None
    return cfg


def _locate(
    issue: ConfigIssue, lines: Mapping[Path_, int], overridden: Collection[Path_]
) -> ConfigIssue:
    parts: Path_ = tuple(int(p) if p.isdigit() else p for p in issue.path.split(".") if p)
    if any(parts[: len(o)] == tuple(o) for o in overridden):
        return ConfigIssue(issue.path, issue.message, from_set=True)
    while parts:
        line = lines.get(parts)
        if line is not None:
            return ConfigIssue(issue.path, issue.message, line)
        parts = parts[:-1]
    return issue


def unresolved_components(cfg: RunConfig) -> list[tuple[str, Kind, str]]:
    """``(path, kind, name)`` of components left as written by a non-strict resolve."""
    missing = []
    for path, kind, value in iter_components(cfg.model_dump()):
        ref = get_at(cfg, path)
        if isinstance(ref, ComponentRef) and ref._params is None:
            missing.append((dotted(path), kind, value["name"]))
    return missing
