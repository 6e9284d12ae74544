"""Evaluators against scipy/scikit-learn on fixed arrays, degenerate data, qp evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from qpcore.cli import cli
from qpcore.data.manifest import Sample
from qpcore.data.protocol import DEFAULT_PARAMS
from qpcore.evaluation import EvalData, run_evaluators
from qpcore.predictor import load_predictor

RNG = np.random.default_rng(3)
TARGETS = np.clip(RNG.beta(5, 1.5, 200), 0, 1)
PREDICTIONS = np.clip(TARGETS + RNG.normal(0, 0.06, 200), 0, 1)


def data(pred: np.ndarray, target: np.ndarray) -> EvalData:
    samples = [
        Sample(Path(f"/img/{i}.png"), float(t), DEFAULT_PARAMS, str(i), line=i + 2)
        for i, t in enumerate(target)
    ]
    return EvalData(np.asarray(pred, float), np.asarray(target, float), samples)


def test_regression_metrics_match_scipy_and_sklearn() -> None:
    m = run_evaluators(data(PREDICTIONS, TARGETS), ["regression"])["metrics"]
    assert m["mse"] == pytest.approx(mean_squared_error(TARGETS, PREDICTIONS))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(TARGETS, PREDICTIONS)))
    assert m["mae"] == pytest.approx(mean_absolute_error(TARGETS, PREDICTIONS))
    assert m["r2_score"] == pytest.approx(r2_score(TARGETS, PREDICTIONS))
    pearson = stats.pearsonr(PREDICTIONS, TARGETS)
    assert m["pearson_correlation"] == pytest.approx(pearson.statistic)
    assert m["pearson_p_value"] == pytest.approx(pearson.pvalue)
    assert m["spearman_correlation"] == pytest.approx(stats.spearmanr(PREDICTIONS, TARGETS)[0])
    assert m["kendall_tau"] == pytest.approx(stats.kendalltau(PREDICTIONS, TARGETS)[0])
    err = PREDICTIONS - TARGETS
    assert m["accuracy_5pct"] == pytest.approx(np.mean(np.abs(err) < 0.05))
    assert m["error_skewness"] == pytest.approx(stats.skew(err))
    assert m["error_kurtosis"] == pytest.approx(stats.kurtosis(err))
    worst = m["outliers"][0]
    assert worst["error"] == pytest.approx(err[np.argmax(np.abs(err))])
    assert len(m["outliers"]) == 10 and worst["line"] == int(np.argmax(np.abs(err))) + 2


def test_bands_follow_the_seed() -> None:
    m = run_evaluators(data(PREDICTIONS, TARGETS), ["bands"])["metrics"]
    high = TARGETS >= 0.8
    low = TARGETS < 0.6
    assert m["high_quality_count"] == high.sum() and m["low_quality_count"] == low.sum()
    assert m["high_quality_count"] + m["medium_quality_count"] + m["low_quality_count"] == 200
    assert m["high_quality_mae"] == pytest.approx(
        mean_absolute_error(TARGETS[high], PREDICTIONS[high])
    )
    assert m["high_quality_bias"] == pytest.approx(np.mean(PREDICTIONS[high] - TARGETS[high]))


@pytest.mark.parametrize(
    ("pred", "target", "reason"),
    [
        ([0.5], [0.7], "needs at least 2 rows"),
        ([0.5, 0.6, 0.7], [0.9, 0.9, 0.9], "targets are constant"),
        ([0.5, 0.5, 0.5], [0.7, 0.8, 0.9], "predictions are constant"),
    ],
)
def test_degenerate_data_gives_null_with_a_reason(
    pred: list[float], target: list[float], reason: str
) -> None:
    report = run_evaluators(data(np.array(pred), np.array(target)), ["regression", "bands"])
    m, why = report["metrics"], report["undefined"]
    assert m["pearson_correlation"] is None and why["pearson_correlation"].startswith(reason)
    assert m["mae"] is not None
    assert m["low_quality_mae"] is None and why["low_quality_mae"] == "no row in this band"
    json.dumps(report, allow_nan=False)  # never NaN


def qp_evaluate(best: Path, manifest: Path, out: Path | None, *evaluators: str) -> Any:
    """``qp evaluate`` through click; returns the click result."""
    args = ["evaluate", str(best), "--data", str(manifest)]
    args += [a for name in evaluators for a in ("--evaluator", name)]
    args += ["--out", str(out)] if out else []
    return CliRunner().invoke(cli, args)


def metrics_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "metrics.json").read_text())["metrics"]


def test_qp_evaluate_writes_metrics_and_predictions(
    best: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    result = qp_evaluate(best, tiny_manifest, out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "rows: 40"
    report = metrics_of(out)
    assert report["rows"] == 40 and "high_quality_mae" in report
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0] == "image,ssim,predicted_ssim,error" and len(rows) == 41
    # Predictions through the feature cache equal the predictor's own path.
    images = [line.split(",")[0] for line in rows[1:]]
    direct = load_predictor(best).predict(images)
    cached = np.array([float(line.split(",")[2]) for line in rows[1:]])
    np.testing.assert_allclose(cached, direct, atol=2e-6)
    bad = qp_evaluate(best, tiny_manifest, None, "regresion")
    assert bad.exit_code == 2 and "regression" in bad.output


def test_timing_evaluator_times_the_model(best: Path, tiny_manifest: Path, tmp_path: Path) -> None:
    timed = qp_evaluate(best, tiny_manifest, tmp_path / "timed", "timing")
    assert timed.exit_code == 0, timed.output
    timing = metrics_of(tmp_path / "timed")
    assert timing["timed_images"] == 40
    assert 0 < timing["time_per_image_ms_p50"] <= timing["time_per_image_ms_p95"]
    assert timing["throughput_images_per_s"] > 0


def test_mc_dropout_on_the_real_model(best: Path, tiny_manifest: Path, tmp_path: Path) -> None:
    # A spread, deterministic, and the model left in eval mode.
    from qpcore.data.manifest import read_manifest
    from qpcore.evaluation import mc_dropout

    predictor = load_predictor(best)
    samples = read_manifest(tiny_manifest).samples
    images = [s.image for s in samples[:3]]
    before = predictor.predict(images)
    draws = mc_dropout(predictor, samples, passes=8)
    assert draws.shape == (8, 40) and draws.std(0).mean() > 0
    np.testing.assert_array_equal(draws, mc_dropout(predictor, samples, passes=8))
    np.testing.assert_array_equal(before, predictor.predict(images))
    calibrated = qp_evaluate(best, tiny_manifest, tmp_path / "cal", "calibration")
    assert calibrated.exit_code == 0, calibrated.output
    cal = metrics_of(tmp_path / "cal")
    assert cal["mc_dropout_std_mean"] > 0 and 0 <= cal["mc_dropout_coverage_90"] <= 1


def test_features_evaluator_names_the_strongest_features(
    best: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    predictor = load_predictor(best)
    analysed = qp_evaluate(best, tiny_manifest, tmp_path / "feat", "features")
    assert analysed.exit_code == 0, analysed.output
    feat = metrics_of(tmp_path / "feat")
    assert feat["feature_count"] == predictor.model.num_features
    top = feat["feature_correlations"]
    assert len(top) == 10 and abs(top[0]["corr_label"]) >= abs(top[-1]["corr_label"])
    assert top[0]["feature"] in {n for b in predictor.model.backbones for n in b.feature_names}


def test_conformal_intervals_reach_their_nominal_coverage() -> None:
    rng = np.random.default_rng(11)
    target = rng.uniform(0.3, 1.0, 4000)
    pred = target + rng.normal(0, 0.05, 4000)
    m = run_evaluators(data(pred, target), ["calibration"])["metrics"]
    test_rows = m["coverage_test_rows"]
    assert m["calibration_rows"] + test_rows == 4000
    for level in (80, 90, 95):
        p = level / 100
        sigma = np.sqrt(p * (1 - p) / test_rows)
        assert abs(m[f"conformal_coverage_{level}"] - p) < 4 * sigma
        # Half-widths follow the normal quantiles of the noise.
        assert m[f"conformal_halfwidth_{level}"] == pytest.approx(
            0.05 * stats.norm.ppf(0.5 + p / 2), rel=0.1
        )


def test_timing_without_a_model_is_null_with_a_reason() -> None:
    report = run_evaluators(data(PREDICTIONS, TARGETS), ["timing"])
    assert report["metrics"]["time_per_image_ms_p50"] is None
    assert report["undefined"]["time_per_image_ms_p50"].startswith("no model to time")


def test_mc_dropout_without_a_model_is_null_with_a_reason() -> None:
    report = run_evaluators(data(PREDICTIONS, TARGETS), ["calibration"])
    assert report["metrics"]["mc_dropout_std_mean"] is None
    assert report["undefined"]["mc_dropout_std_mean"].startswith("no model to sample")


def test_conformal_needs_enough_calibration_rows() -> None:
    from qp_evaluators.calibration import conformal_halfwidth

    assert conformal_halfwidth(np.arange(9.0), 0.9) == 8.0  # rank ceil(10 * 0.9) = 9
    assert conformal_halfwidth(np.arange(8.0), 0.9) is None
    report = run_evaluators(data(PREDICTIONS[:20], TARGETS[:20]), ["calibration"])
    assert report["metrics"]["conformal_halfwidth_95"] is None
    assert report["undefined"]["conformal_halfwidth_95"] == "needs at least 19 calibration rows"
    assert report["metrics"]["conformal_halfwidth_80"] is not None
