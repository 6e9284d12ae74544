"""Labelling many images: a process pool, resumable, and safe to interrupt.

Rows are appended to the manifest and flushed as each image finishes, so Ctrl-C,
a crash or a killed process loses no finished row; re-running the same command
skips what is done. When the run completes, the manifest is put in job order, so
the dataset is byte-identical whatever the number of workers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from qpcore.data.jobs import Job
from qpcore.data.manifest import (
    PARAM_COLUMNS,
    SIZE_COLUMNS,
    error_line,
    format_row,
    iter_raw_rows,
    rows_to_csv,
)
from qpcore.data.pool import LocalPool, TimeLimit
from qpcore.data.protocol import MAX_PIXELS, PROTOCOL, composite_white, label_pixels, load_image
from qpcore.errors import DiskFull, QPError, UnreadableImage
from qpcore.executor import Executor
from qpcore.fileio import (
    disk_full_as_error,
    disk_full_error,
    is_disk_full,
    write_atomic,
    write_atomic_with,
)
from qpcore.locking import hold_folder

MANIFEST = "manifest.csv"
ERRORS = "errors.csv"
SETTINGS = ".qp-dataset.json"
FSYNC_EVERY_S = 2.0


def claim_folder(path: Path, settings: dict[str, Any], what: str) -> None:
    """Record in ``path`` what makes the contents of its folder, or check it is the same.

    A folder made with other settings is refused rather than mixed: continuing
    it would give a dataset half of one thing and half of another.
    """
    folder = path.parent
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise QPError(
                f"{path}: damaged ({exc}); this file records what made the folder. "
                "Use another --out, or delete the folder to start again"
            ) from exc
        changed = sorted(k for k in settings.keys() | old.keys() if old.get(k) != settings.get(k))
        if changed:
            was = ", ".join(f"{k}={old.get(k)!r}" for k in changed)
            raise QPError(
                f"{folder} holds {what} made with other settings ({was}). "
                "Use another --out, or the same settings to continue it."
            )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


@dataclass
class JobResult:
    """What a worker sends back: the rows of one image, or why it failed."""

    job: Job
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _row_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        "" if row.get(c) is None else str(row.get(c))
        for c in ("group", "label_protocol", *PARAM_COLUMNS)
    )


def _job_rows(job: Job) -> list[tuple[str, ...]]:
    """The keys of the rows ``job`` writes, sorted (for comparing with a manifest)."""
    return sorted(
        _row_key(format_row(job.name, 0.0, params, job.group, "")) for params in job.params
    )


def _valid_label(row: dict[str, Any]) -> bool:
    """A finished row: a label in range and its SVG's size (rows written before
    sizes were recorded are labelled again, so a dataset has them on every row)."""
    try:
        ssim_ok = -1.0 <= float(row.get("ssim") or "nan") <= 1.0
    except ValueError:
        return False
    return ssim_ok and all(str(row.get(c) or "").isdigit() for c in SIZE_COLUMNS)


def _copy_atomic(src: str, dst: Path) -> None:
    with open(src, "rb") as source:
        write_atomic_with(dst, lambda handle: shutil.copyfileobj(source, handle), "an image")


def _save_png_atomic(image: Any, dst: Path) -> None:
    write_atomic_with(dst, lambda handle: image.save(handle, format="PNG"), "an image")


#: The automatic time limit per image: this many seconds, plus
#: ``AUTO_TIMEOUT_PER_MP`` per megapixel and label. Flat images label at about
#: 0.1 s per megapixel and label here and noise at up to 10x that, so only an
#: image hundreds of times slower than usual reaches it.
AUTO_TIMEOUT_S = 30.0
AUTO_TIMEOUT_PER_MP = 10.0


def auto_timeout(pixels: int, labels: int) -> float:
    """The default per-image limit for an image of ``pixels`` with ``labels`` labels."""
    return AUTO_TIMEOUT_S + AUTO_TIMEOUT_PER_MP * pixels / 1e6 * max(labels, 1)


def time_limit(timeout: float | None) -> TimeLimit:
    """The per-image limit of ``--timeout``: seconds, None (automatic) or 0 (none)."""
    if timeout == 0:
        return TimeLimit()
    if timeout is not None:
        return TimeLimit(floor=timeout)
    return TimeLimit(floor=AUTO_TIMEOUT_S, of=_auto_limit)


def _auto_limit(job: Job) -> float:
    pixels = job.size * job.size
    if job.origin is not None:
        try:  # the header only: this runs in the parent, for a job already slow
            with Image.open(job.origin) as image:
                pixels = image.size[0] * image.size[1]
        except (OSError, ValueError, SyntaxError):
            pixels = MAX_PIXELS
    return auto_timeout(pixels, len(job.params))


def run_job(job: Job, out_dir: str, max_pixels: int = MAX_PIXELS) -> JobResult:
    """Label one image with each of its params; never raises for a bad image."""
    try:
        target = Path(out_dir) / job.name
        source = job.source
        if job.origin is not None:
            pixels = load_image(job.origin, max_pixels)
        else:
            from qpcore.data.synth import generate

            synth = generate(job.synth_seed or 0, job.index, job.size)
            pixels = composite_white(synth.image)
            source = synth.source
        labels = [label_pixels(pixels, params) for params in job.params]
        if job.origin is not None:
            _copy_atomic(job.origin, target)
        else:
            _save_png_atomic(synth.image, target)
        timings: Counter[str] = Counter()
        for label in labels:
            timings.update(label.timings)
        rows = [
            format_row(
                job.name, lab.ssim, lab.params, job.group, source, lab.svg_bytes, lab.svg_paths
            )
            for lab in labels
        ]
        return JobResult(job, rows, timings=dict(timings))
    except (KeyboardInterrupt, SystemExit, DiskFull):
        raise  # a full disk stops the run: it is no fault of this image
    except UnreadableImage as exc:
        return JobResult(job, error=str(exc))
    except BaseException as exc:  # vtracer panics arrive as pyo3's PanicException
        return JobResult(job, error=f"{type(exc).__name__}: {exc}".strip())


@dataclass
class Summary:
    """What a run did, for the closing line and the exit code."""

    jobs: int = 0
    skipped: int = 0
    rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    timings: Counter[str] = field(default_factory=Counter)
    interrupted: bool = False
    #: Images labelled by this run (an interrupted run stops short of ``jobs``).
    labelled_jobs: int = 0
    #: Rows found in the manifest that this run would not have written, dropped.
    dropped: int = 0


class DatasetWriter:
    """Owns a dataset folder: settings check, resume, appends, final ordering."""

    def __init__(self, out_dir: Path, settings: dict[str, Any]) -> None:
        self.out = out_dir
        self.manifest = out_dir / MANIFEST
        self.errors = out_dir / ERRORS
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        self._check_settings(settings)
        self._last_sync = time.monotonic()
        self.dropped = 0

    def _check_settings(self, settings: dict[str, Any]) -> None:
        claim_folder(self.out / SETTINGS, {"label_protocol": PROTOCOL, **settings}, "a dataset")

    def recover(self, jobs: Sequence[Job]) -> set[str]:
        """Names of finished jobs; drops rows of unfinished ones and a torn last line."""
        if not self.manifest.exists():
            return set()
        try:
            text = self.manifest.read_text(encoding="utf-8")
            torn = bool(text) and not text.endswith("\n")
            rows = list(csv.DictReader(io.StringIO(text), strict=True))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise QPError(
                f"{self.manifest}: damaged, cannot continue it ({exc}). "
                "Use another --out, or delete the folder to start again"
            ) from exc
        if torn and rows:
            rows.pop()  # the write a crash interrupted
        expected = {job.name: _job_rows(job) for job in jobs}
        found: dict[str, list[tuple[str, ...]]] = {}
        for row in rows:
            found.setdefault(row.get("image") or "", []).append(_row_key(row))
        # An image is done when its rows are exactly the ones this run would
        # write; anything else (a foreign row, a duplicate, other params, a bad
        # label) is dropped and that image labelled again.
        done = {
            name
            for name, keys in found.items()
            if name in expected
            and sorted(keys) == expected[name]
            and all(_valid_label(r) for r in rows if r.get("image") == name)
        }
        keep = [r for r in rows if r.get("image") in done]
        self.dropped = (
            len(rows)
            - len(keep)
            - sum(
                len(keys) for name, keys in found.items() if name in expected and name not in done
            )
        )
        if torn or len(keep) != len(rows):
            write_atomic(self.manifest, rows_to_csv(keep, header=True))
        return done

    def open(self) -> tuple[TextIO, TextIO]:
        new = not self.manifest.exists() or self.manifest.stat().st_size == 0
        rows = self.manifest.open("a", encoding="utf-8", newline="")
        if new:
            rows.write(rows_to_csv([], header=True))
        # errors.csv tells about the latest run only: failed inputs are retried.
        errors = self.errors.open("w", encoding="utf-8", newline="")
        errors.write("image,error\n")
        return rows, errors

    def sync(self, *handles: TextIO, force: bool = False) -> None:
        for handle in handles:
            handle.flush()
        if force or time.monotonic() - self._last_sync > FSYNC_EVERY_S:
            for handle in handles:
                os.fsync(handle.fileno())
            self._last_sync = time.monotonic()

    def finish(self, jobs: Sequence[Job], had_errors: bool) -> None:
        """Put the manifest in job order (a no-op when it already is)."""
        order = {job.name: job.index for job in jobs}
        rows = list(iter_raw_rows(self.manifest))
        ranked = sorted(rows, key=lambda r: order.get(r.get("image", ""), len(order)))
        if ranked != rows:
            write_atomic(self.manifest, rows_to_csv(ranked, header=True))
        if not had_errors:
            self.errors.unlink(missing_ok=True)
            return
        # errors.csv in job order too: the same file whatever finished first.
        by_input = {(job.origin or job.name): job.index for job in jobs}
        with self.errors.open(encoding="utf-8", newline="") as handle:
            failures = list(csv.reader(handle))[1:]
        failures.sort(key=lambda row: by_input.get(row[0] if row else "", len(by_input)))
        text = "image,error\n" + "".join(error_line(*row[:2]) for row in failures if len(row) >= 2)
        write_atomic(self.errors, text, "errors.csv")


def _failed(job: Job, error: str) -> JobResult:
    return JobResult(job, error=error)


def run_jobs(
    jobs: Sequence[Job],
    out_dir: Path,
    settings: dict[str, Any],
    workers: int = 0,
    max_pixels: int = MAX_PIXELS,
    progress: bool = True,
    on_result: Callable[[JobResult], None] | None = None,
    timeout: float | None = None,
    executor: Executor | None = None,
) -> Summary:
    """Label ``jobs`` into ``out_dir`` (``manifest.csv``, ``images/``, ``errors.csv``).

    Args:
        jobs: What to label, in output order.
        out_dir: The dataset folder; created if needed, continued if it exists.
        settings: What made these jobs (track, seed, ...): a folder made with
            other settings is refused rather than mixed.
        workers: Worker processes of the default ``local`` executor (0: one per core).
        max_pixels: Larger images are rejected (decompression bombs).
        progress: Show a progress bar (on a terminal).
        on_result: Called with each finished result (tests, custom logging).
        timeout: Seconds per image before its worker is killed and the image
            recorded as timed out (None: :func:`auto_timeout`; 0: no limit).
            Only a worker process can be stopped, so ``workers=1`` labels in
            a worker too, except with ``timeout=0`` (in this process, unlimited).
        executor: Where the jobs run (an ``executor`` plugin, e.g. Ray);
            default: local processes. Every executor gives the same files.

    Returns:
        The run's summary; ``interrupted`` is true after Ctrl-C or SIGTERM.
    """
    with hold_folder(out_dir, "labelling run"):
        runner = executor or LocalPool(workers)
        return _run_jobs(jobs, out_dir, settings, runner, max_pixels, progress, on_result, timeout)


def _run_jobs(
    jobs: Sequence[Job],
    out_dir: Path,
    settings: dict[str, Any],
    executor: Executor,
    max_pixels: int,
    progress: bool,
    on_result: Callable[[JobResult], None] | None,
    timeout: float | None,
) -> Summary:
    from tqdm import tqdm

    writer = DatasetWriter(out_dir, settings)
    done = writer.recover(jobs)
    todo = [job for job in jobs if job.name not in done]
    summary = Summary(jobs=len(jobs), skipped=len(jobs) - len(todo), dropped=writer.dropped)
    start = time.perf_counter()
    rows_out, errors_out = writer.open()
    bar = tqdm(
        total=len(jobs),
        initial=summary.skipped,
        unit="img",
        disable=None if progress else True,
        dynamic_ncols=True,
        leave=False,
    )
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    full: DiskFull | None = None
    try:
        call = partial(run_job, out_dir=str(out_dir), max_pixels=max_pixels)
        results = executor.run(todo, call, _failed, time_limit(timeout))
        with disk_full_as_error(writer.manifest, "the manifest"):
            for result in results:
                if result.error is None:
                    rows_out.write(rows_to_csv(result.rows))
                    summary.rows += len(result.rows)
                    summary.labelled_jobs += 1
                    summary.timings.update(result.timings)
                else:
                    errors_out.write(error_line(result.job.origin or result.job.name, result.error))
                    summary.errors += 1
                writer.sync(rows_out, errors_out)
                bar.update(1)
                if on_result is not None:
                    on_result(result)
    except KeyboardInterrupt:
        summary.interrupted = True
    except DiskFull as exc:
        full = exc
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        try:
            writer.sync(rows_out, errors_out, force=True)
            rows_out.close()
            errors_out.close()
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            full = disk_full_error(writer.manifest, "the manifest", exc)
        summary.seconds = time.perf_counter() - start
    if full is not None:
        # A torn last row is dropped by the next run's recovery; say it once.
        raise DiskFull(
            f"{full} {summary.labelled_jobs} images of this run are safe in "
            f"{writer.manifest}; the same command continues from there."
        ) from full
    if not summary.interrupted:
        writer.finish(jobs, had_errors=summary.errors > 0)
    return summary


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


__all__ = ["JobResult", "Summary", "claim_folder", "run_job", "run_jobs"]
