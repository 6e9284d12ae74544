"""``features``: what the features the head reads look like and track."""

from __future__ import annotations

import numpy as np

from qp_evaluators.params import FeaturesParams
from qpcore.evaluation import EvalData, EvalOutput, degenerate, row_inputs
from qpcore.html import Section, join, number, paragraph, table


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
