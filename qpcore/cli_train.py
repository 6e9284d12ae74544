"""``qp train`` and ``qp predict``: thin wrappers around the trainer and predictor."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from qpcore.cli_options import DATA_OPTION, SET_OPTION
from qpcore.config_io import load_run_config, packaged_configs
from qpcore.errors import QPError, UnreadableImage
from qpcore.predictor import Predictor, load_predictor, to_params, to_pixels
from qpcore.registry import default_registry
from qpcore.trainer import Trainer, new_run_dir

PACKAGED = ", ".join(packaged_configs())
#: The largest difference an int8 export may show from its model on the
#: calibration images (the issue's accuracy guard).
INT8_TOLERANCE = 0.01

EXECUTOR = click.option(
    "--executor",
    help="Compute image features on this executor (local, ray), in chunks of 64 images; "
    "default: in this process.",
)
ADDRESS = click.option("--address", help="Cluster of an executor that joins one (ray).")


def _executor(name: str | None, address: str | None) -> Any:
    if name is None:
        if address is not None:
            raise QPError("--address needs --executor")
        return None
    from qpcore.executor import build_executor

    return build_executor(name, address=address)


@click.command(
    help=f"""Train a model on FILE's run config (default: the packaged default run).

    FILE is a YAML or JSON file, or the name of a packaged config ({PACKAGED};
    `qp config show NAME` prints one).

    Writes a run folder with metrics.jsonl, results.json, config.yaml, run.json
    (the run's id and data fingerprint, checked by --resume) and the
    checkpoints last.pt, best.pt and epoch-N.pt; prints the best weights'
    validation Pearson, Spearman and MAE and the folder's path. The folder is
    locked while the run trains. Under torchrun it trains with DDP (docs/config.md).
    """
)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@SET_OPTION
@click.option(
    "--resume",
    type=click.Path(exists=True, path_type=Path),
    help="Continue the run in this folder (or from this checkpoint) where it stopped.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="The run folder (default: output.dir/output.name, or a timestamp in output.dir).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-epoch lines.")
def train(
    file: Path | None,
    overrides: tuple[str, ...],
    resume: Path | None,
    out: Path | None,
    quiet: bool,
) -> None:
    registry = default_registry()
    if resume is not None:
        if file is not None or overrides or out is not None:
            raise QPError(
                "--resume continues a run with its own config and folder: "
                "give no FILE, --set or --out"
            )
        trainer = Trainer.resume(resume, registry, quiet=quiet)
    else:
        cfg = load_run_config(file, overrides, registry)
        run_dir = out if out is not None else new_run_dir(cfg.output.dir, cfg.output.name)
        trainer = Trainer(cfg, registry, run_dir, quiet=quiet)
    results = trainer.fit()  # after an error, the process ends and torchrun ends the rest
    trainer.dist.close()
    if not trainer.dist.main:
        return  # rank 0 speaks for a torchrun job
    if results.get("best_epoch") is None:
        monitor = trainer.cfg.trainer.checkpoint.monitor
        raise QPError(
            f"no epoch gave a finite {monitor}, so no weights were kept (best.pt is missing); "
            f"see {results['run_dir']}/metrics.jsonl"
        )
    split = "val" if "val" in results else None
    if split:
        scores = results[split]
        click.echo(
            f"{split} ({scores['rows']} rows, best epoch {results['best_epoch']}): "
            f"Pearson {_num(scores['pearson'])}  Spearman {_num(scores['spearman'])}  "
            f"MAE {_num(scores['mae'])}"
        )
    if results.get("stop_reason"):
        click.echo(results["stop_reason"])
    click.echo(f"run folder: {results['run_dir']}")


def _num(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
# readable=False: an unreadable image is reported in its row, the others predicted.
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--params",
    "params_json",
    help="vtracer params as JSON, e.g. '{\"color_precision\": 4}' (random-track models).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@EXECUTOR
@ADDRESS
def predict(
    checkpoint: Path,
    images: tuple[Path, ...],
    params_json: str | None,
    fmt: str,
    batch_size: int,
    executor: str | None,
    address: str | None,
) -> None:
    """Predict the SSIM each IMAGE keeps when vectorized, with CHECKPOINT's model.

    An image that cannot be read gets an empty prediction and the reason; the
    others are predicted. Exit code 2 when no image could be predicted.
    """
    predictor = load_predictor(checkpoint)
    runner = _executor(executor, address)
    params = None
    if params_json is not None:
        if not predictor.takes_params:
            raise QPError(
                f"{checkpoint}: this model was trained on the default track and takes no --params"
            )
        try:
            raw = json.loads(params_json)
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object")
            params = to_params(raw)
        except ValueError as exc:
            raise QPError(f"--params: {exc}") from exc
    rows: list[dict[str, Any]] = []
    readable: list[tuple[int, Any]] = []
    for i, path in enumerate(images):
        rows.append({"image": str(path), "predicted_ssim": None, "error": ""})
        try:
            readable.append((i, to_pixels(path)))
        except (UnreadableImage, OSError, ValueError) as exc:
            rows[i]["error"] = str(exc) or type(exc).__name__
    if readable:
        # With an executor, workers read the files again, in parallel.
        inputs = [images[i] if runner is not None else p for i, p in readable]
        values = predictor.predict(inputs, params, batch_size, executor=runner)
        for (i, _), value in zip(readable, values, strict=True):
            if math.isfinite(float(value)):
                rows[i]["predicted_ssim"] = round(float(value), 6)
            else:
                rows[i]["error"] = f"the model gave a non-finite value ({float(value)})"
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, allow_nan=False))
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["image", "predicted_ssim", "error"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
    if not any(row["predicted_ssim"] is not None for row in rows):
        click.echo("Error: no image could be predicted", err=True)
        sys.exit(2)


@click.command(name="export")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["torchscript", "onnx"]),
    default="torchscript",
    show_default=True,
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "int8"]),
    default="none",
    show_default=True,
    help="int8: ONNX Runtime's static quantization, calibrated on real images.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, path_type=Path),
    help="Manifest or folder of calibration images (default: the run's training data).",
)
@click.option(
    "--calibration-count",
    type=click.IntRange(min=1, max=4096),
    default=64,
    show_default=True,
    help="Calibration images to use.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (default: next to CHECKPOINT, .ts.pt, .onnx or .int8.onnx).",
)
def export_command(
    checkpoint: Path,
    fmt: str,
    quantize: str,
    calibration: Path | None,
    calibration_count: int,
    out: Path | None,
) -> None:
    """Export CHECKPOINT's model as TorchScript or ONNX (optional extra).

    The export takes preprocessed inputs (see docs/serving.md). An ONNX export
    carries the checkpoint's metadata: qp predict and load_predictor take it in
    place of the checkpoint. Its predictions are checked against the model's and
    the largest difference is printed (at most 1e-5, or 0.01 for int8).
    """
    from qpcore.export import calibration_pixels, export

    if quantize != "none" and fmt != "onnx":
        raise QPError("--quantize int8 needs --format onnx")
    predictor = load_predictor(checkpoint)
    if not isinstance(predictor, Predictor):
        raise QPError(f"{checkpoint}: already an export; qp export reads a checkpoint (.pt)")
    suffix = {"torchscript": ".ts.pt", "onnx": ".onnx"}[fmt]
    if quantize == "int8":
        suffix = ".int8.onnx"
    out = out or checkpoint.with_name(checkpoint.name.removesuffix(".pt") + suffix)
    pixels: list[Any] = []
    if quantize != "none":
        pixels = calibration_pixels(predictor.meta.config, calibration, calibration_count)
    difference = export(predictor, out, fmt, quantize, pixels)  # type: ignore[arg-type]
    allowed = 1e-5 if quantize == "none" else INT8_TOLERANCE
    if difference > allowed:
        out.unlink()
        out.with_suffix(out.suffix + ".json").unlink(missing_ok=True)
        raise QPError(
            f"{out}: not written: the export differs from the model by {difference:.2e} "
            f"(more than {allowed})"
        )
    size = out.stat().st_size / 1e6
    click.echo(f"wrote {out} ({size:.1f} MB; max difference from the model: {difference:.1e})")


@click.command(name="evaluate")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@DATA_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option(
    "--evaluator",
    "evaluators",
    multiple=True,
    help="Evaluator by name (repeatable; default: regression and bands).",
)
@click.option("--no-html", is_flag=True, help="With --out, skip report.html and plots/.")
@EXECUTOR
@ADDRESS
def evaluate_command(
    checkpoint: Path,
    manifest: Path,
    out: Path | None,
    evaluators: tuple[str, ...],
    no_html: bool,
    executor: str | None,
    address: str | None,
) -> None:
    """Evaluate CHECKPOINT on a labelled manifest.

    Prints the headline metrics; with --out, writes metrics.json (seed key names,
    undefined statistics as null with the reason), predictions.csv, and the
    self-contained HTML report report.html with its plots as PNG in plots/.
    """
    from qpcore.evaluation import evaluate

    names = evaluators or ("regression", "bands")
    runner = _executor(executor, address)
    report = evaluate(checkpoint, manifest, names, out, html=not no_html, executor=runner)
    metrics = report["metrics"]
    for key in ("rows", "pearson_correlation", "spearman_correlation", "mae", "r2_score"):
        if key in metrics:
            value = metrics[key]
            shown = value if isinstance(value, int) or value is None else f"{value:.4f}"
            reason = report["undefined"].get(key)
            click.echo(f"{key}: {'null (' + reason + ')' if reason else shown}")
    size = report.get("size")
    if size and size.get("rows"):
        pearson, error = size["size_pearson_log"], size["size_median_rel_error"]
        click.echo(f"size_pearson_log: {'null' if pearson is None else f'{pearson:.4f}'}")
        click.echo(f"size_median_rel_error: {'null' if error is None else f'{error:.4f}'}")
    if report["unreadable"]:
        click.echo(f"{len(report['unreadable'])} rows skipped: image unreadable", err=True)
    if out is not None:
        click.echo(f"wrote {out / 'metrics.json'}")
        if not no_html:
            click.echo(f"wrote {out / 'report.html'}")


@click.command(name="compare", short_help="Compare models on the same labelled rows.")
@click.argument(
    "checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@DATA_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--boots", type=click.IntRange(min=100), default=2000, show_default=True)
def compare_command(
    checkpoints: tuple[Path, ...], manifest: Path, out: Path | None, boots: int
) -> None:
    """Compare models on the same labelled rows: the first checkpoint (A) against
    each other one (B), with paired bootstrap intervals, Williams' test for the
    correlations and Wilcoxon's for the absolute errors; a verdict per pair.

    With --out, writes compare.json and compare.md.
    """
    import numpy as np

    from qpcore.compare import compare_predictions
    from qpcore.data.manifest import read_manifest
    from qpcore.evaluation import predict_rows, regression_metrics

    if len(checkpoints) < 2:
        raise QPError("give at least two checkpoints to compare")
    rows = read_manifest(manifest).samples
    if not rows:
        raise QPError(f"{manifest}: no rows")
    target = np.array([s.ssim for s in rows])
    preds = [predict_rows(load_predictor(c), rows) for c in checkpoints]
    table = ["| model | Pearson | Spearman | MAE |", "|---|---:|---:|---:|"]
    pairs = []
    for path, pred in zip(checkpoints, preds, strict=True):
        scores = regression_metrics(pred, target)
        cells = [
            "-" if scores[k] is None else f"{scores[k]:.4f}" for k in ("pearson", "spearman", "mae")
        ]
        table.append(f"| {_md(str(path))} | " + " | ".join(cells) + " |")
    lines = [*table, ""]
    for path, pred in zip(checkpoints[1:], preds[1:], strict=True):
        result = compare_predictions(preds[0], pred, target, boots=boots)
        result.update(a=str(checkpoints[0]), b=str(path))
        pairs.append(result)
        lines.append(f"A = {_md(str(checkpoints[0]))}, B = {_md(str(path))}: {result['verdict']}")
    click.echo("\n".join(lines))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(
            json.dumps({"data": str(manifest), "pairs": pairs}, indent=2, allow_nan=False) + "\n"
        )
        (out / "compare.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        click.echo(f"wrote {out / 'compare.md'}")


def _md(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


@click.command(name="cv")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--folds", type=click.IntRange(min=3), default=5, show_default=True)
@SET_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No per-epoch lines.")
def cv_command(file: Path | None, folds: int, overrides: tuple[str, ...], quiet: bool) -> None:
    """Cross-validate FILE's run config (default: the packaged run) over K folds.

    FILE is a config file or a packaged config's name (see `qp train --help`).

    Folds are group-aware and stratified by band. Prints each fold's test
    Pearson, Spearman and MAE, then their mean with a 95 % t-interval; writes
    cv.json and one run folder per fold.
    """
    from qpcore.crossval import MEASURES, cross_validate

    registry = default_registry()
    cfg = load_run_config(file, overrides, registry)
    out = new_run_dir(cfg.output.dir, cfg.output.name)
    report = cross_validate(cfg, registry, folds, out, quiet=quiet)
    click.echo("fold  rows  " + "  ".join(f"{m:>8}" for m in MEASURES))
    for row in report["folds"]:
        cells = "  ".join(f"{_num(row[m]):>8}" for m in MEASURES)
        click.echo(f"{row['fold']:>4}  {row['rows']:>4}  {cells}")
    for measure, summary in report["summary"].items():
        ci = summary["ci95"]
        interval = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "(undefined)"
        click.echo(f"{measure}: mean {_num(summary['mean'])}, 95% CI {interval}")
    click.echo(f"cv folder: {out}")
