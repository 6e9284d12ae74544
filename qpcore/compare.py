"""Is model A better than model B on the same rows, or is it noise?

Both models predict the same labels, so their errors are paired: every test here
is a paired one. Differences in Pearson, Spearman and MAE get percentile
bootstrap intervals over rows; the two correlations, which share the target, get
Williams' t-test for dependent correlations (Steiger 1980's recommended form);
absolute errors get the Wilcoxon signed-rank test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

#: Two-sided significance level of the verdict.
ALPHA = 0.05


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def _mae(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - target)))


def williams_test(r_a: float, r_b: float, r_ab: float, n: int) -> tuple[float, float] | None:
    """Williams' t for H0: corr(target, a) == corr(target, b), where a and b are
    correlated with each other (r_ab). Returns ``(t, p)`` with n - 3 degrees of
    freedom, or ``None`` when undefined (n < 4 or a degenerate correlation matrix)."""
    if n < 4:
        return None
    det = 1 - r_a**2 - r_b**2 - r_ab**2 + 2 * r_a * r_b * r_ab
    denominator = 2 * (n - 1) / (n - 3) * det + ((r_a + r_b) ** 2 / 4) * (1 - r_ab) ** 3
    if denominator <= 0 or not math.isfinite(denominator):
        return None
    t = (r_a - r_b) * math.sqrt((n - 1) * (1 + r_ab) / denominator)
    return t, float(2 * stats.t.sf(abs(t), n - 3))


def compare_predictions(
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    target: np.ndarray,
    boots: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired comparison of two models' predictions of the same rows.

    Differences are A minus B: a positive ``pearson`` difference and a negative
    ``mae`` difference favour A. Undefined statistics are ``None`` with a reason
    in ``undefined``.
    """
    pred_a, pred_b, target = (np.asarray(x, dtype=float) for x in (pred_a, pred_b, target))
    n = len(target)
    undefined: dict[str, str] = {}
    result: dict[str, Any] = {"rows": n, "undefined": undefined}
    flat = n < 3 or np.ptp(target) == 0 or np.ptp(pred_a) == 0 or np.ptp(pred_b) == 0
    measures = {"mae": _mae} if flat else {"pearson": _pearson, "spearman": _spearman, "mae": _mae}
    if flat:
        for key in ("pearson", "spearman", "williams"):
            result[key] = None
            undefined[key] = "needs 3+ rows and non-constant predictions and targets"
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(boots, n)) if n else np.zeros((0, 0), int)
    for key, fn in measures.items():
        a, b = fn(pred_a, target), fn(pred_b, target)
        diffs = np.array([fn(pred_a[i], target[i]) - fn(pred_b[i], target[i]) for i in draws])
        diffs = diffs[np.isfinite(diffs)]
        low, high = np.percentile(diffs, [2.5, 97.5]) if len(diffs) else (a - b, a - b)
        result[key] = {"a": a, "b": b, "difference": a - b, "ci95": [float(low), float(high)]}
    if not flat:
        test = williams_test(
            result["pearson"]["a"], result["pearson"]["b"], _pearson(pred_a, pred_b), n
        )
        if test is None:
            result["williams"] = None
            undefined["williams"] = "undefined for these correlations (identical models?)"
        else:
            result["williams"] = {"t": test[0], "p_value": test[1]}
    gaps = np.abs(pred_a - target) - np.abs(pred_b - target)
    if n == 0 or np.all(gaps == 0):
        result["wilcoxon"] = None
        undefined["wilcoxon"] = "the two models' absolute errors are identical"
    else:
        test = stats.wilcoxon(np.abs(pred_a - target), np.abs(pred_b - target))
        result["wilcoxon"] = {"statistic": float(test.statistic), "p_value": float(test.pvalue)}
    result["verdict"] = verdict(result)
    return result


def _excludes_zero(ci: list[float]) -> bool:
    return ci[0] > 0 or ci[1] < 0


def verdict(result: dict[str, Any]) -> str:
    """One sentence a reader can act on."""
    parts = []
    pearson, williams = result.get("pearson"), result.get("williams")
    if pearson and williams and williams["p_value"] < ALPHA and _excludes_zero(pearson["ci95"]):
        better = "A" if pearson["difference"] > 0 else "B"
        parts.append(
            f"{better} correlates better with the labels (Pearson A-B "
            f"{pearson['difference']:+.4f}, 95% CI [{pearson['ci95'][0]:+.4f}, "
            f"{pearson['ci95'][1]:+.4f}], Williams p={williams['p_value']:.3g})"
        )
    mae, wilcoxon = result["mae"], result.get("wilcoxon")
    if wilcoxon and wilcoxon["p_value"] < ALPHA and _excludes_zero(mae["ci95"]):
        better = "A" if mae["difference"] < 0 else "B"
        parts.append(
            f"{better} has the smaller errors (MAE A-B {mae['difference']:+.4f}, 95% CI "
            f"[{mae['ci95'][0]:+.4f}, {mae['ci95'][1]:+.4f}], Wilcoxon "
            f"p={wilcoxon['p_value']:.3g})"
        )
    if not parts:
        return (
            f"No detectable difference between A and B on these {result['rows']} rows "
            f"(at the {ALPHA:.0%} level)."
        )
    return "; ".join(parts) + "."
