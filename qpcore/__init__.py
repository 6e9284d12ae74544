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
from qpcore.params import DatasetParams, NoParams, Params, SchedulerParams
from qpcore.specs import (
    BackboneSpec,
    DatasetSpec,
    EvaluatorSpec,
    LossSpec,
    MonitorSpec,
    OptimizerSpec,
    SchedulerSpec,
)

__version__ = "0.1.0"

__all__ = [
    "BackboneSpec",
    "ConfigError",
    "ConfigFileError",
    "ConfigIssue",
    "DatasetParams",
    "DatasetSpec",
    "EvaluatorSpec",
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
    "hookimpl",
]
