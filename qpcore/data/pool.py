"""A process pool for labelling: bounded, crash-tolerant, with a time limit per job.

``concurrent.futures`` gives the pool; this module adds what a long labelling run
on untrusted images needs and the executor does not:

* **A time limit per job.** A worker writes into shared memory which job it
  started and when; the parent kills a worker past its job's limit with
  SIGKILL. Nothing inside the worker could do it: vtracer holds the GIL for
  the whole trace, so no Python thread or signal handler runs until it returns.
* **Workers die with their parent**, kill -9 included (``PR_SET_PDEATHSIG`` on
  Linux, a watch on the parent's pid elsewhere), instead of idling forever.
* **A crashed worker** (a segfault in native code) breaks the pool and takes the
  other workers with it: the pool is rebuilt, and the jobs that were *running*
  (shared memory says which) are retried once each, alone, so a job is blamed
  only for a crash it caused by itself. Blaming every job in flight would
  report an innocent image that merely ran beside a bad one twice. Jobs still
  waiting go back to the queue without counting an attempt, as do all the
  others when the breakage was our own kill of a job past its deadline (that
  job is reported at once).
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

R = TypeVar("R")

#: Seconds between the parent's looks at the workers' deadlines.
POLL_S = 0.25
_FIELDS = 3  # per worker slot: start (epoch seconds, 0 = idle), job index, pid

_slot: tuple[Any, int] | None = None  # (shared array, slot index), in a worker only


class Indexed(Protocol):
    index: int


J = TypeVar("J", bound=Indexed)


@dataclass(frozen=True)
class TimeLimit:
    """Seconds each job may run: ``of(job)``, never less than ``floor``.

    ``of`` may cost something (reading an image header), so executors ask for
    it only once a job has run for ``floor`` seconds.
    """

    floor: float = math.inf
    of: Callable[[Any], float] | None = None

    def overdue(self, job: Any, elapsed: float) -> float | None:
        """The job's limit when ``elapsed`` is past it, else None."""
        if elapsed <= self.floor:
            return None
        limit = self.of(job) if self.of is not None else self.floor
        return limit if elapsed > limit else None


def timed_out(limit: float) -> str:
    """The error of a job stopped at its limit (the same text for every executor)."""
    return f"timed out: still running after its limit of {limit:.1f} s"


CRASHED = "the labelling process crashed on this image"


def die_with_parent() -> None:
    """End this (child) process when its parent dies, kill -9 included, so no
    orphan keeps working for a parent that is gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    parent = os.getppid()

    def watch() -> None:  # the portable fallback, for when the GIL is free
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _init_worker(array: Any, counter: Any) -> None:
    global _slot
    # Ctrl-C reaches the whole process group; only the parent decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's SIGTERM handler (stop cleanly) is inherited by fork: a pool
    # stopping its workers with SIGTERM must just end them.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    array[index * _FIELDS + 2] = os.getpid()
    _slot = (array, index)


def _run(call: Callable[[Any], R], job: Indexed) -> R:
    if _slot is not None:
        array, index = _slot
        array[index * _FIELDS + 1] = job.index
        array[index * _FIELDS] = time.time()
    try:
        return call(job)
    finally:
        if _slot is not None:
            _slot[0][_slot[1] * _FIELDS] = 0.0


def run_pool(
    todo: Sequence[J],
    workers: int,
    call: Callable[[J], R],
    failed: Callable[[J, str], R],
    limit: TimeLimit = TimeLimit(),
) -> Iterator[R]:
    """``call(job)`` for each job in worker processes; results as they finish.

    Args:
        todo: The jobs, in submission order.
        workers: Worker processes.
        call: A picklable function (module level, or a partial of one).
        failed: Makes the result of a job that crashed or ran out of time.
        limit: How long a job may run before its worker is killed.
    """
    queue = list(reversed(todo))
    suspects: list[J] = []  # running at a crash: each is retried alone, once
    context = multiprocessing.get_context()
    while queue or suspects:
        array = context.Array("d", workers * _FIELDS, lock=False)
        counter = context.Value("i", 0)
        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(array, counter)
        )
        flight: dict[Future[R], J] = {}
        killed: dict[int, float] = {}  # job index -> seconds it had
        alone: J | None = None  # the suspect running by itself, if any
        try:
            while queue or suspects or flight:
                if alone is not None and not flight:
                    alone = None  # it finished: the next suspect, or the queue
                if alone is None and suspects and not flight:
                    alone = suspects.pop()
                    flight[pool.submit(_run, call, alone)] = alone
                elif alone is None and not suspects:
                    while queue and len(flight) < 4 * workers:
                        job = queue.pop()
                        flight[pool.submit(_run, call, job)] = job
                finished, _ = wait(flight, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()  # raises for a broken pool: keep the job
                    del flight[future]
                    yield result
                killed.update(_kill_overdue(array, workers, flight, limit))
        except BrokenProcessPool:
            running = _running(array, workers)
            for job in flight.values():
                if job.index in killed:
                    yield failed(job, timed_out(killed[job.index]))
                elif alone is not None and job.index == alone.index:
                    yield failed(job, CRASHED)  # it crashed with nothing else running
                elif not killed and (job.index in running or not running):
                    suspects.append(job)
                else:
                    queue.append(job)
            continue
        except GeneratorExit:
            # The consumer stopped reading (its own Ctrl-C): yield nothing more.
            for future in flight:
                future.cancel()
            raise
        except BaseException:
            # Ctrl-C or a full disk: start nothing new, but keep what the workers are finishing
            # (they ignore SIGINT), so no finished row is lost.
            for future in flight:
                future.cancel()
            for future in flight:
                if not future.cancelled():
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        break
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class LocalPool:
    """The ``local`` executor: :func:`run_pool` on this machine's cores.

    One worker and no time limit label in the calling process, with no pool
    at all (a worker process is the only thing a time limit can stop).
    """

    name = "local"

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1

    def run(
        self,
        todo: Sequence[J],
        call: Callable[[J], R],
        failed: Callable[[J, str], R],
        limit: TimeLimit,
    ) -> Iterator[R]:
        if self.workers == 1 and math.isinf(limit.floor):
            return (call(job) for job in todo)
        return run_pool(todo, self.workers, call, failed, limit)


def _busy(array: Any, workers: int) -> Iterator[tuple[int, float, int, int]]:
    """``(slot, start, job index, pid)`` of each worker in the middle of a job.

    A worker that dies or is terminated mid-job never clears its start time.
    """
    for slot in range(workers):
        start, index, pid = array[slot * _FIELDS : slot * _FIELDS + _FIELDS]
        if start > 0 and pid > 0:
            yield slot, start, int(index), int(pid)


def _running(array: Any, workers: int) -> set[int]:
    """The jobs whose workers had started them and not finished when the pool broke."""
    return {index for _, _, index, _ in _busy(array, workers)}


def _kill_overdue(
    array: Any, workers: int, flight: dict[Any, Any], limit: TimeLimit
) -> dict[int, float]:
    """SIGKILL every worker past its job's limit; returns the jobs killed."""
    now = time.time()
    running = {job.index: job for job in flight.values()}
    killed = {}
    for slot, start, index, pid in _busy(array, workers):
        job = running.get(index)
        over = None if job is None else limit.overdue(job, now - start)
        if over is None:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        array[slot * _FIELDS] = 0.0
        killed[index] = over
    return killed


__all__ = ["CRASHED", "LocalPool", "TimeLimit", "die_with_parent", "run_pool", "timed_out"]
