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
)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy: ``qpcore.load_predictor`` needs torch, which plugin registration and the
    # pytest plugin should not pay for on import.
    if name == "load_predictor":
        from qpcore.predictor import load_predictor

        return load_predictor
    if name == "evaluate":
        from qpcore.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'qpcore' has no attribute {name!r}")


__all__ = [
    "BackboneSpec",
    "ConfigError",
    "ConfigFileError",
    "ConfigIssue",
    "DatasetParams",
    "DatasetSpec",
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
    "SchedulerParams",
    "SchedulerSpec",
    "UnknownComponentError",
    "__version__",
    "evaluate",
    "hookimpl",
    "load_predictor",
]
