"""``qp data``: label images, generate synthetic datasets.

Thin: builds jobs, runs them, prints a summary. The work is in
:mod:`qpcore.data.labeler`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qpcore.data.jobs import Job, label_jobs, synth_jobs
from qpcore.data.labeler import ERRORS, MANIFEST, Summary, run_jobs
from qpcore.data.protocol import MAX_PIXELS
from qpcore.errors import QPError
from qpcore.executor import Executor, build_executor

if TYPE_CHECKING:
    from qpcore.data.corpus import Source

TRACK = click.option(
    "--track",
    type=click.Choice(["default", "random"]),
    default="default",
    show_default=True,
    help="default: vtracer's defaults; random: params drawn per label (see docs/data.md).",
)
PER_IMAGE = click.option(
    "--per-image",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Labels per image, each with its own params (random track only).",
)
SEED = click.option("--seed", type=int, default=0, show_default=True, help="Seed of every draw.")
WORKERS = click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    help="Worker processes; 0 (default) uses one per core.",
)
TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds per image before its worker is stopped and the image recorded as "
    "timed out in errors.csv; 0: no limit (and --workers 1 runs in this process). "
    "Default: 30 s plus 10 s per megapixel and label.",
)
OUT = click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Dataset folder: manifest.csv, images/, errors.csv. Re-running continues it.",
)
SIZE = click.option(
    "--size",
    type=click.IntRange(min=16, max=4096),
    default=256,
    show_default=True,
    help="Canvas size in pixels.",
)
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
EXECUTOR = click.option(
    "--executor",
    default="local",
    show_default=True,
    help="Where labelling runs: an executor plugin (local, ray; `qp plugins --kind executor`).",
)
ADDRESS = click.option(
    "--address",
    help="Cluster for executors that join one: auto, or ray://HOST:PORT (default: a private "
    "local instance).",
)


@click.group()
def data() -> None:
    """Make labelled datasets: label your images, or generate synthetic ones.

    Labels follow the protocol vtracer-resvg-ssim/v1: vectorize with vtracer,
    render back with resvg, score with SSIM (docs/data.md).
    """


def _check_track(track: str, per_image: int) -> None:
    if track == "default" and per_image > 1:
        raise click.BadParameter(
            "more than one label per image needs --track random "
            "(default-track labels of one image are all the same)",
            param_hint="--per-image",
        )


def _run(
    jobs: list[Job],
    out: Path,
    settings: dict[str, Any],
    max_pixels: int,
    quiet: bool,
    timeout: float | None,
    executor: Executor,
) -> None:
    ctx = click.get_current_context()
    if not jobs:
        raise click.UsageError("nothing to label: no input images")
    summary = run_jobs(
        jobs, out, settings, 0, max_pixels, not quiet, timeout=timeout, executor=executor
    )
    click.echo(_describe(summary, out), err=True)
    if summary.interrupted:
        ctx.exit(130)
    if summary.errors and summary.labelled_jobs == 0 and summary.skipped == 0:
        ctx.exit(2)


def _describe(s: Summary, out: Path) -> str:
    rate = s.rows / s.seconds if s.seconds > 0 else 0.0
    done = s.labelled_jobs
    lines = [
        f"{'Interrupted' if s.interrupted else 'Done'}: {done} images labelled "
        f"({s.rows} rows, {rate:.1f} rows/s) in {s.seconds:.1f} s"
        + (f"; {s.skipped} already done" if s.skipped else "")
        + (f"; {s.errors} failed (see {out / ERRORS})" if s.errors else "")
    ]
    if s.dropped:
        lines.append(
            f"Dropped {s.dropped} rows of {out / MANIFEST} that this command would not write "
            "(foreign, duplicated or changed rows)"
        )
    if s.rows:
        parts = ", ".join(f"{k} {v / s.rows * 1000:.1f} ms" for k, v in s.timings.items())
        lines.append(f"Time per label: {parts}")
    if s.interrupted:
        lines.append("Run the same command again to continue where it stopped.")
    else:
        lines.append(f"Manifest: {out / MANIFEST}")
    return "\n".join(lines)


@data.command()
@click.argument("inputs", nargs=-1, required=True)
@OUT
@TRACK
@PER_IMAGE
@SEED
@WORKERS
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=MAX_PIXELS,
    show_default=True,
    help="Larger images are rejected (decompression bombs).",
)
@TIMEOUT
@EXECUTOR
@ADDRESS
@QUIET
def label(
    inputs: tuple[str, ...],
    out: Path,
    track: str,
    per_image: int,
    seed: int,
    workers: int,
    max_pixels: int,
    timeout: float | None,
    executor: str,
    address: str | None,
    quiet: bool,
) -> None:
    """Label images: INPUT... are files, folders (searched recursively) or globs.

    Writes OUT/manifest.csv and copies each image to OUT/images/ (same name; a
    suffix only on a collision). Unreadable images go to OUT/errors.csv and the
    run goes on; the exit code is non-zero only when nothing could be labelled.
    """
    _check_track(track, per_image)
    jobs = label_jobs(inputs, track, per_image, seed)  # type: ignore[arg-type]
    settings = {"kind": "label", "track": track, "per_image": per_image, "seed": seed}
    runner = build_executor(executor, workers=workers, address=address)
    _run(jobs, out, settings, max_pixels, quiet, timeout, runner)


@data.command()
@OUT
@click.option("--count", required=True, type=click.IntRange(min=1), help="Images to generate.")
@SEED
@TRACK
@PER_IMAGE
@SIZE
@WORKERS
@TIMEOUT
@EXECUTOR
@ADDRESS
@QUIET
def synth(
    out: Path,
    count: int,
    seed: int,
    track: str,
    per_image: int,
    size: int,
    workers: int,
    timeout: float | None,
    executor: str,
    address: str | None,
    quiet: bool,
) -> None:
    """Generate COUNT logo-like images and label them.

    The same seed gives the same dataset whatever the number of workers; a larger
    --count later extends the dataset.
    """
    _check_track(track, per_image)
    jobs = synth_jobs(count, track, per_image, seed, size)  # type: ignore[arg-type]
    settings = {"kind": "synth", "track": track, "per_image": per_image, "seed": seed, "size": size}
    runner = build_executor(executor, workers=workers, address=address)
    _run(jobs, out, settings, MAX_PIXELS, quiet, timeout, runner)


@data.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--hist",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the label histograms into this PNG.",
)
def info(manifests: tuple[Path, ...], hist: Path | None) -> None:
    """Label distribution of each MANIFEST: quantiles overall and per source."""
    from qpcore.data.manifest import read_manifest
    from qpcore.data.stats import by_source, describe, histogram, table

    series = {}
    for path in manifests:
        manifest = read_manifest(path, check_images=False)
        values = [s.ssim for s in manifest.samples]
        series[f"{path.parent.name}/{path.name}"] = values
        rows = {"all": describe(values), **by_source(manifest.samples)}
        click.echo(f"{path} ({manifest.protocol or 'protocol not stated'})")
        click.echo(table(rows) + "\n")
    if hist is not None:
        histogram(series, hist, "Label distribution")
        click.echo(f"Wrote {hist}", err=True)


@data.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Corpus folder: images/, provenance.csv, SOURCES.md, default/ and random/.",
)
@click.option(
    "--per-source",
    type=click.IntRange(min=1),
    default=150,
    show_default=True,
    help="Originals per source (degraded copies come on top, ~30%).",
)
@click.option("--sources", "names", help="Comma-separated subset of the sources (see --list).")
@SEED
@WORKERS
@SIZE
@EXECUTOR
@ADDRESS
@QUIET
@click.option("--list", "list_only", is_flag=True, help="Print the source table and exit.")
def corpus(
    out: Path | None,
    per_source: int,
    names: str | None,
    seed: int,
    workers: int,
    size: int,
    executor: str,
    address: str | None,
    quiet: bool,
    list_only: bool,
) -> None:
    """Build the real-image corpus: fetch pinned icon sets and photos, render, label.

    Downloads go to the cache ($QP_CACHE_DIR/corpus) once; a later build is
    offline. Writes OUT/default/manifest.csv (one default-track label per image)
    and OUT/random/manifest.csv (two random-track labels per image). Re-running
    the same command continues an interrupted build.
    """
    from qpcore.data.corpus import build_corpus, format_table, select, source_table

    if list_only:
        click.echo(_source_list(select(names)))
        return
    if out is None:
        raise click.UsageError("Missing option '--out'.")
    result = build_corpus(
        out,
        select(names),
        per_source=per_source,
        seed=seed,
        size=size,
        workers=workers,
        progress=not quiet,
        echo=lambda line: click.echo(line, err=True),
        executor=build_executor(executor, workers=workers, address=address),
    )
    ctx = click.get_current_context()
    if result.interrupted:
        click.echo("Interrupted: run the same command again to continue.", err=True)
        ctx.exit(130)
    click.echo("\n" + format_table(source_table(out)), err=True)
    click.echo(
        f"\nManifests: {out / 'default' / MANIFEST} and {out / 'random' / MANIFEST}", err=True
    )
    labelled = sum(s.labelled_jobs + s.skipped for s in result.summaries.values())
    if labelled == 0:
        ctx.exit(2)


def _source_list(sources: tuple[Source, ...]) -> str:
    """The source table, with the icons each holds when its package is cached."""
    from qpcore.data.corpus import fetch

    cache = fetch.default_cache()
    lines = [
        "| source | package | version | licence | icons | style |",
        "|---|---|---|---|---:|---|",
    ]
    for s in sources:
        count = "not fetched"
        try:
            if s.kind == "photos":
                wheels = list((cache / "pypi").glob(f"{s.package.replace('-', '_')}-{s.version}-*"))
                count = f"{len(s.members)} photos" if wheels else count
            elif (cache / "npm" / fetch.tarball_name(s)).exists():
                count = str(len(fetch.read_icon_set(fetch.npm_tarball(s, cache), s).visible))
        except QPError as exc:
            count = f"unusable: {str(exc).splitlines()[0][:60]}"
        lines.append(
            f"| {s.name} | {s.package} | {s.version} | {s.licence} | {count} | {s.style} |"
        )
    return "\n".join(lines)
