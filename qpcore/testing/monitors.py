"""The monitor kit: :func:`assert_monitor_conforms`, the stand-in run it
drives monitors with, and :class:`RecordingMonitor`."""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpcore.hookspecs import hookimpl
from qpcore.testing._common import (
    _call,
    _hostile_folder,
    _params,
    _require,
    _require_escaped,
    _scratch,
)

if TYPE_CHECKING:
    import pluggy

    from qpcore.specs import MonitorSpec

#: The training-event hooks, in the order a run calls them.
EVENTS = (
    "qp_on_fit_start",
    "qp_on_epoch_start",
    "qp_on_batch_end",
    "qp_on_epoch_end",
    "qp_on_fit_end",
    "qp_on_exception",
)
#: Seconds a monitor's threads get to finish after the run ends.
JOIN_GRACE_S = 2.0


class KitRun:
    """A stand-in for :class:`qpcore.trainer.Trainer` as monitors see it.

    It offers the :class:`qpcore.run.Run` protocol with small real objects
    behind it: ``cfg`` (a :class:`~qpcore.config.RunConfig` of defaults),
    ``run_dir`` (an existing folder), ``quiet``, ``state`` (a
    :class:`~qpcore.training_state.RunState` whose ``epoch``, ``history`` and
    ``best_epoch`` the kit advances as the trainer does), ``monitors``,
    ``batches_per_epoch``, ``device`` (cpu), ``model`` (a tiny
    :class:`~qpcore.model.QualityModel` on 3 computed features), ``splits``
    (with cached features), ``loss``, ``optimizer``, ``scheduler`` (None),
    ``cached``, ``request_stop``/``request_rollback`` (recorded in
    ``control``), ``sample_batch`` and ``forward``.
    """

    def __init__(self, run_dir: Path, epochs: int, batches: int, quiet: bool = False) -> None:
        import torch

        from qpcore.backbone import ComputedFeatures
        from qpcore.config import RunConfig
        from qpcore.data.manifest import Sample
        from qpcore.data.protocol import VtracerParams
        from qpcore.model import QualityModel
        from qpcore.monitoring import Control
        from qpcore.training_data import Rows
        from qpcore.training_state import RunState

        self.cfg = RunConfig.model_validate({"trainer": {"epochs": epochs}, "monitors": []})
        self.run_dir = run_dir
        self.quiet = quiet
        self.state = RunState()
        self.monitors: dict[str, object] = {}
        self.batches_per_epoch = batches
        self.device = torch.device("cpu")
        self.control = Control()
        self.cached = True
        backbone = ComputedFeatures("kit_features", _three_features, ("a", "b", "c"), {})
        self.model = QualityModel([backbone], [4], 0.0, False, False)
        self.loss = torch.nn.MSELoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.scheduler = None
        gen = torch.Generator().manual_seed(0)
        samples = [
            Sample(run_dir / f"image-{i}.png", 0.5 + 0.05 * i, VtracerParams(), f"g{i}")
            for i in range(8)
        ]
        self.splits = {
            "train": Rows.of(samples[:6]),
            "val": Rows.of(samples[6:]),
            "test": Rows.of([]),
        }
        for rows in self.splits.values():
            rows.features = torch.rand(len(rows), 3, generator=gen)

    def request_stop(self, reason: str) -> None:
        self.control.request("stop", reason)

    def request_rollback(self, reason: str, lr_factor: float = 0.5) -> None:
        if not 0 < lr_factor <= 1:
            raise ValueError(f"lr_factor must lie in (0, 1], got {lr_factor}")
        self.control.request("rollback", reason, lr_factor)

    def forward(self, inputs: Any, params: Any) -> Any:
        return self.model.predict_features(inputs, params).float()

    def sample_batch(self, size: int) -> tuple[Any, Any, Any]:
        rows = self.splits["train"]
        count = min(size, len(rows))
        assert rows.features is not None
        return rows.features[:count], rows.params[:count], rows.labels[:count]


def _three_features(pixels: Any) -> Any:
    import numpy as np

    return np.asarray([pixels.mean(), pixels.std(), pixels.max()], dtype=np.float32)


def assert_monitor_conforms(
    spec: MonitorSpec,
    params: Mapping[str, Any] | None = None,
    *,
    epochs: int = 2,
    batches: int = 3,
    run_dir: str | Path | None = None,
) -> None:
    """Check that a monitor keeps the contract the trainer relies on.

    The trainer registers each monitor on a per-run pluggy manager holding the
    ``qp_on_*`` hookspecs and calls the hooks with keyword arguments; a
    stateful monitor's ``state_dict()`` goes into every checkpoint as JSON and
    comes back through ``load_state_dict`` on ``--resume``; a monitor with
    ``report(run)`` adds sections to the HTML report. The check asserts that:

    * every ``qp_on_*`` attribute is one of the hooks (a misspelt one is never
      called), is marked with ``qpcore.hookimpl`` (pluggy ignores it otherwise)
      and takes only arguments of that hook, by name, with no default and no
      ``*args``/``**kwargs`` (pluggy never passes an argument that has a
      default); the object registers on a manager as the trainer's does;
    * it lives through ``epochs`` epochs of ``batches`` batches each, with the
      metrics the trainer gives (``grad_norm`` only when the monitor sets
      ``wants_grad_norm``, an undefined ``val_pearson`` as ``None``), on a
      :class:`KitRun` whose folder's path holds markup;
    * ``report(run)``, where present, gives sections that escape that path;
    * ``state_dict()``, where present, is JSON (``monitor_states`` accepts it)
      and a fresh monitor given it by ``load_state_dict`` returns the same;
    * after ``qp_on_fit_end``, and after ``qp_on_exception`` in a run that
      raises in its first epoch, no thread it started is alive and no file it
      opened is open (threads get :data:`JOIN_GRACE_S` seconds to end).

    Args:
        spec: The monitor's registration record.
        params: Raw parameters as a config would give them; ``None`` for defaults.
        epochs: Epochs of the simulated run.
        batches: Training batches per epoch.
        run_dir: Folder to hold the run folders (default: a temporary one).

    Raises:
        AssertionError: Naming the monitor and the broken rule.
    """
    from qpcore.run import ReportingMonitor

    name = spec.name
    validated = _params(spec, params)
    monitor = _call("monitor", name, "the factory", spec.factory, validated)
    _require_hooks(name, monitor)
    with _scratch(run_dir, "qp-kit-monitor-") as root:
        before = _resources()
        run = _run(name, spec, monitor, _hostile_folder(root / "full"), epochs, batches)
        _require_released(name, before, "qp_on_fit_end")
        if isinstance(monitor, ReportingMonitor):
            sections = _call("monitor", name, "report(run)", monitor.report, run)
            _require_escaped("monitor", name, sections, "report(run)")
        if hasattr(monitor, "state_dict"):  # StatefulMonitor, or half of one
            _require_state_round_trip(name, spec, validated, monitor)
        failing = _call("monitor", name, "the factory", spec.factory, validated)
        before = _resources()
        _run(name, spec, failing, _hostile_folder(root / "raises"), epochs, batches, fail=True)
        _require_released(name, before, "qp_on_exception")


def _require_hooks(name: str, monitor: object) -> None:
    from qpcore import hookspecs

    implemented = [a for a in dir(monitor) if a.startswith("qp_on_")]
    _require(
        "monitor",
        name,
        bool(implemented),
        f"{type(monitor).__name__} implements none of the hooks {', '.join(EVENTS)}",
    )
    for attribute in implemented:
        method = getattr(monitor, attribute)
        spec_function = getattr(hookspecs, attribute, None)
        _require(
            "monitor",
            name,
            attribute in EVENTS and spec_function is not None,
            f"{attribute} is not a training hook, so it is never called "
            f"(the hooks are {', '.join(EVENTS)})",
        )
        _require(
            "monitor",
            name,
            callable(method) and getattr(method, f"{hookspecs.PROJECT}_impl", None) is not None,
            f"{attribute} is not marked with @qpcore.hookimpl, so pluggy never calls it",
        )
        allowed = list(inspect.signature(spec_function).parameters)
        for parameter in inspect.signature(method).parameters.values():
            where = f"{attribute}({', '.join(inspect.signature(method).parameters)})"
            _require(
                "monitor",
                name,
                parameter.kind
                not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD),
                f"{where}: *args/**kwargs receive nothing; name the hook's arguments "
                f"({', '.join(allowed)})",
            )
            _require(
                "monitor",
                name,
                parameter.name in allowed,
                f"{where}: the hook has no argument {parameter.name!r}; its signature is "
                f"{attribute}({', '.join(allowed)})",
            )
            _require(
                "monitor",
                name,
                parameter.default is inspect.Parameter.empty,
                f"{where}: {parameter.name!r} has a default, so pluggy never passes it",
            )


def _manager(name: str, monitor: object) -> pluggy.PluginManager:
    import pluggy

    from qpcore import hookspecs

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    _call("monitor", name, "registering on the run's plugin manager", manager.register, monitor)
    return manager


def _run(
    name: str,
    spec: MonitorSpec,
    monitor: object,
    run_dir: Path,
    epochs: int,
    batches: int,
    fail: bool = False,
) -> KitRun:
    """Drive ``monitor`` through a run as the trainer's loop does; with
    ``fail``, the run raises after the first batch and ends in ``qp_on_exception``."""
    from qpcore.run import wants_grad_norm

    run = KitRun(run_dir, epochs, batches)
    run.monitors[spec.name] = monitor
    hook = _manager(name, monitor).hook
    wants_norm = wants_grad_norm([monitor])

    def emit(event: str, **kwargs: Any) -> None:
        _call("monitor", name, f"{event}", lambda: getattr(hook, event)(run=run, **kwargs))

    emit("qp_on_fit_start")
    for epoch in range(1, epochs + 1):
        run.batches_per_epoch = batches
        emit("qp_on_epoch_start", epoch=epoch)
        for batch in range(batches):
            metrics: dict[str, float] = {
                "loss": 0.1 / (epoch + batch),
                "mae": 0.05,
                "lr": 0.01,
                "rows": 8,
                "data_s": 0.001,
                "forward_s": 0.002,
                "backward_s": 0.003,
                "step_s": 0.001,
            }
            if wants_norm:
                metrics["grad_norm"] = 0.5
            emit("qp_on_batch_end", epoch=epoch, batch=batch, metrics=metrics)
            if fail:
                error = RuntimeError("qp-kit: the run failed in its first batch")
                emit("qp_on_exception", error=error)
                return run
        metrics_end: dict[str, Any] = {
            "epoch": epoch,
            "lr": 0.01,
            "train_loss": 0.1 / epoch,
            "train_mae": 0.05,
            "train_mse": 0.01,
            "train_pearson": 0.5,
            "val_loss": 0.12 / epoch,
            "val_mae": 0.06,
            "val_mse": 0.012,
            "val_pearson": None if epoch == 1 else 0.4,  # undefined: constant predictions
            "time_s": 0.05,
            "timestamp": "2024-01-01T00:00:00+00:00",
        }
        run.state.epoch = epoch
        run.state.history.append(metrics_end)
        run.state.best_epoch = epoch
        emit("qp_on_epoch_end", epoch=epoch, metrics=metrics_end)
    results = {
        "run_dir": str(run.run_dir),
        "epochs": run.state.epoch,
        "best_epoch": run.state.best_epoch,
        "stop_reason": None,
        "feature_cache": run.cached,
        "val": {"rows": 2, "mae": 0.06, "mse": 0.012, "pearson": 0.4, "spearman": 0.4},
    }
    emit("qp_on_fit_end", results=results)
    return run


def _require_state_round_trip(name: str, spec: MonitorSpec, params: Any, monitor: Any) -> None:
    from qpcore.monitoring import load_monitor_states, monitor_states

    text = _call("monitor", name, "state_dict() into a checkpoint", monitor_states, {name: monitor})
    _require(
        "monitor",
        name,
        callable(getattr(monitor, "load_state_dict", None)),
        "has state_dict() but no load_state_dict(), so a resumed run loses its state",
    )
    fresh = _call("monitor", name, "the factory", spec.factory, params)
    _call("monitor", name, "load_state_dict()", load_monitor_states, {name: fresh}, text)
    again = _call("monitor", name, "state_dict() after a resume", monitor_states, {name: fresh})
    _require(
        "monitor",
        name,
        json.loads(again) == json.loads(text),
        "a fresh monitor given the saved state by load_state_dict() returns another "
        "state_dict(): a resumed run would not continue where it was",
    )


Resources = tuple[set[int], set[str]]


def _resources() -> Resources:
    """Live threads (by id) and this process's open files (by path)."""
    return {t.ident or 0 for t in threading.enumerate()}, _open_files()


def _open_files() -> set[str]:
    """Open files outside the Python installation: a library may keep its own
    data open for the process's life (matplotlib its fonts), which no monitor
    could close."""
    import sys

    import psutil

    installed = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    return {f.path for f in psutil.Process().open_files() if not f.path.startswith(installed)}


def _require_released(name: str, before: Resources, event: str) -> None:
    deadline = time.monotonic() + JOIN_GRACE_S
    while True:
        threads = [
            t for t in threading.enumerate() if (t.ident or 0) not in before[0] and t.is_alive()
        ]
        if not threads or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    _require(
        "monitor",
        name,
        not threads,
        f"threads {[t.name for t in threads]} are still running after {event}: stop and "
        "join them there (qpcore.monitoring.ClosedWithRun does on fit end and on exception)",
    )
    opened = sorted(_open_files() - before[1])
    _require(
        "monitor",
        name,
        not opened,
        f"files {opened} are still open after {event}: close them there",
    )


class RecordingMonitor:
    """A monitor that records every training event, for tests of the trainer
    and of monitor plugins: ``events`` holds ``(name, epoch, batch)`` tuples and
    ``epoch_metrics`` the metrics of each ``qp_on_epoch_end``.

    Example:
        >>> monitor = RecordingMonitor()
        >>> Trainer(cfg, registry, run_dir, monitors=[monitor]).fit()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, int | None, int | None]] = []
        self.epoch_metrics: list[dict[str, Any]] = []
        self.results: Mapping[str, Any] | None = None
        self.error: BaseException | None = None

    @hookimpl
    def qp_on_fit_start(self, run: Any) -> None:
        self.events.append(("fit_start", None, None))

    @hookimpl
    def qp_on_epoch_start(self, run: Any, epoch: int) -> None:
        self.events.append(("epoch_start", epoch, None))

    @hookimpl
    def qp_on_batch_end(
        self, run: Any, epoch: int, batch: int, metrics: Mapping[str, float]
    ) -> None:
        self.events.append(("batch_end", epoch, batch))

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        self.events.append(("epoch_end", epoch, None))
        self.epoch_metrics.append(dict(metrics))

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Mapping[str, Any]) -> None:
        self.events.append(("fit_end", None, None))
        self.results = results

    @hookimpl
    def qp_on_exception(self, run: Any, error: BaseException) -> None:
        self.events.append(("exception", None, None))
        self.error = error


__all__ = ["EVENTS", "KitRun", "RecordingMonitor", "assert_monitor_conforms"]
