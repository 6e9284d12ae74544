"""``qp plugin new``: start a plugin package from a template (see :mod:`qpcore.scaffold`)."""

from __future__ import annotations

from pathlib import Path

import click

from qpcore.specs import KINDS


@click.group(name="plugin", short_help="Start a plugin package: qp plugin new NAME --kind KIND.")
def plugin() -> None:
    """Write plugin packages for qpcore (`qp plugins` lists the installed ones)."""


@plugin.command(name="new")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(KINDS), help="The component's kind.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="The package folder to create (default: ./qp-NAME); may exist if empty.",
)
def new(name: str, kind: str, out: Path | None) -> None:
    """Write an installable plugin package with one working KIND component NAME.

    NAME is the name configs use ([a-z][a-z0-9_]*); the distribution is
    qp-NAME (underscores as hyphens) and the package and entry point qp_NAME.
    It holds pyproject.toml, README.md, qp_NAME/__init__.py (the component, its
    params and its registration hook) and tests/test_NAME.py (qpcore's test
    kit). Nothing is overwritten: an existing, non-empty --out is refused.
    """
    from qpcore.scaffold import PluginNames, new_plugin

    folder = new_plugin(name, kind, out)
    names = PluginNames.of(name, kind)
    click.echo(f"Wrote {folder}: the {kind} {name!r} in {names.package}/__init__.py.")
    # pip reads a bare "qp-x[test]" as a project name, not a folder.
    where = str(folder) if folder.is_absolute() or str(folder).startswith(".") else f"./{folder}"
    click.echo("Next:")
    click.echo(f"  pip install -e '{where}[test]'")
    click.echo(f"  qp plugins --kind {kind}")
    click.echo(f"  cd {folder} && pytest")
