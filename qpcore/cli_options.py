"""Options several ``qp`` commands share, declared once."""

from __future__ import annotations

from pathlib import Path

import click

SET_OPTION = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set trainer.epochs=5 (repeatable).",
)

DATA_OPTION = click.option(
    "--data",
    "manifest",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labelled manifest CSV the models predict.",
)
