"""The ``ray`` executor: labelling jobs as Ray tasks.

Ray schedules and retries (a task whose worker dies runs again once:
``max_retries=1``); this module keeps the labeller's guarantees on top. At
most as many tasks are in flight as the cluster has CPUs, so a task starts
about when it is submitted and its time limit counts from then; a task past
its limit is cancelled with ``force=True``, which kills its worker (a trace
holds the GIL, so nothing softer would stop it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from qpcore.data.pool import CRASHED, POLL_S, TimeLimit, timed_out
from qpcore.errors import DiskFull, QPError

R = TypeVar("R")

INSTALL = "pip install 'qpcore[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise QPError(f"the ray executor needs Ray, which is not installed: {INSTALL}") from None
    return ray


def _call(call: Callable[[Any], Any], job: Any) -> Any:
    return call(job)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, workers: int) -> None:
        self.ray = import_ray()
        self.address = address
        self.workers = workers

    def _connect(self) -> bool:
        """Join (or start) Ray; returns whether this call started it."""
        if self.ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address is None:
            options["num_cpus"] = self.workers or None
        try:
            self.ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise QPError(
                f"cannot reach Ray at {self.address or 'a local instance'}: {exc}"
            ) from exc
        return True

    def run(
        self,
        todo: Sequence[Any],
        call: Callable[[Any], R],
        failed: Callable[[Any, str], R],
        limit: TimeLimit,
    ) -> Iterator[R]:
        ray = self.ray
        started = self._connect()
        try:
            task = ray.remote(max_retries=1, num_cpus=1)(_call)
            capacity = self.workers or int(ray.cluster_resources().get("CPU", 1))
            shared = ray.put(call)
            queue = list(reversed(todo))
            flight: dict[Any, tuple[Any, float]] = {}
            stopped: dict[Any, float] = {}
            try:
                while queue or flight:
                    while queue and len(flight) < capacity:
                        job = queue.pop()
                        flight[task.remote(shared, job)] = (job, time.monotonic())
                    ready, _ = ray.wait(list(flight), num_returns=1, timeout=POLL_S)
                    for ref in ready:
                        job, _ = flight.pop(ref)
                        yield self._result(ref, job, failed, stopped.pop(ref, None))
                    now = time.monotonic()
                    for ref, (job, start) in flight.items():
                        over = limit.overdue(job, now - start) if ref not in stopped else None
                        if over is not None:
                            ray.cancel(ref, force=True)
                            stopped[ref] = over
            except BaseException:
                for ref in flight:
                    ray.cancel(ref, force=True)
                raise
        finally:
            if started:
                ray.shutdown()

    def _result(self, ref: Any, job: Any, failed: Callable[[Any, str], R], over: float | None) -> R:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return failed(job, timed_out(over or 0.0))
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, DiskFull):
                raise DiskFull(str(cause).splitlines()[-1]) from None
            if over is not None:
                return failed(job, timed_out(over))
            return failed(job, CRASHED)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.RayError):
            return failed(job, timed_out(over) if over is not None else CRASHED)
