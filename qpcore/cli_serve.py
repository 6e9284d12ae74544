"""``qp suggest``: settings for a quality bar, from a trained model."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from qpcore.data.manifest import PARAM_COLUMNS
from qpcore.errors import QPError, UnreadableImage
from qpcore.predictor import Predictor, load_predictor, to_pixels

CSV_COLUMNS = (
    "image",
    "cleared",
    "predicted_ssim",
    "predicted_svg_bytes",
    "candidates",
    *PARAM_COLUMNS,
    "true_ssim",
    "true_svg_bytes",
    "error",
)


@click.command(
    name="suggest",
    short_help="For each IMAGE, the vtracer setting that keeps --min-ssim with the smallest SVG.",
)
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--min-ssim",
    type=click.FloatRange(0, 1),
    default=0.95,
    show_default=True,
    help="The quality bar the converted image must keep.",
)
@click.option(
    "--objective",
    type=click.Choice(["smallest", "best"]),
    default="smallest",
    show_default=True,
    help="smallest: the smallest SVG that clears the bar; best: the highest SSIM.",
)
@click.option(
    "--candidates",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Settings scored per image (vtracer's defaults and random-track draws).",
)
@click.option(
    "--margin",
    type=click.FloatRange(0, 1),
    help="Predicted SSIM must clear the bar by this much (default: the model's val MAE).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option("--verify", is_flag=True, help="Convert with the chosen setting: true SSIM, bytes.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def suggest_command(
    checkpoint: Path,
    images: tuple[Path, ...],
    min_ssim: float,
    objective: str,
    candidates: int,
    margin: float | None,
    fmt: str,
    verify: bool,
    seed: int,
) -> None:
    """For each IMAGE, the vtracer setting that keeps --min-ssim with the smallest
    SVG (or the best SSIM), from CHECKPOINT: a random-track model that also
    predicts sizes (qp train random). An image no candidate clears is said so
    (cleared false). Exit code 2 when no image could be read.
    """
    from qpcore.suggest import suggest

    predictor = load_predictor(checkpoint)
    if not isinstance(predictor, Predictor):
        raise QPError(f"{checkpoint}: qp suggest reads a checkpoint, not an export")
    rows: list[dict[str, Any]] = []
    for path in images:
        try:
            pixels = to_pixels(path)
        except (UnreadableImage, OSError, ValueError) as exc:
            rows.append({"image": str(path), "error": str(exc) or type(exc).__name__})
            continue
        (found,) = suggest(
            predictor,
            [pixels],
            min_ssim,
            objective,
            candidates,
            margin,
            verify,
            seed,  # type: ignore[arg-type]
        )
        rows.append({**found.as_row(), "image": str(path), "error": ""})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, allow_nan=False))
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            flat = {k: v for k, v in row.items() if k != "params"}
            writer.writerow({**flat, **row.get("params", {})})
        click.echo(buffer.getvalue(), nl=False)
    if all(row.get("error") for row in rows):
        click.echo("Error: no image could be read", err=True)
        sys.exit(2)
