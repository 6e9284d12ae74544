"""Built-in evaluators: regression, bands, calibration, features, timing.

Metric names follow the seed's evaluator (``pearson_correlation``,
``r2_score``, ``accuracy_5pct``, ``high_quality_mae`` ...), so its readers keep
working; definitions are in ``docs/evaluation.md``. Each evaluator's ``report``
contributes its sections of the HTML report from what ``evaluate`` computed.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from pydantic import Field, field_validator
from scipy import stats

from qpcore import EvaluatorSpec, Params, hookimpl, plots
from qpcore.evaluation import EvalData, EvalOutput, degenerate, mc_dropout, row_inputs
from qpcore.predictor import to_pixels
from qpcore.report import Figure, Section, join, number, paragraph, table, tag, thumbnail


class RegressionParams(Params):
    outliers: int = Field(10, ge=0, le=1000, description="Largest errors listed with their image.")


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


class BandsParams(Params):
    edges: list[float] = Field(
        default_factory=lambda: [0.6, 0.8],
        description="Band edges on the true SSIM, ascending (seed: 0.6 and 0.8).",
    )

    @field_validator("edges")
    @classmethod
    def _ascending(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < e < 1 for e in value) or sorted(set(value)) != value:
            raise ValueError("give ascending, distinct edges inside (0, 1)")
        return value


#: Seed names of the three default bands, lowest first.
SEED_BANDS = ("low_quality", "medium_quality", "high_quality")


class Bands:
    """Per-band count, MAE, bias and correlation; a band is a range of true SSIM."""

    def __init__(self, params: BandsParams) -> None:
        self.edges = params.edges

    def names(self) -> list[str]:
        if len(self.edges) == 2:
            return list(SEED_BANDS)
        bounds = [0.0, *self.edges, 1.0]
        return [f"band_{lo:g}_{hi:g}" for lo, hi in itertools.pairwise(bounds)]

    def evaluate(self, data: EvalData) -> EvalOutput:
        out = EvalOutput()
        band = np.searchsorted(self.edges, data.targets, side="right")
        for index, name in enumerate(self.names()):
            mask = band == index
            pred, target = data.predictions[mask], data.targets[mask]
            empty = "no row in this band" if not mask.any() else None
            out.metrics[f"{name}_count"] = int(mask.sum())
            out.put(f"{name}_mae", lambda p=pred, t=target: float(np.mean(np.abs(p - t))), empty)
            out.put(f"{name}_bias", lambda p=pred, t=target: float(np.mean(p - t)), empty)
            flat = empty or degenerate(pred, target)
            out.put(
                f"{name}_pearson",
                lambda p=pred, t=target: float(stats.pearsonr(p, t).statistic),
                flat,
            )
        return out

    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        m = out.metrics
        names = self.names()
        rows = [
            (n, m[f"{n}_count"], m[f"{n}_mae"], m[f"{n}_bias"], m[f"{n}_pearson"]) for n in names
        ]
        png = plots.band_panels(data.predictions, data.targets, self.edges, names)
        return [
            Section(
                "Quality bands",
                table(["band", "rows", "MAE", "bias", "Pearson"], rows),
                [Figure("quality_bands", "Predicted against true SSIM per band", png)],
            )
        ]


class CalibrationParams(Params):
    levels: list[float] = Field(
        default_factory=lambda: [0.8, 0.9, 0.95],
        description="Nominal coverages of the intervals, each in (0, 1).",
    )
    calibration_fraction: float = Field(
        0.5, gt=0, lt=1, description="Share of the rows that calibrates; the rest tests."
    )
    seed: int = Field(0, ge=0, description="Seed of the calibration/test split.")
    mc_passes: int = Field(30, ge=0, le=1000, description="MC-dropout passes of the head (0: off).")

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < v < 1 for v in value):
            raise ValueError("every level must lie strictly between 0 and 1")
        return value


def conformal_halfwidth(residuals: np.ndarray, level: float) -> float | None:
    """Split-conformal half-width: the ceil((n+1) level)-th smallest absolute
    residual, which covers a new exchangeable row with probability >= level.
    ``None`` when n is too small for that rank to exist."""
    n = len(residuals)
    rank = int(np.ceil((n + 1) * level - 1e-9))  # 10 * 0.9 must stay 9
    if rank > n:
        return None
    return float(np.sort(np.abs(residuals))[rank - 1])


class Calibration:
    """Split-conformal prediction intervals and whether they hold.

    Rows are split by source group (rows of one image stay together) into a
    calibration part, whose absolute errors give each level's half-width, and a
    test part, on which the empirical coverage is measured: a coverage well under
    the level means the errors are not exchangeable between the parts.
    """

    def __init__(self, params: CalibrationParams) -> None:
        self.params = params

    def evaluate(self, data: EvalData) -> EvalOutput:
        out = EvalOutput()
        groups = sorted({s.group for s in data.samples})
        rng = np.random.default_rng(self.params.seed)
        chosen = set(
            rng.permutation(groups)[: round(len(groups) * self.params.calibration_fraction)]
        )
        calib = np.array([s.group in chosen for s in data.samples])
        residuals, held = data.errors[calib], np.abs(data.errors[~calib])
        self._split = (residuals, held)
        out.metrics["calibration_rows"] = int(calib.sum())
        out.metrics["coverage_test_rows"] = int((~calib).sum())
        for level in self.params.levels:
            tag = f"{round(level * 100):d}"
            width = conformal_halfwidth(residuals, level)
            few = (
                f"needs at least {int(np.ceil(level / (1 - level) - 1e-9))} calibration rows"
                if width is None
                else None
            )
            out.put(f"conformal_halfwidth_{tag}", lambda w=width: w, few)
            empty = few or ("no test rows" if not len(held) else None)
            out.put(
                f"conformal_coverage_{tag}",
                lambda w=width: float(np.mean(held <= w)),
                empty,
            )
        self._mc_dropout(data, out)
        return out

    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        residuals, held = self._split
        levels = np.round(np.arange(0.05, 0.96, 0.05), 2)
        curves = {}
        widths = [conformal_halfwidth(residuals, level) for level in levels]
        if len(held) and any(w is not None for w in widths):
            curves["split conformal"] = np.array(
                [np.nan if w is None else np.mean(held <= w) for w in widths]
            )
        if self._mc is not None:
            std, err = self._mc
            z = stats.norm.ppf((1 + levels) / 2)
            curves["MC dropout (normal)"] = np.array([np.mean(err <= k * std) for k in z])
        m = out.metrics
        rows = [
            (
                f"{level:.0%}",
                m[f"conformal_halfwidth_{round(level * 100):d}"],
                m[f"conformal_coverage_{round(level * 100):d}"],
            )
            for level in self.params.levels
        ]
        body = join(
            [
                paragraph(
                    f"Intervals calibrated on {m['calibration_rows']} rows, "
                    f"coverage measured on {m['coverage_test_rows']} others."
                ),
                table(["level", "half-width", "empirical coverage"], rows),
            ]
        )
        figures = []
        if curves:
            png = plots.reliability(levels, curves, len(held))
            title = "Reliability: nominal against empirical coverage"
            figures.append(Figure("reliability", title, png))
        else:
            body = join([body, paragraph("Too few rows for a reliability plot.")])
        return [Section("Calibration", body, figures)]

    def _mc_dropout(self, data: EvalData, out: EvalOutput) -> None:
        """Per-row spread of MC-dropout predictions, and whether it means
        anything: its rank correlation with the actual error, and how often a
        normal interval of that spread covers the label."""
        names = ("mc_dropout_std_mean", "mc_dropout_error_spearman", "mc_dropout_coverage_90")
        draws = None
        self._mc: tuple[np.ndarray, np.ndarray] | None = None
        reason = "MC dropout is off (mc_passes: 0)"
        if self.params.mc_passes and data.predictor is None:
            reason = "no model to sample (predictions given as arrays)"
        elif self.params.mc_passes:
            draws = mc_dropout(data.predictor, data.samples, self.params.mc_passes)
            reason = "the head has no dropout, or a backbone trains"
        if draws is None:
            for name in names:
                out.put(name, lambda: None, reason)
            return
        std, centre = draws.std(0), draws.mean(0)
        err = np.abs(centre - data.targets)
        self._mc = (std, err)
        flat = degenerate(std, err)
        out.put(names[0], lambda: float(std.mean()))
        out.put(names[1], lambda: float(stats.spearmanr(std, err).statistic), flat)
        out.put(names[2], lambda: float(np.mean(err <= 1.6449 * std)))


class FeaturesParams(Params):
    top: int = Field(10, ge=1, le=1000, description="Features listed by correlation.")


class Features:
    """The seed's feature analysis: activation statistics of the features the
    head reads, and which of them correlate most with the prediction and the
    label (hand-made features by name; learnt ones by index)."""

    def __init__(self, params: FeaturesParams) -> None:
        self.params = params

    def evaluate(self, data: EvalData) -> EvalOutput:
        out = EvalOutput()
        names = (
            "feature_count",
            "feature_mean_activation",
            "feature_dead_fraction",
            "feature_correlations",
        )
        predictor = data.predictor
        reason = None
        if predictor is None:
            reason = "no model to read features from (predictions given as arrays)"
        elif predictor.model.backbones_trainable:
            reason = "a backbone trains: features are not fixed per image"
        if reason:
            for name in names:
                out.put(name, lambda: None, reason)
            return out
        features = row_inputs(predictor, data.samples)[0].cpu().numpy().astype(float)
        labels = [
            n
            for b in predictor.model.backbones
            for n in (
                b.feature_names or [f"{type(b).__name__}[{i}]" for i in range(b.num_features)]
            )
        ]
        spread = features.std(0)
        out.metrics["feature_count"] = features.shape[1]
        out.put(names[1], lambda: float(np.abs(features).mean()))
        out.put(names[2], lambda: float(np.mean(spread == 0)))
        rows = []
        for j in np.flatnonzero(spread > 0):
            flat = degenerate(features[:, j], data.predictions)
            if flat or degenerate(features[:, j], data.targets):
                continue
            rows.append(
                {
                    "feature": labels[j],
                    "mean": float(features[:, j].mean()),
                    "std": float(spread[j]),
                    "corr_prediction": float(np.corrcoef(features[:, j], data.predictions)[0, 1]),
                    "corr_label": float(np.corrcoef(features[:, j], data.targets)[0, 1]),
                }
            )
        rows.sort(key=lambda r: -abs(r["corr_label"]))
        out.metrics["feature_correlations"] = rows[: self.params.top]
        return out

    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        top = out.metrics["feature_correlations"]
        if top is None:
            return [Section("Features", paragraph(out.undefined["feature_correlations"]))]
        rows = [
            (r["feature"], r["mean"], r["std"], r["corr_label"], r["corr_prediction"]) for r in top
        ]
        m = out.metrics
        return [
            Section(
                "Features",
                join(
                    [
                        paragraph(
                            f"{m['feature_count']} features; mean |activation| "
                            f"{number(m['feature_mean_activation'])}; share constant over "
                            f"these rows {number(m['feature_dead_fraction'])}."
                        ),
                        table(["feature", "mean", "std", "corr. label", "corr. prediction"], rows),
                    ]
                ),
            )
        ]


class TimingParams(Params):
    images: int = Field(50, ge=1, le=10000, description="Images timed one by one.")
    batch_size: int = Field(32, ge=1, description="Batch size of the throughput run.")


class Timing:
    """What one prediction costs: per image (features included, from decoded
    pixels, the way a pipeline asks before a conversion) and in batches."""

    def __init__(self, params: TimingParams) -> None:
        self.params = params

    def evaluate(self, data: EvalData) -> EvalOutput:
        out = EvalOutput()
        names = ("time_per_image_ms_p50", "time_per_image_ms_p95", "throughput_images_per_s")
        if data.predictor is None:
            for name in names:
                out.put(name, lambda: None, "no model to time (predictions given as arrays)")
            return out
        predictor = data.predictor
        paths = list(dict.fromkeys(s.image for s in data.samples))[: self.params.images]
        pixels = [to_pixels(p) for p in paths]
        predictor.predict(pixels[:1])  # warm-up: first calls allocate
        seconds = []
        for image in pixels:
            start = time.perf_counter()
            predictor.predict([image])
            seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor.predict(pixels, batch_size=self.params.batch_size)
        batched = time.perf_counter() - start
        ms = np.asarray(seconds) * 1000
        out.metrics["timed_images"] = len(pixels)
        out.put(names[0], lambda: float(np.percentile(ms, 50)))
        out.put(names[1], lambda: float(np.percentile(ms, 95)))
        out.put(names[2], lambda: float(len(pixels) / batched))
        return out

    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        m = out.metrics
        if m["time_per_image_ms_p50"] is None:
            return [Section("Timing", paragraph(out.undefined["time_per_image_ms_p50"]))]
        rows = [
            ("per image, p50 (ms)", m["time_per_image_ms_p50"]),
            ("per image, p95 (ms)", m["time_per_image_ms_p95"]),
            (
                f"batched throughput (images/s, batch {self.params.batch_size})",
                m["throughput_images_per_s"],
            ),
        ]
        body = join(
            [
                paragraph(
                    f"{m['timed_images']} images, from decoded pixels, features included, on ",
                    tag("code", str(data.predictor.device) if data.predictor else "-"),
                    ".",
                ),
                table(["measure", "value"], rows, sortable=False),
            ]
        )
        return [Section("Timing", body)]


@hookimpl
def qp_register_evaluators() -> list[EvaluatorSpec]:
    return [
        EvaluatorSpec(
            "regression",
            Regression,
            RegressionParams,
            "MSE, RMSE, MAE, R2, Pearson/Spearman/Kendall, accuracy within 0.05/0.1, errors.",
        ),
        EvaluatorSpec(
            "bands", Bands, BandsParams, "Count, MAE, bias and Pearson per quality band."
        ),
        EvaluatorSpec(
            "calibration",
            Calibration,
            CalibrationParams,
            "Split-conformal intervals at 80/90/95 % and their empirical coverage.",
        ),
        EvaluatorSpec(
            "features",
            Features,
            FeaturesParams,
            "Feature activation statistics and feature-label correlations.",
        ),
        EvaluatorSpec(
            "timing", Timing, TimingParams, "Prediction time per image and batched throughput."
        ),
    ]
