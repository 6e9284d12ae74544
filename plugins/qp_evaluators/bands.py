"""``bands``: the statistics of each range of true SSIM."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from qp_evaluators.params import BandsParams
from qpcore import plots
from qpcore.evaluation import EvalData, EvalOutput, degenerate
from qpcore.html import Figure, Section, table

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
