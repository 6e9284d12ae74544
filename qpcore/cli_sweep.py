"""``qp sweep``: a thin wrapper around :func:`qpcore.sweep.run_sweep`."""

from __future__ import annotations

from pathlib import Path

import click

from qpcore.cli_options import SET_OPTION
from qpcore.sweep import GRAMMAR, PRUNERS, run_sweep, summary


@click.command(
    help=f"""Measure how sensitive FILE's run is to its hyperparameters (Optuna).

    Each trial trains FILE's run (default: the packaged default run) with its own
    values of the --param paths, in DIR/trials/trial-N/, and is scored by the
    best validation value of trainer.early_stopping.monitor (minimised, or
    maximised for a correlation). A pruner stops poor trials early.

    --param takes {GRAMMAR}, e.g. --param optimizer.lr=log:1e-4:1e-2
    --param model.head.dropout=choice:0.1,0.3,0.5. --set applies to every trial.

    The study is DIR/study.db: rerun with a larger --trials to continue it
    (with no --param, as it was defined). Writes DIR/sweep.json, DIR/best.yaml
    (qp train DIR/best.yaml trains the best trial's config) and DIR/report.html
    (importances, slices, contours, every trial). docs/sweep.md has the details.
    """
)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="PATH=SPEC",
    help="A swept config path and its range or choices (repeatable).",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    required=True,
    help="Finished (complete or pruned) trials the study holds at the end, in total.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="The sweep folder (default: output.dir/sweep).",
)
@SET_OPTION
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Trials trained at once, one process each.",
)
@click.option(
    "--pruner", type=click.Choice(PRUNERS), default="median", show_default=True, help="Pruner."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampler.")
@click.option("--quiet", "-q", is_flag=True, help="No line per finished trial.")
def sweep(
    file: Path | None,
    params: tuple[str, ...],
    trials: int,
    out: Path | None,
    overrides: tuple[str, ...],
    jobs: int,
    pruner: str,
    seed: int,
    quiet: bool,
) -> None:
    from qpcore.config_io import load_run_config
    from qpcore.registry import default_registry
    from qpcore.sweep import parse_params

    specs = parse_params(params)  # a malformed --param fails before the config is read
    registry = default_registry()
    if out is None:
        if not specs:
            raise click.UsageError("continuing a sweep (no --param) needs its --out")
        out = load_run_config(file, overrides, registry).output.dir / "sweep"
    result = run_sweep(
        file,
        specs,
        trials,
        out,
        overrides=overrides,
        jobs=jobs,
        pruner=pruner,
        seed=seed,
        quiet=quiet,
        registry=registry,
    )
    click.echo(summary(result))
