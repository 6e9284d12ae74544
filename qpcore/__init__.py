"""qpcore: predict the SSIM an image keeps when it is vectorized.

Public API only; the machinery lives in submodules.
"""

from qpcore.errors import (
    ConfigError,
    ConfigFileError,
    ConfigIssue,
    PluginError,
    QPError,
    UnknownComponentError,
)
from qpcore.hookspecs import hookimpl
from qpcore.params import DatasetParams, ExecutorParams, NoParams, Params, SchedulerParams
from qpcore.specs import (
    BackboneSpec,
    DatasetSpec,
    EvaluatorSpec,
    ExecutorSpec,
    LossSpec,
    MonitorSpec,
    OptimizerSpec,
    SchedulerSpec,
    lazy,
)

__version__ = "0.1.0"


#: Names served lazily: they need torch (or the report machinery), which plugin
#: registration and the pytest plugin should not pay for on ``import qpcore``.
_LAZY = {
    "load_predictor": "qpcore.predictor",
    "evaluate": "qpcore.evaluation",
    "EvalData": "qpcore.evaluation",
    "EvalOutput": "qpcore.evaluation",
    "Section": "qpcore.html",
    "Backbone": "qpcore.backbone",
    "ComputedFeatures": "qpcore.backbone",
    "train": "qpcore.api",
    "create": "qpcore.api",
    "TrainResult": "qpcore.api",
    "Run": "qpcore.run",
    "StatefulMonitor": "qpcore.run",
    "ReportingMonitor": "qpcore.run",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qpcore' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Backbone",
    "BackboneSpec",
    "ComputedFeatures",
    "ConfigError",
    "ConfigFileError",
    "ConfigIssue",
    "DatasetParams",
    "DatasetSpec",
    "EvalData",
    "EvalOutput",
    "EvaluatorSpec",
    "ExecutorParams",
    "ExecutorSpec",
    "LossSpec",
    "MonitorSpec",
    "NoParams",
    "OptimizerSpec",
    "Params",
    "PluginError",
    "QPError",
    "ReportingMonitor",
    "Run",
    "SchedulerParams",
    "SchedulerSpec",
    "Section",
    "StatefulMonitor",
    "TrainResult",
    "UnknownComponentError",
    "__version__",
    "create",
    "evaluate",
    "hookimpl",
    "lazy",
    "load_predictor",
    "train",
]
