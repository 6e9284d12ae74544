"""``qp study losses``: train one model per loss and seed and compare them
(see :mod:`qpcore.study`)."""

from __future__ import annotations

from pathlib import Path

import click

from qpcore.cli_options import SET_OPTION

#: The built-in losses a study compares when --losses is not given.
DEFAULT_LOSSES = "mse,ssim,ranking,plcc,combined,focal"


@click.group(name="study", short_help="Study what a choice does: qp study losses.")
def study() -> None:
    """Studies that train the same model several times to compare one choice."""


@study.command(name="losses")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--losses",
    default=DEFAULT_LOSSES,
    show_default=True,
    help="Comma-separated loss names; the config's own loss keeps its params.",
)
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--baseline", help="The loss every other is tested against (default: the first).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Study folder (default: output.dir/loss-study); rerun to continue it.",
)
@click.option(
    "--landscape/--no-landscape",
    default=True,
    show_default=True,
    help="Add each loss's 1-D loss landscape to the report.",
)
@SET_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or line per finished run.")
def losses_command(
    file: Path | None,
    losses: str,
    seeds: int,
    baseline: str | None,
    out: Path | None,
    landscape: bool,
    overrides: tuple[str, ...],
    quiet: bool,
) -> None:
    """Train FILE's model once per loss and seed and compare the losses.

    FILE is a config file or a packaged config's name (default: the packaged
    default). Every run shares the data, split and cached features; seeds are
    trainer.seed, trainer.seed + 1, ... Reports convergence speed (epochs to
    within 1 % of the best val loss), stability (spread over seeds, diverged
    runs), test Pearson, Spearman and MAE with 95 % t-intervals, and paired
    tests of each loss against the baseline on the same rows and seed (as qp
    compare). Writes study.json, study.md and report.html; finished runs are
    reused when the study is run again.
    """
    from tqdm import tqdm

    from qpcore.config_io import load_run_config
    from qpcore.registry import default_registry
    from qpcore.study import StudyRun, markdown_table, parse_losses, run_study, warnings_log

    registry = default_registry()
    names = parse_losses(losses, registry)
    base = load_run_config(file, overrides, registry)
    folder = out if out is not None else Path(base.output.dir) / "loss-study"

    def report(run: StudyRun) -> None:
        if quiet:
            return
        test = run.record["test"]
        scores = "diverged"
        if not run.diverged:
            scores = f"test Pearson {test['pearson']:.4f}  MAE {test['mae']:.4f}"
        found = run.record.get("warnings") or 0
        if found:
            scores += f" ({found} monitor warnings in {warnings_log(run.folder)})"
        # Above the study's progress bar, not through it.
        tqdm.write(f"{run.loss:>12} seed {run.seed}: {run.record['epochs']} epochs, {scores}")

    result = run_study(
        base,
        names,
        seeds,
        folder,
        registry,
        baseline=baseline,
        landscape=landscape,
        quiet=quiet,
        on_run=report,
    )
    click.echo(markdown_table(result))
    for loss, why in result.get("landscape_skipped", {}).items():
        click.echo(f"no landscape for {loss}: {why}")
    click.echo(f"study folder: {folder} (report.html, study.json, study.md)")
