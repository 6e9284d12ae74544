"""Executors: where data-parallel work (labelling images) runs.

An executor is a plugin (``qp_register_executors``), picked by name with
``--executor`` or ``data.executor``: ``local`` (processes on this machine, the
default) or ``ray`` (a Ray cluster, optional extra ``qpcore[ray]``). The
labeller owns every file it writes, in the calling process; an executor only
runs jobs and hands back their results. So the manifest, ``errors.csv``,
resume and the progress bar are the same whatever the executor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from qpcore.data.pool import TimeLimit
from qpcore.errors import QPError

J = TypeVar("J")
R = TypeVar("R")


class Executor(Protocol):
    """What an executor plugin's factory returns."""

    name: str

    def run(
        self,
        todo: Sequence[Any],
        call: Callable[[Any], R],
        failed: Callable[[Any, str], R],
        limit: TimeLimit,
    ) -> Iterator[R]:
        """Run ``call(job)`` for each job; yield results as they finish.

        Args:
            todo: Jobs (each has an ``index``), in submission order.
            call: A picklable function of one job; it never raises for a bad
                input (its result says so), but may raise ``DiskFull``, which
                must reach the caller.
            failed: Makes the result of a job that crashed twice (the executor
                retries a job whose worker died once) or ran past its limit;
                use :data:`qpcore.data.pool.CRASHED` and
                :func:`qpcore.data.pool.timed_out` for the message, so every
                executor writes the same ``errors.csv``.
            limit: How long one job may run before it is stopped.
        """
        ...


def build_executor(name: str, registry: Any = None, **settings: Any) -> Executor:
    """The executor called ``name``, given the settings its params declare.

    Settings an executor does not take (``address`` for ``local``) are left
    out, so one command line serves every executor; a ``None`` keeps the default.
    """
    from qpcore.registry import default_registry

    registry = registry or default_registry()
    spec = registry.get("executor", name, at="--executor")
    known = spec.params.model_fields
    given = {k: v for k, v in settings.items() if k in known and v is not None}
    unused = sorted(k for k, v in settings.items() if k not in known and v is not None)
    if unused:
        raise QPError(f"executor {name!r} takes no {', '.join(unused)}")
    try:
        params = spec.params(**given)
    except ValueError as exc:
        raise QPError(f"executor {name!r}: {exc}") from exc
    return spec.build(params)


__all__ = ["Executor", "build_executor"]
