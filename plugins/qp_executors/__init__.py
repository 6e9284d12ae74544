"""Built-in executors: ``local`` (processes on this machine) and ``ray`` (a Ray cluster).

Both register exactly as a third-party executor would. ``ray`` imports Ray
only when used, so the extra ``qpcore[ray]`` is needed only by those who pick it.
"""

from __future__ import annotations

from pydantic import Field

from qpcore import ExecutorParams, ExecutorSpec, hookimpl
from qpcore.data.pool import LocalPool


def local_executor(params: ExecutorParams) -> LocalPool:
    return LocalPool(params.workers)


class RayParams(ExecutorParams):
    address: str | None = Field(
        None,
        description="Cluster to join: auto (the one `ray start` made here), ray://HOST:PORT, "
        "or null for a private local Ray with `workers` CPUs.",
    )


def ray_executor(params: RayParams) -> object:
    from qp_executors.ray import RayExecutor

    return RayExecutor(params.address, params.workers)


@hookimpl
def qp_register_executors() -> list[ExecutorSpec]:
    return [
        ExecutorSpec(
            "local",
            local_executor,
            ExecutorParams,
            "Worker processes on this machine, with per-image time limits (the default).",
        ),
        ExecutorSpec(
            "ray",
            ray_executor,
            RayParams,
            "Tasks on a Ray cluster, or a private local Ray (extra: pip install 'qpcore[ray]').",
        ),
    ]
