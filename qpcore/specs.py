"""Frozen records that plugins return from their registration hooks.

A record says what a component is called, how to build it and which pydantic model
validates its parameters. The core never imports a concrete component: it only
reads these records, which keeps built-ins and third-party plugins on one path.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from qpcore.errors import PluginError, QPError
from qpcore.params import DatasetParams, ExecutorParams, NoParams, Params, SchedulerParams

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

Kind = Literal[
    "loss", "scheduler", "optimizer", "evaluator", "monitor", "backbone", "dataset", "executor"
]

#: Every component kind, in the order ``qp plugins`` lists them.
KINDS: tuple[Kind, ...] = (
    "dataset",
    "backbone",
    "loss",
    "optimizer",
    "scheduler",
    "monitor",
    "evaluator",
    "executor",
)

#: English plural of each kind, for messages ("Available losses: ...").
PLURALS: dict[str, str] = {
    "loss": "losses",
    "scheduler": "schedulers",
    "optimizer": "optimizers",
    "evaluator": "evaluators",
    "monitor": "monitors",
    "backbone": "backbones",
    "dataset": "datasets",
    "executor": "executors",
}


#: ``package.module:attribute``, what :func:`lazy` points at.
TARGET_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class LazyFactory:
    """A factory that imports its implementation only when it is called.

    Listing and validating plugins needs only their names and params models;
    importing every implementation (torch, scipy, matplotlib) for that made
    ``qp plugins`` and ``qp config validate`` take seconds. Make one with
    :func:`lazy`.

    Attributes:
        target: ``module:attribute`` of the real factory (a class or function).
    """

    target: str

    def load(self) -> Callable[..., Any]:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)


def lazy(target: str) -> LazyFactory:
    """A spec's ``factory`` that imports ``target`` (``"module:attribute"``)
    only when a component is built.

    The module must exist now: a typo in a plugin's registration should fail
    when the plugin loads, not in the middle of a run. Finding it does not
    execute it.
    """
    if not TARGET_PATTERN.match(target):
        raise ValueError(f"lazy factory {target!r}: write it as 'package.module:attribute'")
    module = target.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"lazy factory {target!r}: {exc}") from exc
    if found is None:
        raise ValueError(f"lazy factory {target!r}: no module {module!r}")
    return LazyFactory(target)


@dataclass(frozen=True)
class ComponentSpec:
    """What every kind of component shares.

    Attributes:
        name: The name configs use; unique across all plugins of one kind and
            matching ``[a-z][a-z0-9_]*``.
        factory: Builds the component. Its signature depends on the kind (see the
            subclass docs).
        params: The pydantic model of the component's parameters.
        summary: One line for ``qp plugins`` and the docs.
    """

    kind: ClassVar[Kind]

    name: str
    factory: Callable[..., Any]
    params: type[Params] = NoParams
    summary: str = ""

    def build(self, *args: Any) -> Any:
        """Call the factory; its failure is a readable error naming the component.

        A factory is plugin code: a bug in it should read as that plugin's
        problem with its message, not as an internal error of qpcore.
        """
        try:
            return self.factory(*args)
        except QPError:
            raise
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            raise PluginError(
                f"{self.kind} {self.name!r} could not be built: {text}. Check its params, "
                "or report it to the plugin that provides it (qp plugins)"
            ) from exc

    def __post_init__(self) -> None:
        # A bad record is the plugin author's bug: fail loudly at registration so
        # it never surfaces later as a confusing config error.
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise ValueError(f"{self.kind} name {self.name!r} must match [a-z][a-z0-9_]*")
        if not (isinstance(self.params, type) and issubclass(self.params, Params)):
            raise TypeError(
                f"{self.kind} {self.name!r}: params must be a subclass of qpcore.Params"
            )
        if "name" in self.params.model_fields:
            raise TypeError(
                f"{self.kind} {self.name!r}: params may not have a field called 'name' "
                "(configs use it to pick the component)"
            )
        if not callable(self.factory):
            raise TypeError(f"{self.kind} {self.name!r}: factory must be callable")


@dataclass(frozen=True)
class LossSpec(ComponentSpec):
    """A loss: ``factory(params) -> torch.nn.Module``.

    The module's ``forward(pred, target)`` takes ``[B]`` or ``[B, 1]`` tensors and
    returns a scalar tensor, or a mapping with the total under ``"loss"`` and other
    scalar components beside it (logged, not back-propagated separately).
    """

    kind: ClassVar[Kind] = "loss"


@dataclass(frozen=True)
class OptimizerSpec(ComponentSpec):
    """An optimizer: ``factory(param_groups, params) -> torch.optim.Optimizer``."""

    kind: ClassVar[Kind] = "optimizer"


@dataclass(frozen=True)
class SchedulerSpec(ComponentSpec):
    """A learning-rate scheduler.

    ``factory(optimizer, params, context)`` returns a torch LR scheduler;
    ``context`` is a :class:`qpcore.schedulers.ScheduleContext` (epochs, steps per
    epoch). The core wraps it with linear warmup when ``params.warmup_epochs > 0``,
    so ``params`` must derive from :class:`qpcore.SchedulerParams`.

    Attributes:
        interval: ``"epoch"`` to step once per epoch, ``"step"`` once per
            optimizer step.
        metric_param: Name of the params field holding the metric the scheduler
            watches (e.g. ``"monitor"``), or ``None`` when it watches none. The
            config check refuses a metric name no run will produce.
    """

    kind: ClassVar[Kind] = "scheduler"

    interval: Literal["epoch", "step"] = "epoch"
    metric_param: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not issubclass(self.params, SchedulerParams):
            raise TypeError(
                f"scheduler {self.name!r}: params must derive from "
                "qpcore.SchedulerParams (it carries the warmup knobs)"
            )
        if self.metric_param is not None and self.metric_param not in self.params.model_fields:
            raise ValueError(
                f"scheduler {self.name!r}: metric_param {self.metric_param!r} "
                "is not a field of its params"
            )


@dataclass(frozen=True)
class EvaluatorSpec(ComponentSpec):
    """An evaluator: ``factory(params)`` returns the object that computes its metrics
    and report sections (its interface arrives with the evaluation framework)."""

    kind: ClassVar[Kind] = "evaluator"


@dataclass(frozen=True)
class MonitorSpec(ComponentSpec):
    """A training monitor: ``factory(params)`` returns an object implementing
    training-event hooks (``qp_on_fit_start`` ...), registered on a per-run
    plugin manager only when a config names it."""

    kind: ClassVar[Kind] = "monitor"


@dataclass(frozen=True)
class ExecutorSpec(ComponentSpec):
    """Where data-parallel work runs: ``factory(params)`` returns an object with
    ``run(todo, call, failed, limit)`` (see :class:`qpcore.executor.Executor`).
    Its params derive from :class:`qpcore.ExecutorParams` (``workers``)."""

    kind: ClassVar[Kind] = "executor"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not issubclass(self.params, ExecutorParams):
            raise TypeError(f"executor {self.name!r}: params must derive from ExecutorParams")


@dataclass(frozen=True)
class BackboneSpec(ComponentSpec):
    """A feature extractor: ``factory(params) -> torch.nn.Module``.

    Attributes:
        num_features: Width of the feature vector, or ``None`` when it depends on
            the params (the module then exposes ``num_features``).
    """

    kind: ClassVar[Kind] = "backbone"

    num_features: int | None = None


@dataclass(frozen=True)
class DatasetSpec(ComponentSpec):
    """A labelled dataset: ``factory(params) -> qpcore.data.dataset.LabelledData``.

    Its params derive from :class:`qpcore.DatasetParams`, which carries the
    train/val/test split knobs every dataset shares.
    """

    kind: ClassVar[Kind] = "dataset"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not issubclass(self.params, DatasetParams):
            raise TypeError(
                f"dataset {self.name!r}: params must derive from qpcore.DatasetParams "
                "(it carries the split knobs)"
            )


SPEC_TYPES: dict[Kind, type[ComponentSpec]] = {
    spec.kind: spec
    for spec in (
        LossSpec,
        OptimizerSpec,
        SchedulerSpec,
        EvaluatorSpec,
        MonitorSpec,
        BackboneSpec,
        DatasetSpec,
        ExecutorSpec,
    )
}

__all__ = [
    "KINDS",
    "PLURALS",
    "SPEC_TYPES",
    "BackboneSpec",
    "ComponentSpec",
    "DatasetSpec",
    "EvaluatorSpec",
    "ExecutorSpec",
    "Kind",
    "LazyFactory",
    "LossSpec",
    "MonitorSpec",
    "OptimizerSpec",
    "SchedulerSpec",
    "lazy",
]
