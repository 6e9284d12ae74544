"""Built-in evaluators: regression, bands, calibration, features, timing.

Metric names follow the seed's evaluator (``pearson_correlation``,
``r2_score``, ``accuracy_5pct``, ``high_quality_mae`` ...), so its readers keep
working; definitions are in ``docs/evaluation.md``. Each evaluator's ``report``
contributes its sections of the HTML report from what ``evaluate`` computed.

Each evaluator lives in its own module, imported (with numpy, scipy and
matplotlib) only when a run builds it: listing or validating plugins reads just
the params models in :mod:`qp_evaluators.params`.
"""

from __future__ import annotations

from qp_evaluators.params import (
    BandsParams,
    CalibrationParams,
    FeaturesParams,
    RegressionParams,
    TimingParams,
)
from qpcore import EvaluatorSpec, hookimpl
from qpcore.specs import lazy


@hookimpl
def qp_register_evaluators() -> list[EvaluatorSpec]:
    return [
        EvaluatorSpec(
            "regression",
            lazy("qp_evaluators.regression:Regression"),
            RegressionParams,
            "MSE, RMSE, MAE, R2, Pearson/Spearman/Kendall, accuracy within 0.05/0.1, errors.",
        ),
        EvaluatorSpec(
            "bands",
            lazy("qp_evaluators.bands:Bands"),
            BandsParams,
            "Count, MAE, bias and Pearson per quality band.",
        ),
        EvaluatorSpec(
            "calibration",
            lazy("qp_evaluators.calibration:Calibration"),
            CalibrationParams,
            "Split-conformal intervals at 80/90/95 % and their empirical coverage.",
        ),
        EvaluatorSpec(
            "features",
            lazy("qp_evaluators.features:Features"),
            FeaturesParams,
            "Feature activation statistics and feature-label correlations.",
        ),
        EvaluatorSpec(
            "timing",
            lazy("qp_evaluators.timing:Timing"),
            TimingParams,
            "Prediction time per image and batched throughput.",
        ),
    ]
