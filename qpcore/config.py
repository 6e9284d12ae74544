"""The run config's structure: every section, and where components sit in it.

This module imports no plugin: it is phase 1 of validation (types, ranges,
unknown keys). Phase 2, which looks components up by name, is
:mod:`qpcore.validate`.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from qpcore.epoch_metrics import MetricName
from qpcore.errors import QPError
from qpcore.params import Params, StrictNumbers
from qpcore.specs import NAME_PATTERN, ComponentSpec, Kind

#: Marks a field holding a component; the JSON schema and slot list read it.
KIND_MARK = "x-qp-kind"

# Numbers given where a string is expected (`--set output.name=2024`) are meant
# as text; NaN/inf are never meaningful settings.
_STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)


class ComponentRef(BaseModel):
    """A component picked by name, its params beside the name.

    ``loss: focal`` is shorthand for ``loss: {name: focal}``. Params sit next to
    ``name`` (``{name: focal, gamma: 1.5}``); nothing else is accepted.
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Registered name of the component.")
    _params: Params | None = PrivateAttr(default=None)
    # The registry record the name resolved to: code that builds the component
    # uses it instead of asking the registry again (and re-spelling its path).
    _spec: ComponentSpec | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, ComponentRef | Mapping):
            return value
        raise ValueError("expected a component name, or a mapping with 'name' and its params")

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
        """The validated params; only after :func:`qpcore.validate.resolve_config`."""
        if self._params is None:
            raise QPError(f"component {self.name!r} has not been resolved against plugins")
        return self._params

    @property
    def spec(self) -> ComponentSpec:
        """The registration record; only after :func:`qpcore.validate.resolve_config`."""
        if self._spec is None:
            raise QPError(f"component {self.name!r} has not been resolved against plugins")
        return self._spec


def component(kind: Kind, default: Any, description: str) -> Any:
    """A config field holding a component of ``kind`` (marked for the schema)."""
    extra = {KIND_MARK: kind}
    # validate_default turns a default written as a bare name into a ComponentRef.
    if isinstance(default, list):
        return Field(
            default_factory=lambda: list(default),
            description=description,
            json_schema_extra=extra,
            validate_default=True,
        )
    return Field(default, description=description, json_schema_extra=extra, validate_default=True)


#: Upper bounds that keep a typo (``batch_size: 1e23``) a config error instead
#: of an allocation that takes the machine down; each is far above any real use.
MAX_WIDTH = 1 << 16
MAX_BATCH = 1 << 20
MAX_EPOCHS = 1_000_000


class HeadConfig(StrictNumbers):
    """The MLP on top of the backbone's features."""

    model_config = _STRICT

    hidden: list[int] = Field(
        default_factory=lambda: [1024, 512, 256, 128],
        max_length=64,
        description="Widths of the hidden layers, input side first.",
    )
    dropout: float = Field(0.3, ge=0, lt=1, description="Dropout after each hidden layer.")
    batch_norm: bool = Field(True, description="BatchNorm after each hidden linear layer.")
    params_input: bool = Field(
        False,
        description="Also feed the label's vtracer params to the head (random-track models).",
    )

    @field_validator("hidden")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(width < 1 for width in value):
            raise ValueError("every hidden width must be >= 1")
        if any(width > MAX_WIDTH for width in value):
            raise ValueError(f"every hidden width must be <= {MAX_WIDTH}")
        return value


class ModelConfig(StrictNumbers):
    """Backbone (a plugin) plus head (part of the core)."""

    model_config = _STRICT

    backbone: ComponentRef = component(
        "backbone", "resnet50", "Feature extractor, by name, with its params."
    )
    features: list[ComponentRef] = component(
        "backbone", [], "More feature extractors, their outputs concatenated after the backbone's."
    )
    head: HeadConfig = Field(default_factory=HeadConfig)
    targets: list[Literal["ssim", "svg_bytes"]] = Field(
        default_factory=lambda: ["ssim"],
        description="What the model predicts: ssim, and optionally svg_bytes (the SVG's "
        "size, by a second head fitted on the same frozen features).",
    )

    @field_validator("targets")
    @classmethod
    def _ssim_first(cls, value: list[str]) -> list[str]:
        if not value or value[0] != "ssim" or len(set(value)) != len(value):
            raise ValueError(
                "targets start with ssim and name each target once, e.g. [ssim, svg_bytes]"
            )
        return value


class EarlyStoppingConfig(StrictNumbers):
    """Stop when the watched metric stops improving."""

    model_config = _STRICT

    enabled: bool = True
    monitor: MetricName = Field("val_loss", description="Epoch metric to watch.")
    patience: int = Field(15, ge=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as better.")
    check_finite: bool = Field(True, description="Stop at once when the metric is NaN/Inf.")


class CheckpointConfig(StrictNumbers):
    """Which checkpoints a run keeps."""

    model_config = _STRICT

    monitor: MetricName = Field("val_loss", description="Epoch metric that picks best.pt.")
    every: int = Field(10, ge=0, description="Also save every N epochs (0: never).")
    keep_last: int = Field(3, ge=1, description="Periodic checkpoints kept on disk.")


class TrainerConfig(StrictNumbers):
    """The training loop's knobs."""

    model_config = _STRICT

    epochs: int = Field(100, ge=1, le=MAX_EPOCHS, description="Maximum number of epochs.")
    batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="Samples per micro-batch.")
    accumulate: int = Field(1, ge=1, le=MAX_BATCH, description="Micro-batches per optimizer step.")
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
    executor: str | None = Field(
        None,
        description="Executor that computes missing cached features (null: in this process).",
    )
    executor_address: str | None = Field(
        None, description="Cluster of an executor that joins one (ray): auto or ray://HOST:PORT."
    )
    strategy: Literal["auto", "single", "ddp"] = Field(
        "auto",
        description="auto: DDP under torchrun; single: one process; ddp: require torchrun.",
    )
    augment: list[Literal["hflip", "vflip"]] = Field(
        default_factory=list,
        description="Random flips of training images (turns the feature cache off).",
    )
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)


class OutputConfig(StrictNumbers):
    """Where a run writes."""

    model_config = _STRICT

    dir: Path = Field(Path("runs"), description="Folder holding one sub-folder per run.")
    name: str | None = Field(None, description="Run folder name (null: a timestamp).")
    report: bool = Field(
        True, description="Write eval/report.html when the run has evaluators and a test split."
    )

    @field_validator("name")
    @classmethod
    def _one_folder(cls, value: str | None) -> str | None:
        # The run folder is output.dir/name: a name with a separator or ".."
        # would write somewhere else than output.dir.
        if value is None:
            return None
        if not value.strip() or value in (".", "..") or "/" in value or "\\" in value:
            raise ValueError(
                "must be one folder name inside output.dir (no '/', '\\', '.' or '..')"
            )
        if "\0" in value:
            raise ValueError("must not contain a NUL character")
        return value


class RunConfig(StrictNumbers):
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
    monitors: list[ComponentRef] = component(
        "monitor", ["progress"], "Training monitors, by name (run in this order)."
    )
    evaluators: list[ComponentRef] = component("evaluator", [], "Evaluators, by name.")
    output: OutputConfig = Field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data, every default filled in."""
        return self.model_dump(mode="json")


Path_ = tuple[str | int, ...]


Slot = tuple[tuple[str, ...], Kind]


def _slots(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Kind]]:
    # Derived from the fields marked by component(), so a slot is declared once.
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        kind = extra.get(KIND_MARK)
        if kind is not None:
            is_list = typing.get_origin(field.annotation) is list
            yield ((*prefix, name, "*") if is_list else (*prefix, name)), kind  # type: ignore[misc]
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _slots(field.annotation, (*prefix, name))


#: Where components sit in a config: (path, kind); ``*`` is every list item.
COMPONENT_SLOTS: tuple[Slot, ...] = tuple(_slots(RunConfig))


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


def _parent(cfg: BaseModel, path: Path_) -> tuple[Any, str | int]:
    node: Any = cfg
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    return node, path[-1]


def get_at(cfg: BaseModel, path: Path_) -> Any:
    """The value at ``path`` in a parsed config."""
    node, last = _parent(cfg, path)
    return node[last] if isinstance(last, int) else getattr(node, last)


def set_at(cfg: BaseModel, path: Path_, value: Any) -> None:
    """Replace the value at ``path`` in a parsed config."""
    node, last = _parent(cfg, path)
    if isinstance(last, int):
        node[last] = value
    else:
        setattr(node, last, value)
