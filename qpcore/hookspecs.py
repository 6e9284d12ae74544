"""Every hook qpcore calls.

Two families live here. Registration hooks (``qp_register_<kind>s``) are called once
per process on the global plugin manager; each returns records describing the
components a plugin offers. Training-event hooks (``qp_on_*``) are called on a
per-run plugin manager that holds only the monitor and evaluator instances a config
names, so installing a package never changes a run by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

from qpcore.specs import (
    KINDS,
    PLURALS,
    BackboneSpec,
    DatasetSpec,
    EvaluatorSpec,
    ExecutorSpec,
    LossSpec,
    MonitorSpec,
    OptimizerSpec,
    SchedulerSpec,
)

PROJECT = "qpcore"
if TYPE_CHECKING:
    from qpcore.run import Run

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration ------------------------------------------------------------


@hookspec
def qp_register_losses() -> Iterable[LossSpec]:
    """Return the losses this plugin provides.

    Names are unique across all installed plugins: a name offered twice stops any
    run and ``qp plugins`` shows both providers.

    Returns:
        The plugin's loss records (an empty list is fine).

    Example:
        >>> @hookimpl
        ... def qp_register_losses():
        ...     return [LossSpec("mse", MSELoss, summary="Mean squared error")]
    """


@hookspec
def qp_register_optimizers() -> Iterable[OptimizerSpec]:
    """Return the optimizers this plugin provides.

    Returns:
        Records whose factory is ``factory(param_groups, params)``.

    Example:
        >>> @hookimpl
        ... def qp_register_optimizers():
        ...     return [OptimizerSpec("sgd", build_sgd, params=SGDParams)]
    """


@hookspec
def qp_register_schedulers() -> Iterable[SchedulerSpec]:
    """Return the learning-rate schedulers this plugin provides.

    Returns:
        Records whose factory is ``factory(optimizer, params, context)``; their
        params derive from ``qpcore.schedulers.SchedulerParams``.

    Example:
        >>> @hookimpl
        ... def qp_register_schedulers():
        ...     return [SchedulerSpec("cosine", build_cosine, params=CosineParams)]
    """


@hookspec
def qp_register_evaluators() -> Iterable[EvaluatorSpec]:
    """Return the evaluators this plugin provides.

    Returns:
        Records whose factory is ``factory(params)``.

    Example:
        >>> @hookimpl
        ... def qp_register_evaluators():
        ...     return [EvaluatorSpec("bands", BandsEvaluator, params=BandsParams)]
    """


@hookspec
def qp_register_monitors() -> Iterable[MonitorSpec]:
    """Return the training monitors this plugin provides.

    Returns:
        Records whose factory is ``factory(params)``; the object it builds
        implements any of the ``qp_on_*`` hooks below.

    Example:
        >>> @hookimpl
        ... def qp_register_monitors():
        ...     return [MonitorSpec("jsonl", JsonlMonitor, params=JsonlParams)]
    """


@hookspec
def qp_register_backbones() -> Iterable[BackboneSpec]:
    """Return the feature extractors this plugin provides.

    Returns:
        Records whose factory is ``factory(params) -> torch.nn.Module``.

    Example:
        >>> @hookimpl
        ... def qp_register_backbones():
        ...     return [BackboneSpec("resnet50", build_resnet50, num_features=2048)]
    """


@hookspec
def qp_register_datasets() -> Iterable[DatasetSpec]:
    """Return the datasets this plugin provides.

    Returns:
        Records whose factory is ``factory(params)``.

    Example:
        >>> @hookimpl
        ... def qp_register_datasets():
        ...     return [DatasetSpec("manifest", load_manifest, params=ManifestParams)]
    """


@hookspec
def qp_register_executors() -> Iterable[ExecutorSpec]:
    """Return the executors (where labelling jobs run) this plugin provides.

    Returns:
        Records whose factory is ``factory(params)``, returning an object
        that implements :class:`qpcore.executor.Executor`.

    Example:
        >>> @hookimpl
        ... def qp_register_executors():
        ...     return [ExecutorSpec("ray", RayExecutor, params=RayParams)]
    """


# --- training events (per-run manager) ---------------------------------------


@hookspec
def qp_on_fit_start(run: Run) -> None:
    """Called once before the first epoch (and again after a resume).

    Args:
        run: The running trainer, as :class:`qpcore.run.Run` describes it: its
            config, folder, state, model, optimizer and splits.

    Example:
        >>> @hookimpl
        ... def qp_on_fit_start(self, run):
        ...     self.started = time.monotonic()
    """


@hookspec
def qp_on_epoch_start(run: Run, epoch: int) -> None:
    """Called at the start of each epoch.

    Args:
        run: The running trainer.
        epoch: Zero-based epoch index.

    Example:
        >>> @hookimpl
        ... def qp_on_epoch_start(self, run, epoch):
        ...     self.batch_times.clear()
    """


@hookspec
def qp_on_batch_end(run: Run, epoch: int, batch: int, metrics: Mapping[str, float]) -> None:
    """Called after each training batch.

    Args:
        run: The running trainer.
        epoch: Zero-based epoch index.
        batch: Zero-based batch index within the epoch.
        metrics: Batch values (plain numbers): ``loss``, ``mae``, ``lr``, ``rows``,
            the seconds of each phase (``data_s``, ``forward_s``, ``backward_s``,
            ``step_s``) and ``grad_norm`` when it was computed.

    Example:
        >>> @hookimpl
        ... def qp_on_batch_end(self, run, epoch, batch, metrics):
        ...     self.losses.append(metrics["loss"])
    """


@hookspec
def qp_on_epoch_end(run: Run, epoch: int, metrics: Mapping[str, float]) -> None:
    """Called after validation at the end of each epoch.

    Args:
        run: The running trainer.
        epoch: Zero-based epoch index.
        metrics: Epoch metrics (``train_loss``, ``val_loss``, ``val_pearson``, ``lr``...).

    Example:
        >>> @hookimpl
        ... def qp_on_epoch_end(self, run, epoch, metrics):
        ...     print(epoch, metrics["val_loss"])
    """


@hookspec
def qp_on_fit_end(run: Run, results: Mapping[str, Any]) -> None:
    """Called once after the last epoch, also after early stopping.

    Args:
        run: The running trainer.
        results: Summary of the run (best epoch, best metrics, timings).

    Example:
        >>> @hookimpl
        ... def qp_on_fit_end(self, run, results):
        ...     self.write_report(results)
    """


@hookspec
def qp_on_exception(run: Run, error: BaseException) -> None:
    """Called when training raises (also on Ctrl-C), before the error propagates.

    Args:
        run: The running trainer.
        error: The exception, including ``KeyboardInterrupt``.

    Example:
        >>> @hookimpl
        ... def qp_on_exception(self, run, error):
        ...     self.stop_threads()
    """


#: The registration hook of each kind: ``qp_register_<plural>``.
REGISTRATION_HOOKS: dict[str, str] = {kind: f"qp_register_{PLURALS[kind]}" for kind in KINDS}
