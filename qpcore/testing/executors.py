"""The executor kit: :func:`assert_executor_conforms`.

The jobs and the functions run on them live at module level here, so any
executor (worker processes, a Ray cluster) can pickle them by reference.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpcore.testing._common import _call, _fail, _params, _require, _scratch

if TYPE_CHECKING:
    from qpcore.executor import Executor
    from qpcore.specs import ExecutorSpec

#: Jobs of the mapping check.
JOBS = 12
#: Seconds an executor's threads and processes get to end after a run.
GRACE_S = 5.0
#: Seconds the job beside one whose worker always dies sleeps: long enough to
#: be running when the other dies, on a pool whose workers die together.
BYSTANDER_S = 0.5
#: What a job that crashes returns when it runs in the caller's own process,
#: where crashing would end the test run instead of one worker.
IN_PROCESS = "ran in the calling process"


@dataclass(frozen=True)
class KitJob:
    """One job: ``index`` as the protocol asks, and what it is told to do."""

    index: int
    action: str = "square"
    seconds: float = 0.0
    marker: str = ""
    caller: int = 0


def kit_call(job: KitJob) -> Any:
    """What the kit's jobs do: square their index, sleep, raise DiskFull or
    kill their own worker (once or every time)."""
    if job.action == "sleep":
        time.sleep(job.seconds)
        return ("slept", job.index)
    if job.action == "disk_full":
        from qpcore.errors import DiskFull

        raise DiskFull("qp-kit: disk full")
    if job.action in ("crash_once", "crash_always"):
        if os.getpid() == job.caller:
            return (IN_PROCESS, job.index)
        marker = Path(job.marker)
        if job.action == "crash_always" or not marker.exists():
            marker.touch()
            os._exit(1)
        return ("survived", job.index)
    return ("square", job.index, job.index**2)


def kit_failed(job: KitJob, error: str) -> Any:
    """The result of a job that crashed twice or ran past its limit."""
    return ("failed", job.index, error)


def assert_executor_conforms(
    spec: ExecutorSpec,
    params: Mapping[str, Any] | None = None,
    *,
    limit_s: float = 1.0,
    workdir: str | Path | None = None,
) -> None:
    """Check that an executor keeps the :class:`qpcore.executor.Executor` protocol.

    The labeller and the feature cache hand an executor picklable jobs (each
    with an ``index``) and consume ``run(todo, call, failed, limit)`` as
    results arrive, placing each by its job's index; the labeller writes every
    file itself. So the check asserts that:

    * the factory's object has a ``name`` and a ``run`` that returns an iterator;
    * every job's result comes back exactly once (in any order: results are
      yielded as jobs finish), and is what ``call`` returned for that job;
    * ``DiskFull`` raised by ``call`` reaches the caller as ``DiskFull``;
    * a job still running after its ``limit`` (``limit_s`` seconds) is stopped
      and reported as ``failed(job, timed_out(limit_s))`` while the others finish;
    * a job whose worker dies once is retried and succeeds; one whose worker
      dies every time is reported as ``failed(job, CRASHED)``, and a job that
      ran beside it is not blamed: it comes back with its own result (an
      executor that runs jobs in the calling process has no worker to lose and
      skips this);
    * a consumer that stops reading after the first result (``close()`` on the
      iterator) gets control back, and after every run no thread and no child
      process of the caller that the executor started is left (a cluster the
      executor joined keeps its own workers).

    Args:
        spec: The executor's registration record.
        params: Raw parameters as a config would give them (``workers`` ...);
            ``None`` for defaults.
        limit_s: The time limit of the time-limit check; the job it stops would
            sleep 20 times as long.
        workdir: Folder for the crash markers (default: a temporary one).

    Raises:
        AssertionError: Naming the executor and the broken rule.
    """
    from qpcore.data.pool import CRASHED, TimeLimit, timed_out
    from qpcore.errors import DiskFull

    name = spec.name
    executor = _call("executor", name, "the factory", spec.factory, _params(spec, params))
    _require(
        "executor",
        name,
        isinstance(getattr(executor, "name", None), str)
        and callable(getattr(executor, "run", None)),
        f"{type(executor).__name__} lacks the protocol's name and run(todo, call, failed, limit)",
    )
    me = os.getpid()

    jobs = [KitJob(i) for i in range(JOBS)]
    got = _results(name, executor, jobs, TimeLimit(), "mapping")
    _require_each(name, jobs, got, {j.index: kit_call(j) for j in jobs}, "mapping")

    slow = KitJob(0, "sleep", seconds=20 * limit_s)
    quick = [KitJob(i) for i in (1, 2)]
    got = _results(name, executor, [slow, *quick], TimeLimit(floor=limit_s), "time limit")
    expected = {0: kit_failed(slow, timed_out(limit_s)), **{j.index: kit_call(j) for j in quick}}
    _require_each(name, [slow, *quick], got, expected, "a job past its time limit")

    with _scratch(workdir, "qp-kit-executor-") as root:
        # A finite limit: an executor may run jobs in the caller without one.
        limit = TimeLimit(floor=max(60.0, 60 * limit_s))
        once = KitJob(0, "crash_once", marker=str(root / "once"), caller=me)
        got = _results(name, executor, [once], limit, "crash once")
        in_process = got == [(IN_PROCESS, 0)]
        _require(
            "executor",
            name,
            in_process or got == [("survived", 0)],
            f"a job whose worker died once gave {got}, not its result on the retry "
            "(the protocol retries a job whose worker died once)",
        )
        if not in_process:
            always = KitJob(0, "crash_always", marker=str(root / "always"), caller=me)
            bystander = KitJob(1, "sleep", seconds=BYSTANDER_S)
            got = _results(name, executor, [always, bystander], limit, "crash always")
            expected = {0: kit_failed(always, CRASHED), 1: kit_call(bystander)}
            what = "a job whose worker always dies"
            _require_each(name, [always, bystander], got, expected, what)

    before = _resources()
    stream = _stream(name, executor, [KitJob(0, "disk_full"), *jobs[1:4]], TimeLimit())
    try:
        list(stream)
    except DiskFull:
        pass
    except Exception as exc:
        _fail(
            "executor",
            name,
            f"DiskFull raised by a job reached the caller as {type(exc).__name__}: {exc}",
        )
    else:
        _fail("executor", name, "DiskFull raised by a job never reached the caller")
    _require_released(name, before, "a job raised DiskFull")

    before = _resources()
    stream = _stream(name, executor, [KitJob(i) for i in range(JOBS)], TimeLimit())
    _call("executor", name, "run() yielding a first result", next, stream)
    close: Callable[[], Any] | None = getattr(stream, "close", None)
    if close is not None:
        _call("executor", name, "close() of run()'s iterator", close)
    _require_released(name, before, "the consumer stopped after the first result")


def _stream(name: str, executor: Executor, todo: list[KitJob], limit: Any) -> Iterator[Any]:
    results = _call("executor", name, "run()", executor.run, todo, kit_call, kit_failed, limit)
    _require(
        "executor",
        name,
        isinstance(results, Iterator),
        f"run() returned {type(results).__name__}, not an iterator: results are "
        "consumed as they arrive",
    )
    return results


def _results(name: str, executor: Executor, todo: list[KitJob], limit: Any, what: str) -> list[Any]:
    before = _resources()
    results = _call("executor", name, f"run() ({what})", list, _stream(name, executor, todo, limit))
    _require_released(name, before, f"run() ({what}) finished")
    return results


def _require_each(
    name: str, jobs: list[KitJob], got: list[Any], expected: Mapping[int, Any], what: str
) -> None:
    indexes = [r[1] for r in got if isinstance(r, tuple) and len(r) > 1]
    _require(
        "executor",
        name,
        len(got) == len(jobs) and sorted(indexes) == sorted(j.index for j in jobs),
        f"{what}: {len(jobs)} jobs gave {len(got)} results, for jobs {sorted(indexes)}: "
        "every job's result must come back exactly once",
    )
    for result in got:
        _require(
            "executor",
            name,
            result == expected[result[1]],
            f"{what}: job {result[1]} gave {result!r}, not {expected[result[1]]!r}",
        )


Resources = tuple[set[int], set[int]]


def _resources() -> Resources:
    import psutil

    children = {p.pid for p in psutil.Process().children()}
    return {t.ident or 0 for t in threading.enumerate()}, children


def _require_released(name: str, before: Resources, when: str) -> None:
    """Threads and child processes the run started are gone (after :data:`GRACE_S`)."""
    import psutil

    deadline = time.monotonic() + GRACE_S
    while True:
        threads = [t.name for t in threading.enumerate() if (t.ident or 0) not in before[0]]
        children = [
            p for p in psutil.Process().children() if p.pid not in before[1] and _running(p)
        ]
        if (not threads and not children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    _require(
        "executor",
        name,
        not threads,
        f"threads {threads} are still running after {when}",
    )
    _require(
        "executor",
        name,
        not children,
        f"child processes {[_describe(p) for p in children]} are still running after {when}",
    )


def _running(process: Any) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(process: Any) -> str:
    try:
        return f"{process.pid} {process.name()}"
    except Exception:
        return str(process.pid)


__all__ = ["IN_PROCESS", "KitJob", "assert_executor_conforms", "kit_call", "kit_failed"]
