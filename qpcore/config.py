"""The run config: its structure, and its two-phase validation.

Phase 1 checks the structure with no plugin imported (types, ranges, unknown keys).
Phase 2 looks every component up by name and validates its params with the
component's own model. Both phases collect every problem before reporting, so one
run of ``qp config validate`` shows everything that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from qpcore.epoch_metrics import MetricName, check_metric_name
from qpcore.errors import ConfigError, ConfigIssue, QPError
from qpcore.params import Params
from qpcore.registry import Registry
from qpcore.specs import NAME_PATTERN, Kind, SchedulerSpec

_STRICT = ConfigDict(extra="forbid")


class ComponentRef(BaseModel):
    """A component picked by name, its params beside the name.

    ``loss: focal`` is shorthand for ``loss: {name: focal}``. Params sit next to
    ``name`` (``{name: focal, gamma: 1.5}``); nothing else is accepted.
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Registered name of the component.")
    _params: Params | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _name_syntax(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("names are lower case: letters, digits and _ (e.g. 'focal')")
        return value

    @property
    def options(self) -> dict[str, Any]:
        """The params as written in the config (defaults not filled in)."""
        return dict(self.model_extra or {})

    @property
    def params(self) -> Params:
        """The validated params; only after :func:`resolve_config`."""
        if self._params is None:
            raise QPError(f"component {self.name!r} has not been resolved against plugins")
        return self._params


def component(kind: Kind, default: Any, description: str) -> Any:
    """A config field holding a component of ``kind`` (marked for the schema)."""
    factory = (lambda: list(default)) if isinstance(default, list) else None
    extra = {"x-qp-kind": kind}
    if factory is not None:
        return Field(default_factory=factory, description=description, json_schema_extra=extra)
    # validate_default turns a default written as a bare name into a ComponentRef.
    return Field(default, description=description, json_schema_extra=extra, validate_default=True)


class HeadConfig(BaseModel):
    """The MLP on top of the backbone's features."""

    model_config = _STRICT

    hidden: list[int] = Field(
        default_factory=lambda: [1024, 512, 256, 128],
        description="Widths of the hidden layers, input side first.",
    )
    dropout: float = Field(0.3, ge=0, lt=1, description="Dropout after each hidden layer.")
    batch_norm: bool = Field(True, description="BatchNorm after each hidden linear layer.")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(width < 1 for width in value):
            raise ValueError("every hidden width must be >= 1")
        return value


class ModelConfig(BaseModel):
    """Backbone (a plugin) plus head (part of the core)."""

    model_config = _STRICT

    backbone: ComponentRef = component(
        "backbone", "resnet50", "Feature extractor, by name, with its params."
    )
    head: HeadConfig = Field(default_factory=HeadConfig)


class EarlyStoppingConfig(BaseModel):
    """Stop when the watched metric stops improving."""

    model_config = _STRICT

    enabled: bool = True
    monitor: MetricName = Field("val_loss", description="Epoch metric to watch.")
    patience: int = Field(15, ge=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as better.")
    check_finite: bool = Field(True, description="Stop at once when the metric is NaN/Inf.")


class CheckpointConfig(BaseModel):
    """Which checkpoints a run keeps."""

    model_config = _STRICT

    monitor: MetricName = Field("val_loss", description="Epoch metric that picks best.pt.")
    every: int = Field(10, ge=0, description="Also save every N epochs (0: never).")
    keep_last: int = Field(3, ge=1, description="Periodic checkpoints kept on disk.")


class TrainerConfig(BaseModel):
    """The training loop's knobs."""

    model_config = _STRICT

    epochs: int = Field(100, ge=1, description="Maximum number of epochs.")
    batch_size: int = Field(16, ge=1, description="Samples per micro-batch.")
    accumulate: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    grad_clip: float | None = Field(1.0, gt=0, description="Max gradient norm (null: off).")
    seed: int = Field(0, ge=0, description="Seed of every random generator.")
    deterministic: bool = Field(False, description="Ask torch for deterministic kernels.")
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="auto (cuda, then mps, then cpu), cpu, mps, cuda or cuda:N.",
    )
    num_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads (null: torch's default)."
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)


class OutputConfig(BaseModel):
    """Where a run writes."""

    model_config = _STRICT

    dir: Path = Field(Path("runs"), description="Folder holding one sub-folder per run.")
    name: str | None = Field(None, description="Run folder name (null: a timestamp).")


class RunConfig(BaseModel):
    """Everything one training run needs, every component picked by name."""

    model_config = _STRICT

    data: ComponentRef = component("dataset", "synthetic", "Dataset, by name.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: ComponentRef = component("loss", "mse", "Training loss, by name.")
    optimizer: ComponentRef = component("optimizer", "adam", "Optimizer, by name.")
    scheduler: ComponentRef | None = component(
        "scheduler", "reduce_on_plateau", "LR scheduler, by name (null: constant LR)."
    )
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    monitors: list[ComponentRef] = component("monitor", [], "Training monitors, by name.")
    evaluators: list[ComponentRef] = component("evaluator", [], "Evaluators, by name.")
    output: OutputConfig = Field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data, every default filled in."""
        return self.model_dump(mode="json")


#: Where components sit in a config: (path, kind); ``*`` is every list item.
COMPONENT_SLOTS: tuple[tuple[tuple[str, ...], Kind], ...] = (
    (("data",), "dataset"),
    (("model", "backbone"), "backbone"),
    (("loss",), "loss"),
    (("optimizer",), "optimizer"),
    (("scheduler",), "scheduler"),
    (("monitors", "*"), "monitor"),
    (("evaluators", "*"), "evaluator"),
)

Path_ = tuple[str | int, ...]


def dotted(path: Path_) -> str:
    return ".".join(str(part) for part in path)


def iter_components(data: Mapping[str, Any]) -> Iterator[tuple[Path_, Kind, Any]]:
    """Yield ``(path, kind, value)`` for every component slot present in ``data``."""
    for slot, kind in COMPONENT_SLOTS:
        yield from _walk(data, slot, (), kind)


def _walk(node: Any, rest: tuple[str, ...], at: Path_, kind: Kind) -> Iterator:
    if not rest:
        if node is not None:
            yield at, kind, node
        return
    head, tail = rest[0], rest[1:]
    if head == "*":
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from _walk(item, tail, (*at, i), kind)
    elif isinstance(node, Mapping) and head in node:
        yield from _walk(node[head], tail, (*at, head), kind)


def _issues_from(error: ValidationError, prefix: Path_ = ()) -> list[ConfigIssue]:
    issues = []
    for err in error.errors(include_url=False):
        loc = tuple(part for part in err["loc"] if not str(part).startswith("function-"))
        message = err["msg"].removeprefix("Value error, ")
        issues.append(ConfigIssue(dotted((*prefix, *loc)), message))
    return issues


def _resolve_component(
    value: Any, path: Path_, kind: Kind, registry: Registry, issues: list[ConfigIssue]
) -> ComponentRef | None:
    if isinstance(value, ComponentRef):
        name, options = value.name, value.options
    elif isinstance(value, str):
        name, options = value, {}
    elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
        name, options = value["name"], {k: v for k, v in value.items() if k != "name"}
    else:
        return None  # structural problem: phase 1 reports it
    if name not in registry.names(kind):
        issues.append(ConfigIssue(dotted((*path, "name")), registry.unknown_message(kind, name)))
        return None
    spec = registry.get(kind, name)
    try:
        params = spec.params.model_validate(options)
    except ValidationError as exc:
        issues += _issues_from(exc, path)
        return None
    if isinstance(spec, SchedulerSpec) and spec.metric_param:
        try:
            check_metric_name(getattr(params, spec.metric_param))
        except ValueError as exc:
            issues.append(ConfigIssue(dotted((*path, spec.metric_param)), str(exc)))
            return None
    ref = ComponentRef(name=name, **params.model_dump(mode="json"))
    ref._params = params
    return ref


def _assign(cfg: BaseModel, path: Path_, value: ComponentRef) -> None:
    node: Any = cfg
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    last = path[-1]
    if isinstance(last, int):
        node[last] = value
    else:
        setattr(node, last, value)


def resolve_config(
    data: Mapping[str, Any],
    registry: Registry,
    source: str | None = None,
    lines: Mapping[Path_, int] | None = None,
    strict: bool = True,
) -> RunConfig:
    """Validate ``data`` in both phases and fill in every component's defaults.

    Args:
        data: The config as plain data (parsed YAML/JSON plus overrides).
        registry: Installed components; must be usable (no broken plugin).
        source: File name for messages.
        lines: ``path -> line`` of the source file, to point at the line at fault.
        strict: When false, a component that is not installed is kept as written
            instead of being an error (``qp config show`` of the packaged default,
            before every plugin it names exists).

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
    # Phase 2 runs even when phase 1 failed, on whatever components are readable,
    # so a bad epoch count and a misspelt loss are reported together.
    components = iter_components(cfg.model_dump() if cfg else data)
    for path, kind, value in components:
        name = value.get("name") if isinstance(value, Mapping) else value
        if not strict and name not in registry.names(kind):
            continue
        ref = _resolve_component(value, path, kind, registry, issues)
        if ref is not None and cfg is not None:
            _assign(cfg, path, ref)
    if issues:
        located = [_with_line(issue, lines) for issue in issues]
        # File order reads best; issues without a line (from --set) come last.
        located.sort(key=lambda i: (i.line is None, i.line or 0))
        raise ConfigError(located, source)
    assert cfg is not None
    return cfg


def _with_line(issue: ConfigIssue, lines: Mapping[Path_, int] | None) -> ConfigIssue:
    if not lines:
        return issue
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in issue.path.split(".") if p]
    while parts:
        line = lines.get(tuple(parts))
        if line is not None:
            return ConfigIssue(issue.path, issue.message, line)
        parts.pop()
    return issue


def unresolved_components(cfg: RunConfig) -> list[tuple[str, Kind, str]]:
    """``(path, kind, name)`` of components left as written by a non-strict resolve."""
    missing = []
    for path, kind, value in iter_components(cfg.model_dump()):
        ref = _get(cfg, path)
        if isinstance(ref, ComponentRef) and ref._params is None:
            missing.append((dotted(path), kind, value["name"]))
    return missing


def _get(cfg: BaseModel, path: Path_) -> Any:
    node: Any = cfg
    for part in path:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    return node
