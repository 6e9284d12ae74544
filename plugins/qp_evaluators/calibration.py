"""``calibration``: split-conformal intervals, MC dropout, and whether they hold."""

from __future__ import annotations

import numpy as np
from scipy import stats

from qp_evaluators.params import CalibrationParams
from qpcore import plots
from qpcore.evaluation import EvalData, EvalOutput, degenerate, mc_dropout
from qpcore.html import Figure, Section, join, paragraph, table


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
            percent = f"{round(level * 100):d}"
            width = conformal_halfwidth(residuals, level)
            few = (
                f"needs at least {int(np.ceil(level / (1 - level) - 1e-9))} calibration rows"
                if width is None
                else None
            )
            out.put(f"conformal_halfwidth_{percent}", lambda w=width: w, few)
            empty = few or ("no test rows" if not len(held) else None)
            out.put(
                f"conformal_coverage_{percent}",
                lambda w=width: float(np.mean(held <= w)),
                empty,
            )
        self._mc_dropout(data, out)
        return out

    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        residuals, held = self._split
        levels = np.round(np.arange(0.05, 0.96, 0.05), 2)
        curves: dict[str, np.ndarray] = {}
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
        figures: list[Figure] = []
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
