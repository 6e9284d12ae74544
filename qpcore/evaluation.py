"""Evaluate a checkpoint on labelled data with evaluators picked by name.

An evaluator plugin's factory returns an object with ``evaluate(data) ->
EvalOutput``. Every statistic that is undefined for the data at hand (one row,
constant predictions or targets) is reported as ``None`` with the reason in
``EvalOutput.undefined``, never as NaN, so ``metrics.json`` stays valid JSON and
a reader can tell "not computable" from a number.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from scipy import stats

from qpcore.config import ComponentRef
from qpcore.data.manifest import Sample, read_manifest
from qpcore.errors import QPError
from qpcore.fileio import write_atomic
from qpcore.registry import Registry, default_registry

if TYPE_CHECKING:
    from qpcore.executor import Executor
    from qpcore.exported import ExportedPredictor
    from qpcore.html import Section
    from qpcore.predictor import Predictor


@dataclass(frozen=True)
class EvalData:
    """What evaluators see: predictions and labels of the same rows, in order,
    and the predictor that made them when there is one (timing needs it)."""

    predictions: np.ndarray
    targets: np.ndarray
    samples: Sequence[Sample]
    predictor: Predictor | None = None

    @property
    def errors(self) -> np.ndarray:
        return self.predictions - self.targets


@dataclass
class EvalOutput:
    """An evaluator's metrics, and why each ``None`` among them is undefined."""

    metrics: dict[str, Any] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, compute: Callable[[], Any], needs: str | None = None) -> None:
        """Store ``compute()`` under ``name``, or ``None`` with the reason
        ``needs`` names when the data cannot define it."""
        if needs is not None:
            self.metrics[name] = None
            self.undefined[name] = needs
            return
        value = compute()
        if isinstance(value, float) and not math.isfinite(value):
            self.metrics[name] = None
            self.undefined[name] = "not finite for this data"
            return
        self.metrics[name] = value


class Evaluator(Protocol):
    """What an evaluator factory returns. It may also define
    ``report(data, output) -> list[qpcore.html.Section]``, called after
    ``evaluate`` on the same object when a report is written."""

    def evaluate(self, data: EvalData) -> EvalOutput: ...


def degenerate(predictions: np.ndarray, targets: np.ndarray) -> str | None:
    """Why correlations are undefined for these arrays, or ``None`` if they are not."""
    if len(targets) < 2:
        return f"needs at least 2 rows, got {len(targets)}"
    if np.ptp(targets) == 0:
        return "targets are constant"
    if np.ptp(predictions) == 0:
        return "predictions are constant"
    return None


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float | None]:
    """MAE, MSE, Pearson and Spearman; a correlation is ``None`` where it is
    undefined (fewer than two rows, or a constant side) instead of NaN."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if len(pred) == 0:
        return {"mae": None, "mse": None, "pearson": None, "spearman": None}
    err = pred - target
    out: dict[str, float | None] = {
        "mae": float(np.abs(err).mean()),
        "mse": float((err**2).mean()),
        "pearson": None,
        "spearman": None,
    }
    if degenerate(pred, target) is None:
        out["pearson"] = float(stats.pearsonr(pred, target)[0])
        out["spearman"] = float(stats.spearmanr(pred, target)[0])
    return out


def run_evaluators(
    data: EvalData,
    evaluators: Sequence[str | ComponentRef],
    registry: Registry | None = None,
    sections: list[Section] | None = None,
) -> dict[str, Any]:
    """Every evaluator on ``data``: ``{"metrics": ..., "undefined": ...}``.

    ``evaluators`` are names (default params) or resolved config entries. With
    a ``sections`` list, each evaluator's report sections are appended to it.
    """
    registry = registry or default_registry()
    # ``total_samples`` is the seed's name for the row count.
    metrics: dict[str, Any] = {"rows": len(data.targets), "total_samples": len(data.targets)}
    undefined: dict[str, str] = {}
    for item in evaluators:
        if isinstance(item, str):
            name, spec = item, registry.get("evaluator", item, at="evaluators")
            params = spec.params()
        else:
            name, spec, params = item.name, item.spec, item.params
        evaluator = spec.build(params)
        out = evaluator.evaluate(data)
        clash = set(out.metrics) & set(metrics)
        if clash:
            raise QPError(f"evaluator {name!r} reports {sorted(clash)}, already reported")
        metrics.update(out.metrics)
        undefined.update(out.undefined)
        if sections is not None and hasattr(evaluator, "report"):
            sections.extend(evaluator.report(data, out))
    return {"metrics": metrics, "undefined": undefined}


def row_inputs(
    predictor: Predictor, rows: Sequence[Sample], executor: Executor | None = None
) -> tuple[Any, Any]:
    """Features ``[N, F]`` and encoded params (or ``None``) of labelled rows, for
    models whose backbones are all frozen: read from the trainer's feature cache,
    so images a run has already seen cost nothing (missing ones are computed on
    ``executor`` when one is given)."""
    import torch

    from qpcore.data.protocol import encode_params
    from qpcore.feature_cache import model_features

    paths = [s.image for s in rows]
    features = model_features(
        predictor.model.backbones,
        paths,
        device=predictor.device,
        progress=False,
        executor=executor,
    )[0].to(predictor.device)
    encoded = None
    if predictor.takes_params:
        encoded = torch.from_numpy(np.stack([encode_params(s.params) for s in rows]))
        encoded = encoded.to(predictor.device)
    return features, encoded


def predict_rows(
    predictor: Predictor | ExportedPredictor,
    rows: Sequence[Sample],
    executor: Executor | None = None,
) -> np.ndarray:
    """Predictions for labelled rows (each with its own params where the model
    takes them); frozen backbones read the feature cache (see :func:`row_inputs`)."""
    import torch

    from qpcore.predictor import Predictor

    if not isinstance(predictor, Predictor) or predictor.model.backbones_trainable:
        params = [s.params for s in rows] if predictor.takes_params else None
        return predictor.predict([s.image for s in rows], params)
    features, encoded = row_inputs(predictor, rows, executor)
    with torch.no_grad():
        return predictor.model.predict_features(features, encoded).float().cpu().numpy()


def _size_report(predictor: Predictor, rows: Sequence[Sample]) -> dict[str, Any]:
    """The SVG-size head against the rows' recorded sizes (where they have one)."""
    import torch

    from qpcore.size_model import size_metrics

    sized = [s for s in rows if s.svg_bytes]
    if not sized:
        return {"rows": 0, "why": "the manifest records no svg_bytes"}
    features, encoded = row_inputs(predictor, sized)
    with torch.no_grad():
        predicted = predictor.model.predict_log_size(features, encoded).float().cpu().numpy()
    true_bytes = np.array([s.svg_bytes for s in sized], dtype=np.float64)
    return {"rows": len(sized), **size_metrics(predicted, true_bytes)}


def mc_dropout(
    predictor: Predictor, rows: Sequence[Sample], passes: int, seed: int = 0
) -> np.ndarray | None:
    """``[passes, N]`` predictions with the head's dropout left on (Gal and
    Ghahramani's MC dropout); BatchNorm stays in eval mode. ``None`` when the
    head has no dropout or a backbone trains (features would not be fixed)."""
    import torch
    from torch import nn

    model = predictor.model
    drops = [m for m in model.head.modules() if isinstance(m, nn.Dropout)]
    if not drops or model.backbones_trainable:
        return None
    features, encoded = row_inputs(predictor, rows)
    out = []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for drop in drops:
                drop.train()
            for _ in range(passes):
                out.append(model.predict_features(features, encoded).float().cpu().numpy())
    finally:
        model.eval()
    return np.stack(out)


def evaluate(
    checkpoint: str | Path,
    manifest: str | Path,
    evaluators: Sequence[str] = ("regression", "bands"),
    out: str | Path | None = None,
    registry: Registry | None = None,
    html: bool = True,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Predict every row of ``manifest`` with ``checkpoint`` and evaluate.

    ``executor`` computes the features the cache lacks (e.g. on a Ray cluster).

    With ``out``, writes ``metrics.json`` and ``predictions.csv`` there, and
    unless ``html`` is false the HTML report (``report.html``, ``plots/``).
    Rows whose image cannot be read are listed under ``"unreadable"`` and left
    out of the metrics.
    """
    from qpcore.errors import UnreadableImage
    from qpcore.predictor import Predictor, load_predictor, to_pixels

    predictor = load_predictor(checkpoint, registry)
    labelled = read_manifest(manifest)
    trained_on = predictor.meta.label_protocol
    if labelled.protocol and trained_on and labelled.protocol != trained_on:
        raise QPError(
            f"{manifest}: labels follow {labelled.protocol}, the model learnt {trained_on}"
        )
    samples = labelled.samples
    kept: list[Sample] = []
    unreadable = []
    for sample in samples:
        try:
            to_pixels(sample.image)
            kept.append(sample)
        except (UnreadableImage, OSError) as exc:
            unreadable.append({"image": str(sample.image), "line": sample.line, "error": str(exc)})
    if not kept:
        raise QPError(f"{manifest}: no row has a readable image")
    predictions = predict_rows(predictor, kept, executor)
    # An ONNX export gives predictions only: evaluators reading features skip it.
    served = predictor if isinstance(predictor, Predictor) else None
    data = EvalData(predictions, np.array([s.ssim for s in kept]), kept, served)
    registry = registry or default_registry()
    sections: list[Section] | None = [] if out is not None and html else None
    report = run_evaluators(data, evaluators, registry, sections)
    if served is not None and served.model.size_head is not None:
        report["size"] = _size_report(served, kept)
    report.update(
        checkpoint=str(checkpoint),
        data=str(manifest),
        evaluators=list(evaluators),
        unreadable=unreadable,
    )
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "ssim", "predicted_ssim", "error"])
        for sample, pred in zip(kept, predictions, strict=True):
            writer.writerow([sample.image, sample.ssim, f"{pred:.6f}", f"{pred - sample.ssim:.6f}"])
        write_atomic(folder / "predictions.csv", buffer.getvalue(), "the predictions")
        metrics_text = json.dumps(report, indent=2, allow_nan=False) + "\n"
        write_atomic(folder / "metrics.json", metrics_text, "the metrics")
        if sections is not None:
            _write_html(folder, report, sections, predictor, Path(checkpoint), registry)
    return report


def _write_html(
    folder: Path,
    report: dict[str, Any],
    sections: list[Section],
    predictor: Predictor | ExportedPredictor,
    checkpoint: Path,
    registry: Registry,
) -> Path:
    """The report of :func:`evaluate`; the training curves are those of the
    run folder the checkpoint sits in, when it has them."""
    from qpcore import report as html_report
    from qpcore.config_io import dump_yaml

    facts = [
        ("checkpoint", str(checkpoint)),
        ("data", str(report["data"])),
        ("rows", str(report["metrics"]["rows"])),
    ]
    return html_report.write_evaluation_report(
        folder,
        facts,
        report,
        sections,
        history=html_report.read_history(checkpoint.parent / "metrics.jsonl"),
        config_yaml=dump_yaml(predictor.meta.config),
        registry=registry,
        device=str(predictor.device),
    )
