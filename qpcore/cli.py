"""The ``qp`` command line: parse, call the API, print.

Errors a user can fix (:class:`qpcore.errors.QPError`) are printed as one message
with exit code 2; a traceback only appears with ``--traceback`` or ``QP_DEBUG=1``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from qpcore import __version__
from qpcore.cli_options import SET_OPTION
from qpcore.config_io import dump_yaml, load_run_config
from qpcore.errors import QPError
from qpcore.registry import Registry, default_registry
from qpcore.schema import config_schema
from qpcore.specs import KINDS
from qpcore.validate import unresolved_components

DEBUG_ENV = "QP_DEBUG"


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    flag = os.environ.get(DEBUG_ENV, "").strip().lower()
    return bool(root.params.get("traceback")) or flag not in ("", "0", "false", "no", "off")


#: Commands whose modules import torch (and the trainer), loaded when one of them
#: runs, so ``qp --help``, ``qp --version`` and ``qp config ...`` start at once.
#: name -> (module, attribute, the short help ``qp --help`` shows; a test keeps
#: it equal to the command's own).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": (
        "qpcore.cli_data",
        "data",
        "Make labelled datasets: label your images, or generate synthetic ones.",
    ),
    "train": (
        "qpcore.cli_train",
        "train",
        "Train a model on FILE's run config (default: the packaged default run).",
    ),
    "predict": (
        "qpcore.cli_train",
        "predict",
        "Predict the SSIM each IMAGE keeps when vectorized, with CHECKPOINT's model.",
    ),
    "export": (
        "qpcore.cli_train",
        "export_command",
        "Export CHECKPOINT's model as TorchScript or ONNX (optional extra).",
    ),
    "suggest": (
        "qpcore.cli_serve",
        "suggest_command",
        "For each IMAGE, the vtracer setting that keeps --min-ssim with the smallest SVG.",
    ),
    "evaluate": (
        "qpcore.cli_train",
        "evaluate_command",
        "Evaluate CHECKPOINT on a labelled manifest.",
    ),
    "compare": (
        "qpcore.cli_train",
        "compare_command",
        "Compare models on the same labelled rows.",
    ),
    "cv": (
        "qpcore.cli_train",
        "cv_command",
        "Cross-validate FILE's run config (default: the packaged run) over K folds.",
    ),
    "landscape": (
        "qpcore.cli_landscape",
        "landscape_command",
        "Loss landscape of RUN's trained head along filter-normalised random directions.",
    ),
    "plugin": (
        "qpcore.cli_plugin",
        "plugin",
        "Start a plugin package: qp plugin new NAME --kind KIND.",
    ),
    "study": (
        "qpcore.cli_study",
        "study",
        "Study what a choice does: qp study losses.",
    ),
    "sweep": (
        "qpcore.cli_sweep",
        "sweep",
        "Measure how sensitive FILE's run is to its hyperparameters (Optuna).",
    ),
}


class QPGroup(click.Group):
    """Turns user-facing errors into a message and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QPError as exc:
            if _debug(ctx):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # `qp plugins | head` closed our stdout: not an error of ours. Point
            # stdout at devnull so the interpreter's final flush stays quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except Exception as exc:
            if _debug(ctx):
                raise
            click.echo(
                f"Internal error: {type(exc).__name__}: {exc}\n"
                f"Run again as `qp --traceback ...` (or with {DEBUG_ENV}=1) for the full trace.",
                err=True,
            )
            ctx.exit(1)


class RootGroup(QPGroup):
    """``qp`` itself: also loads the heavy commands only when they run
    (:data:`LAZY_COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is None and name in LAZY_COMMANDS:
            import importlib

            module, attribute, _ = LAZY_COMMANDS[name]
            found = getattr(importlib.import_module(module), attribute)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, without importing the lazy commands' modules."""
        rows = []
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        for name in names:
            if name in LAZY_COMMANDS:
                rows.append(
                    # A stand-in command: click's own truncation of the same text.
                    (
                        name,
                        click.Command(name, help=LAZY_COMMANDS[name][2]).get_short_help_str(limit),
                    )
                )
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="qp", message="%(prog)s %(version)s")
@click.option(
    "--traceback", is_flag=True, help=f"Show the full traceback on errors (or set {DEBUG_ENV}=1)."
)
def cli(traceback: bool) -> None:
    """qp: train, evaluate and serve models that predict the SSIM an image keeps
    when it is vectorized (PNG -> SVG -> PNG).

    Every component (loss, optimizer, scheduler, backbone, dataset, monitor,
    evaluator) is a plugin picked by name in a YAML config; `qp plugins` lists them.
    """


# --- plugins -----------------------------------------------------------------


def _plugin_rows(registry: Registry, kind: str | None) -> list[dict[str, Any]]:
    rows = []
    for entry in registry.entries(kind):  # type: ignore[arg-type]
        status = "conflict" if entry.conflict else entry.plugin.status
        rows.append(
            {
                "name": entry.spec.name,
                "kind": entry.spec.kind,
                "summary": entry.spec.summary,
                "plugin": entry.plugin.name,
                "distribution": entry.plugin.distribution,
                "version": entry.plugin.version,
                "status": status,
                "error": entry.plugin.error,
            }
        )
    offering = {row["plugin"] for row in rows}
    for info in registry.plugins:
        if info.status != "ok" and info.name not in offering and kind is None:
            rows.append(
                {
                    "name": None,
                    "kind": None,
                    "summary": "",
                    "plugin": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "status": info.status,
                    "error": info.error,
                }
            )
    return rows


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    cells = [[cell if len(cell) <= 60 else cell[:57] + "..." for cell in line] for line in cells]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    out = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    out += [
        "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    return "\n".join(out)


@cli.command()
@click.option("--kind", type=click.Choice(KINDS), help="Only components of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def plugins(ctx: click.Context, kind: str | None, as_json: bool) -> None:
    """List installed components and the plugins that provide them.

    Broken plugins (failed import) and duplicate names are listed too, with their
    status; the exit code is then 2, so scripts notice an unhealthy install.
    """
    registry = default_registry()
    rows = _plugin_rows(registry, kind)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        columns = ["name", "kind", "summary", "plugin", "distribution", "version", "status"]
        click.echo(_table(rows, columns))
    else:
        click.echo(f"No {kind or ''} components installed.".replace("  ", " "))
    problems = registry.problems()
    if problems:
        click.echo("\n".join(problems), err=True)
        ctx.exit(2)


# --- config ------------------------------------------------------------------


@cli.group(cls=QPGroup)
def config() -> None:
    """Check, show and describe run configs."""


CONFIG_FILE = click.argument("file", type=click.Path(dir_okay=True, path_type=Path))


@config.command()
@CONFIG_FILE
@SET_OPTION
def validate(file: Path, overrides: tuple[str, ...]) -> None:
    """Check FILE (YAML or JSON) against the installed plugins.

    Prints every problem with its dotted path and line, exit code 2; or OK.
    """
    cfg = load_run_config(file, overrides)
    picked = ", ".join(
        f"{key}={getattr(cfg, key).name}"
        for key in ("data", "loss", "optimizer", "scheduler")
        if getattr(cfg, key) is not None
    )
    click.echo(f"{file}: OK ({picked}, backbone={cfg.model.backbone.name})")


@config.command()
@click.argument("file", required=False, type=click.Path(path_type=Path))
@SET_OPTION
def show(file: Path | None, overrides: tuple[str, ...]) -> None:
    """Print the resolved config (every default filled in) as YAML.

    Without FILE: the packaged default run that `qp train` uses; components that
    are not installed yet are shown as written and listed in a comment.
    """
    cfg = load_run_config(file, overrides, strict=file is not None)
    missing = unresolved_components(cfg)
    for path, kind, name in missing:
        click.echo(f"# {kind} {name!r} (at {path}) is not installed: shown as written")
    click.echo(dump_yaml(cfg), nl=False)


@config.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
def schema(out: Path | None) -> None:
    """Print the JSON Schema of a run config, installed plugins' params included."""
    text = json.dumps(config_schema(default_registry()), indent=2)
    if out is None:
        click.echo(text)
    else:
        try:
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise QPError(f"{out}: cannot write: {exc.strerror}") from exc
        click.echo(f"Wrote {out}", err=True)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="qp")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
