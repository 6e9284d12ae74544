"""``regression``: error, agreement and correlation over all rows."""

from __future__ import annotations

import numpy as np
from scipy import stats

from qp_evaluators.params import RegressionParams
from qpcore import plots
from qpcore.evaluation import EvalData, EvalOutput, degenerate
from qpcore.html import Figure, Section, paragraph, table, thumbnail


class Regression:
    """Error, agreement and correlation statistics over all rows."""

    def __init__(self, params: RegressionParams) -> None:
        self.params = params

    def evaluate(self, data: EvalData) -> EvalOutput:
        pred, target, err = data.predictions, data.targets, data.errors
        out = EvalOutput()
        n = len(target)
        flat = degenerate(pred, target)
        out.put("mse", lambda: float(np.mean(err**2)))
        out.put("rmse", lambda: float(np.sqrt(np.mean(err**2))))
        out.put("mae", lambda: float(np.mean(np.abs(err))))
        constant_target = "targets are constant" if n and np.ptp(target) == 0 else None
        out.put(
            "r2_score",
            lambda: float(1 - np.sum(err**2) / np.sum((target - target.mean()) ** 2)),
            "needs at least 2 rows" if n < 2 else constant_target,
        )
        pearson = None if flat else stats.pearsonr(pred, target)
        spearman = None if flat else stats.spearmanr(pred, target)
        kendall = None if flat else stats.kendalltau(pred, target)
        out.put("pearson_correlation", lambda: float(pearson.statistic), flat)
        out.put("pearson_p_value", lambda: float(pearson.pvalue), flat)
        out.put("spearman_correlation", lambda: float(spearman.statistic), flat)
        out.put("spearman_p_value", lambda: float(spearman.pvalue), flat)
        out.put("kendall_tau", lambda: float(kendall.statistic), flat)
        out.put("accuracy_5pct", lambda: float(np.mean(np.abs(err) < 0.05)))
        out.put("accuracy_10pct", lambda: float(np.mean(np.abs(err) < 0.1)))
        out.put("prediction_min", lambda: float(pred.min()))
        out.put("prediction_max", lambda: float(pred.max()))
        out.put("prediction_range", lambda: float(np.ptp(pred)))
        out.put("prediction_std", lambda: float(pred.std()))
        out.put("target_range", lambda: float(np.ptp(target)))
        out.put("target_std", lambda: float(target.std()))
        out.put("error_bias", lambda: float(err.mean()))
        out.put("error_std", lambda: float(err.std()))
        spread = "needs at least 3 rows with differing errors"
        shapeless = None if n >= 3 and np.ptp(err) > 0 else spread
        out.put("error_skewness", lambda: float(stats.skew(err)), shapeless)
        out.put("error_kurtosis", lambda: float(stats.kurtosis(err)), shapeless)
        worst = np.argsort(-np.abs(err), kind="stable")[: self.params.outliers]
        out.metrics["outliers"] = [
            {
                "image": str(data.samples[i].image),
                "line": data.samples[i].line,
                "ssim": float(target[i]),
                "predicted_ssim": float(pred[i]),
                "error": float(err[i]),
            }
            for i in worst
        ]
        return out

    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        m = out.metrics
        figures = [
            Figure(
                "prediction_scatter",
                "Predicted against true SSIM",
                plots.scatter(data.predictions, data.targets),
            ),
            Figure(
                "error_distribution",
                "Distribution of the error",
                plots.error_histogram(data.errors),
            ),
        ]
        fit = Section(
            "Predicted against true",
            paragraph(
                f"{len(data.targets)} rows. Points on the dashed line are exact; "
                "above it the model promises more quality than vectorizing keeps."
            ),
            figures,
        )
        rows = [
            (
                thumbnail(o["image"]),
                o["image"],
                o["line"],
                o["ssim"],
                o["predicted_ssim"],
                o["error"],
            )
            for o in m["outliers"]
        ]
        worst = Section(
            "Worst predictions",
            table(["image", "file", "line", "true", "predicted", "error"], rows)
            if rows
            else paragraph("No rows."),
        )
        return [fit, worst]
