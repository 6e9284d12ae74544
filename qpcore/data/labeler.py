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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from qpcore.data.jobs import Job
from qpcore.data.manifest import (
    error_line,
    format_row,
    iter_raw_rows,
    rows_to_csv,
    write_atomic,
)
from qpcore.data.protocol import (
    MAX_PIXELS,
    PROTOCOL,
    UnreadableImage,
    composite_white,
    label_pixels,
    load_image,
)
from qpcore.errors import QPError

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
        old = json.loads(path.read_text(encoding="utf-8"))
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


def _copy_atomic(src: str, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _save_png_atomic(image: Any, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, dst)


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
        rows = [format_row(job.name, lab.ssim, lab.params, job.group, source) for lab in labels]
        return JobResult(job, rows, timings=dict(timings))
    except (KeyboardInterrupt, SystemExit):
        raise
    except UnreadableImage as exc:
        return JobResult(job, error=str(exc))
    except BaseException as exc:  # vtracer panics arrive as pyo3's PanicException
        return JobResult(job, error=f"{type(exc).__name__}: {exc}".strip())


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; only the parent decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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

    @property
    def labelled_jobs(self) -> int:
        return self.jobs - self.skipped - self.errors


class DatasetWriter:
    """Owns a dataset folder: settings check, resume, appends, final ordering."""

    def __init__(self, out_dir: Path, settings: dict[str, Any]) -> None:
        self.out = out_dir
        self.manifest = out_dir / MANIFEST
        self.errors = out_dir / ERRORS
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        self._check_settings(settings)
        self._last_sync = time.monotonic()

    def _check_settings(self, settings: dict[str, Any]) -> None:
        claim_folder(self.out / SETTINGS, {"label_protocol": PROTOCOL, **settings}, "a dataset")

    def recover(self, jobs: Sequence[Job]) -> set[str]:
        """Names of finished jobs; drops rows of unfinished ones and a torn last line."""
        if not self.manifest.exists():
            return set()
        text = self.manifest.read_text(encoding="utf-8")
        torn = bool(text) and not text.endswith("\n")
        expected = {job.name: len(job.params) for job in jobs}
        rows = list(csv.DictReader(io.StringIO(text)))
        if torn and rows:
            rows.pop()  # the write a crash interrupted
        counts = Counter(row.get("image", "") for row in rows)
        done = {name for name, n in counts.items() if expected.get(name) == n}
        keep = [r for r in rows if r.get("image") in done or r.get("image") not in expected]
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


def _in_process(todo: Sequence[Job], worker: Callable[[Job], JobResult]) -> Iterator[JobResult]:
    for job in todo:
        yield worker(job)


def _in_pool(
    todo: Sequence[Job], workers: int, out_dir: str, max_pixels: int
) -> Iterator[JobResult]:
    """Results as they finish, with a bounded number of jobs in flight.

    A worker that dies (a segfault in native code) breaks the pool: the pool is
    rebuilt and the jobs in flight are retried once; a job in flight at two
    breakages is reported as the one that crashes.
    """
    queue = list(reversed(todo))
    attempts: Counter[int] = Counter()
    while queue:
        pool = ProcessPoolExecutor(workers, initializer=_ignore_sigint)
        flight: dict[Future[JobResult], Job] = {}
        try:
            while queue or flight:
                while queue and len(flight) < 4 * workers:
                    job = queue.pop()
                    flight[pool.submit(run_job, job, out_dir, max_pixels)] = job
                finished, _ = wait(flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = flight.pop(future)
                    yield future.result()
        except BrokenProcessPool:
            for job in flight.values():
                attempts[job.index] += 1
                if attempts[job.index] >= 2:
                    yield JobResult(job, error="the labelling process crashed on this image")
                else:
                    queue.append(job)
            continue
        except BaseException:
            # Ctrl-C: start nothing new, but keep what the workers are finishing
            # (they ignore SIGINT), so no finished row is lost.
            for future in flight:
                future.cancel()
            for future in flight:
                if not future.cancelled():
                    yield future.result()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def run_jobs(
    jobs: Sequence[Job],
    out_dir: Path,
    settings: dict[str, Any],
    workers: int = 0,
    max_pixels: int = MAX_PIXELS,
    progress: bool = True,
    on_result: Callable[[JobResult], None] | None = None,
) -> Summary:
    """Label ``jobs`` into ``out_dir`` (``manifest.csv``, ``images/``, ``errors.csv``).

    Args:
        jobs: What to label, in output order.
        out_dir: The dataset folder; created if needed, continued if it exists.
        settings: What made these jobs (track, seed, ...): a folder made with
            other settings is refused rather than mixed.
        workers: Processes (0: one per core; 1: in this process).
        max_pixels: Larger images are rejected (decompression bombs).
        progress: Show a progress bar (on a terminal).
        on_result: Called with each finished result (tests, custom logging).

    Returns:
        The run's summary; ``interrupted`` is true after Ctrl-C or SIGTERM.
    """
    from tqdm import tqdm

    writer = DatasetWriter(out_dir, settings)
    done = writer.recover(jobs)
    todo = [job for job in jobs if job.name not in done]
    summary = Summary(jobs=len(jobs), skipped=len(jobs) - len(todo))
    workers = workers or os.cpu_count() or 1
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
    try:
        results = (
            _in_process(todo, lambda job: run_job(job, str(out_dir), max_pixels))
            if workers == 1
            else _in_pool(todo, workers, str(out_dir), max_pixels)
        )
        for result in results:
            if result.error is None:
                rows_out.write(rows_to_csv(result.rows))
                summary.rows += len(result.rows)
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
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        writer.sync(rows_out, errors_out, force=True)
        rows_out.close()
        errors_out.close()
        summary.seconds = time.perf_counter() - start
    if not summary.interrupted:
        writer.finish(jobs, had_errors=summary.errors > 0)
    return summary


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


__all__ = ["JobResult", "Summary", "claim_folder", "run_job", "run_jobs"]
