"""``qp landscape``: a thin wrapper around :mod:`qpcore.landscape`."""

from __future__ import annotations

from pathlib import Path

import click

from qpcore.landscape import checkpoint_of, loss_landscape, write_landscape
from qpcore.run_files import BEST
from qpcore.training_data import SPLITS


def default_out(run: Path) -> Path:
    """``RUN/landscape`` for a run folder or its ``best.pt``; beside another
    checkpoint, ``landscape-<its name>``, so two checkpoints of one run keep
    their own figures."""
    file = checkpoint_of(run)
    return file.parent / ("landscape" if file.name == BEST else f"landscape-{file.stem}")


def _num(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.6g}"


@click.command(name="landscape")
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--split", type=click.Choice(SPLITS), default="val", show_default=True, help="Rows to use."
)
@click.option(
    "--steps", type=int, default=41, show_default=True, help="Points of the 1-D line (odd)."
)
@click.option(
    "--grid", type=int, default=21, show_default=True, help="Points per side of the 2-D grid (odd)."
)
@click.option(
    "--span", type=float, default=1.0, show_default=True, help="Walk alpha over [-SPAN, SPAN]."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the directions.")
@click.option(
    "--batch-size", type=int, help="Rows per batch (default: the run's trainer.batch_size)."
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, mps or auto.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: RUN/landscape).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def landscape_command(
    run: Path,
    split: str,
    steps: int,
    grid: int,
    span: float,
    seed: int,
    batch_size: int | None,
    device: str,
    out: Path | None,
    quiet: bool,
) -> None:
    """Loss landscape of RUN's trained head along filter-normalised random directions.

    RUN is a run folder (its best.pt is used) or a checkpoint file. The run's own
    loss is evaluated on its validation rows (or --split) at the trained weights
    moved by alpha d1 (a line of --steps points) and by alpha d1 + beta d2 (a
    --grid x --grid square); each direction row has the norm of its weight row,
    biases and batch-norm weights stay as trained (Li et al. 2018).

    Writes landscape.json (the losses and sharpness summaries), landscape_1d.png
    and landscape_2d.png into RUN/landscape/ (or --out); prints the loss at the
    trained weights and how much it rises within |alpha| <= 0.25 and the span.
    """
    target = out if out is not None else default_out(run)
    found = loss_landscape(
        run,
        split=split,
        steps=steps,
        grid=grid,
        span=span,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=not quiet,
    )
    files = write_landscape(found, target)
    line = found.summary_1d
    click.echo(
        f"{found.split} ({found.rows} rows), {found.loss} loss at the trained weights: "
        f"{_num(line['centre_loss'])}"
    )
    click.echo(
        f"max rise along d1: {_num(line['max_rise_near'])} within |alpha| <= {line['near']:g}, "
        f"{_num(line['max_rise_span'])} within {found.span:g}"
    )
    if line["centre_is_minimum"] is False:
        click.echo(
            f"the 1-D minimum is not the trained weights: {_num(line['min_loss'])} "
            f"at alpha {line['argmin_alpha']:g}"
        )
    for note in found.notes:
        click.echo(f"note: {note}", err=True)
    for file in files:
        click.echo(f"wrote {file}")
