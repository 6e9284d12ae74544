"""``qp sweep``: how sensitive a run is to its hyperparameters, measured with Optuna.

A sweep trains one ordinary run per trial (``DIR/trials/trial-<number>/``) from
a base config with the trial's values set as ``--set`` overrides would set them,
and scores it by the best value of the run's early-stopping metric on
validation. Optuna's TPE sampler picks the values, a pruner stops poor trials
early through the trainer's own stop request (so a pruned trial is a valid,
stopped run folder), and fANOVA says afterwards which parameter mattered.

Design points:

* The study lives in ``DIR/study.db`` (SQLite), with the sweep's definition
  (params, base config, metric and direction) in its user attributes: a rerun
  continues it, and a rerun that defines a different sweep is refused rather
  than mixed into it.
* Trials are claimed under a file lock that counts the finished *and* running
  ones, so ``--trials N`` ends with exactly N finished trials, also with
  several workers (Optuna's ``MaxTrialsCallback`` only stops workers after the
  fact, and each running worker then adds one more).
* ``--jobs J`` starts J processes that share the SQLite storage (Optuna's own
  pattern for parallel studies). The project's executors are built for a list
  of independent labelling jobs known up front; a trial's values depend on the
  trials finished before it, which a fixed job list cannot express.
* Trials left ``RUNNING`` by a crash or a kill are marked failed when the next
  sweep on ``DIR`` starts; the folder lock guarantees no live sweep owns them.
  Every trial number is new, so an old trial's folder never blocks a new trial.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qpcore.errors import ConfigError, QPError
from qpcore.hookspecs import hookimpl
from qpcore.specs import KINDS
from qpcore.sweep_params import (
    GRAMMAR,
    ParamSpec,
    overlaps,
    parse_param,
    parse_params,
    short_value,
    yaml_scalar,
)
from qpcore.sweep_report import BEST_YAML

if TYPE_CHECKING:
    import optuna

    from qpcore.config import RunConfig
    from qpcore.data.dataset import LabelledData
    from qpcore.registry import Registry

STUDY_NAME = "qp-sweep"
DB_FILE = "study.db"
TRIALS_DIR = "trials"
REPORT_JSON = "sweep.json"
REPORT_HTML = "report.html"
#: The study user attribute holding the sweep's definition.
DEFINITION_ATTR = "qp_sweep"
#: Held while a worker counts trials and asks for a new one.
CLAIM_LOCK = ".claim.lock"
#: Bumped when the stored definition changes shape.
DEFINITION_FORMAT = 1
#: A worker gives up after this many failed trials in a row: a config that
#: cannot train fails every trial, and a sweep should say so, not loop.
MAX_FAILURES_IN_A_ROW = 5
#: How long (seconds) the SQLite driver waits for another worker's write.
SQLITE_TIMEOUT_S = 60
PRUNERS = ("median", "hyperband", "none")


# --- the sweep's definition ----------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """What a study sweeps, stored with it so a rerun continues the same sweep.

    Attributes:
        params: The swept paths.
        metric: The early-stopping monitor, the objective.
        direction: ``minimize`` or ``maximize``, from the metric.
        source: Where the base config came from (for messages and the report).
        overrides: The ``--set`` overrides every trial gets.
        data: The base config as plain data, overrides applied (trials start here).
        config: The base config resolved (every default filled in).
    """

    params: tuple[ParamSpec, ...]
    metric: str
    direction: Literal["minimize", "maximize"]
    source: str
    overrides: tuple[str, ...]
    data: dict[str, Any]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DEFINITION_FORMAT,
            "params": [p.to_dict() for p in self.params],
            "metric": self.metric,
            "direction": self.direction,
            "source": self.source,
            "overrides": list(self.overrides),
            "data": self.data,
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, found: Mapping[str, Any]) -> Definition:
        return cls(
            params=tuple(ParamSpec.from_dict(p) for p in found["params"]),
            metric=found["metric"],
            direction=found["direction"],
            source=found["source"],
            overrides=tuple(found["overrides"]),
            data=found["data"],
            config=found["config"],
        )

    def differences(self, other: Definition) -> list[str]:
        """What makes ``other`` a different sweep (the output section aside:
        trials write to their own folders whatever it says)."""
        found = []
        mine = sorted(json.dumps(p.to_dict(), sort_keys=True) for p in self.params)
        theirs = sorted(json.dumps(p.to_dict(), sort_keys=True) for p in other.params)
        if mine != theirs:
            found.append(
                f"params: stored {', '.join(p.describe() for p in self.params)}; "
                f"given {', '.join(p.describe() for p in other.params)}"
            )
        if (self.metric, self.direction) != (other.metric, other.direction):
            found.append(
                f"objective: stored {self.metric} ({self.direction}); "
                f"given {other.metric} ({other.direction})"
            )
        keys = _changed_keys(_without_output(self.config), _without_output(other.config))
        if keys:
            more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
            found.append(f"base config: {', '.join(keys[:5])}{more} differ")
        return found


def _without_output(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "output"}


def _changed_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = sorted(set(a) | set(b), key=str)
        return [k for key in keys for k in _changed_keys(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".") or "(top level)"]


def _read_base(
    config: str | Path | Mapping[str, Any] | None, overrides: Sequence[str], registry: Registry
) -> tuple[dict[str, Any], RunConfig, str, list[Any]]:
    """The base config as data (overrides applied) and resolved, as ``qp train
    CONFIG --set ...`` would read it."""
    from qpcore.config_io import apply_overrides, read_config_source
    from qpcore.validate import resolve_config

    data, lines, source = read_config_source(config)
    overridden = apply_overrides(data, overrides)
    cfg = resolve_config(data, registry, source, lines, True, overridden)
    return data, cfg, source, overridden


def trial_data(
    base: Mapping[str, Any], params: Sequence[ParamSpec], values: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Any]]:
    """The base config with a trial's values set, and the paths set (so a
    config error there points at them, not at a line of the file)."""
    from qpcore.config_io import apply_overrides

    data = copy.deepcopy(dict(base))
    paths = apply_overrides(data, [p.override(values[p.path]) for p in params])
    return data, paths


def check_params(
    params: Sequence[ParamSpec],
    data: Mapping[str, Any],
    overridden: Sequence[Any],
    registry: Registry,
    source: str,
) -> None:
    """Resolve the base config with each param at each end of its range (its
    first and last choice): a path that does not exist or a value the config
    refuses fails here, naming the ``--param``, before any trial trains."""
    from qpcore.validate import resolve_config

    with_set = [".".join(str(part) for part in path) for path in overridden]
    for spec in params:
        for path in with_set:
            if overlaps(spec.path, path):
                raise QPError(
                    f"--param {spec.label}: --set {path} sets it too (the trial's value "
                    "would replace it, or it the trial's); drop one"
                )
        for value in spec.samples():
            try:
                trial, paths = trial_data(data, [spec], {spec.path: value})
                resolve_config(trial, registry, source, None, True, [*overridden, *paths])
            except QPError as exc:
                raise QPError(
                    f"--param {spec.label}: {spec.path}={yaml_scalar(value)} gives a config "
                    f"that cannot run:\n{_trial_problems(spec, exc)}"
                ) from None


def _trial_problems(spec: ParamSpec, exc: QPError) -> str:
    """The config's problems with one value of ``spec``: the value's own are
    shown at its path (they were set as overrides, but not by a ``--set``),
    with a hint when a float range meets an integer setting."""
    if not isinstance(exc, ConfigError):
        return str(exc)
    mine = [i for i in exc.issues if overlaps(i.path, spec.path)]
    lines = [
        str(replace(i, from_set=False, message=i.message.removeprefix("--set: ")))
        if i in mine
        else str(i)
        for i in exc.issues
    ]
    text = "\n".join("  " + line.replace("\n", "\n    ") for line in lines)
    integer = any("valid integer" in i.message for i in mine)
    if integer and spec.kind in ("float", "log"):
        text += f"\n(an integer setting? sweep it as {spec.path}=int:LOW:HIGH)"
    return text


# --- storage ------------------------------------------------------------------


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise QPError(
            "qp sweep needs Optuna, an optional extra: pip install 'qpcore[sweep]'"
        ) from None
    return optuna


def storage_url(out: Path) -> str:
    return f"sqlite:///{(out / DB_FILE).resolve()}"


def open_storage(out: Path) -> optuna.storages.RDBStorage:
    """The study's SQLite storage; writers of other workers are waited for
    (``SQLITE_TIMEOUT_S``) instead of failing with "database is locked"."""
    optuna = _optuna()
    return optuna.storages.RDBStorage(
        storage_url(out), engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    )


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """``median``: prune a trial whose metric is worse than the median of earlier
    trials at the same epoch, once 5 trials finished and after the first fifth
    of the epochs (early epochs of a small learning rate look bad and are not);
    ``hyperband``: successive halving over epochs; ``none``: never prune."""
    optuna = _optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 5))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, epochs // 20), max_resource=epochs, reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise QPError(f"--pruner {name!r}: expected one of {', '.join(PRUNERS)}")


def _sampler_seed(seed: int, start: int, worker: int) -> int:
    """The sampler's seed for one worker of one session: ``seed`` itself for a
    new sequential sweep; otherwise derived, so a resumed session or a second
    worker does not replay the random draws that started the study."""
    if start == 0 and worker == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, start, worker]).generate_state(1)[0])


def _fail_running(storage: Any, study: Any, reason: str) -> list[int]:
    """Mark trials still ``RUNNING`` failed (their process is gone: the folder
    lock says no sweep holds them); returns their numbers."""
    optuna = _optuna()
    running = optuna.trial.TrialState.RUNNING
    study_id = storage.get_study_id_from_name(study.study_name)
    numbers = []
    for frozen in study.get_trials(deepcopy=False, states=(running,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        storage.set_trial_user_attr(trial_id, "error", reason)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        numbers.append(frozen.number)
    return numbers


# --- trials -------------------------------------------------------------------


class _PruningMonitor:
    """Reports the objective each epoch and, when the pruner says so, asks the
    trainer to stop after the epoch: the trainer saves it, scores the best
    weights and writes results.json, so the pruned trial is a normal stopped run."""

    def __init__(self, trial: optuna.trial.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        from qpcore.early_stopping import watched

        value = watched(metrics).get(self.metric)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return
        self.trial.report(float(value), epoch)
        last = epoch >= run.cfg.trainer.epochs  # stopping there saves nothing
        if self.pruned_at is None and not last and self.trial.should_prune():
            self.pruned_at = epoch
            run.request_stop(f"pruned by the sweep at epoch {epoch} ({self.metric} {value:.4g})")


class _NoValue(QPError):
    """No epoch of a trial gave a finite objective."""


def best_value(history: Sequence[Mapping[str, Any]], metric: str) -> float | None:
    """The best finite ``metric`` over a run's epochs, in its direction
    (:func:`qpcore.epoch_metrics.metric_mode`)."""
    from qpcore.early_stopping import improves, watched
    from qpcore.epoch_metrics import metric_mode

    best: float | None = None
    for row in history:
        value = watched(row).get(metric)
        if isinstance(value, int | float) and improves(float(value), best, metric_mode(metric)):
            best = float(value)
    return best


@dataclass
class _Job:
    """What a worker needs to run trials (pickled to worker processes)."""

    out: Path
    trials: int
    definition: dict[str, Any]
    pruner: Any
    seed: int
    start: int
    quiet: bool
    threads: int | None = None


@dataclass
class _Worker:
    """One worker's trial loop, its dataset cache and its registry."""

    job: _Job
    index: int
    registry: Registry
    definition: Definition = field(init=False)
    datasets: dict[str, LabelledData] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.definition = Definition.from_dict(self.job.definition)

    def run(self) -> None:
        """Claim and train trials until the study holds ``job.trials`` finished
        (or running) ones; stop after ``MAX_FAILURES_IN_A_ROW`` failures."""
        optuna = _optuna()
        from filelock import FileLock

        states = optuna.trial.TrialState
        job = self.job
        sampler = optuna.samplers.TPESampler(
            # constant_liar: parallel workers do not all draw the point TPE likes
            # best (the default only from Optuna 5).
            seed=_sampler_seed(job.seed, job.start, self.index),
            constant_liar=True,
        )
        study = optuna.load_study(
            study_name=STUDY_NAME, storage=open_storage(job.out), sampler=sampler, pruner=job.pruner
        )
        failures = 0
        lock = FileLock(job.out / CLAIM_LOCK)
        while failures < MAX_FAILURES_IN_A_ROW:
            with lock:
                taken = study.get_trials(
                    deepcopy=False, states=(states.COMPLETE, states.PRUNED, states.RUNNING)
                )
                if len(taken) >= job.trials:
                    return
                trial = study.ask()
            started = time.monotonic()
            try:
                value = self.objective(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=states.PRUNED)
                failures = 0
                self._say(trial, "PRUNED", None, started)
            except KeyboardInterrupt:
                trial.set_user_attr("error", "interrupted (Ctrl-C)")
                study.tell(trial, state=states.FAIL)
                self._say(trial, "FAIL", None, started, "interrupted")
                raise
            except Exception as exc:
                failures += 1
                message = str(exc) if isinstance(exc, QPError) else f"{type(exc).__name__}: {exc}"
                trial.set_user_attr("error", message[:2000])
                if not isinstance(exc, QPError):
                    trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
                study.tell(trial, state=states.FAIL)
                self._say(trial, "FAIL", None, started, message.splitlines()[0])
            else:
                study.tell(trial, value)
                failures = 0
                self._say(trial, "COMPLETE", value, started)
            finally:
                gc.collect()

    def objective(self, trial: optuna.trial.Trial) -> float:
        """Train the trial's run; its value is the best epoch's metric. Raises
        ``optuna.TrialPruned`` after a pruned run has stopped and saved."""
        optuna = _optuna()
        from qpcore.trainer import Trainer
        from qpcore.validate import resolve_config

        definition = self.definition
        values = {p.path: p.suggest(trial) for p in definition.params}
        folder = self.job.out / TRIALS_DIR / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", f"{TRIALS_DIR}/{folder.name}")
        data, paths = trial_data(definition.data, definition.params, values)
        output = data.get("output")
        data["output"] = {**(output if isinstance(output, dict) else {})}
        data["output"].update(dir=str(folder.parent), name=folder.name)
        cfg = resolve_config(
            data, self.registry, f"trial {trial.number}", None, True, [*paths, ("output",)]
        )
        monitor = _PruningMonitor(trial, definition.metric)
        trainer = Trainer(
            cfg, self.registry, folder, monitors=[monitor], quiet=True, data=self._dataset(cfg)
        )
        try:
            results = trainer.fit()
        finally:
            trainer.dist.close()
        trial.set_user_attr("epochs", trainer.state.epoch)
        trial.set_user_attr("stop_reason", results.get("stop_reason"))
        trial.set_user_attr("best_epoch", results.get("best_epoch"))
        value = best_value(trainer.state.history, definition.metric)
        trial.set_user_attr("best_value", value)
        del trainer
        if monitor.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at epoch {monitor.pruned_at}")
        if value is None:
            raise _NoValue(f"no epoch gave a finite {definition.metric}")
        return value

    def _dataset(self, cfg: RunConfig) -> LabelledData:
        """The trial's dataset, built once per data section (a sweep over
        ``data.*`` params builds one per value)."""
        from qpcore.training_data import build_dataset

        key = json.dumps(cfg.to_dict()["data"], sort_keys=True)
        if key not in self.datasets:
            self.datasets[key] = build_dataset(cfg)
        return self.datasets[key]

    def _say(
        self,
        trial: optuna.trial.Trial,
        state: str,
        value: float | None,
        started: float,
        note: str = "",
    ) -> None:
        if self.job.quiet:
            return
        metric = self.definition.metric
        shown = f"{metric} {value:.5g}" if value is not None else f"{metric} -"
        if state == "PRUNED":
            last = trial.user_attrs.get("epochs")
            shown = f"pruned after epoch {last}"
        params = " ".join(f"{k}={short_value(v)}" for k, v in trial.params.items())
        epochs = trial.user_attrs.get("epochs")
        where = f"{epochs} epochs, " if epochs is not None else ""
        tail = f"  {note}" if note else ""
        print(
            f"trial {trial.number:>3}  {state:<8}  {shown}  {params}  "
            f"({where}{time.monotonic() - started:.1f} s){tail}",
            flush=True,
        )


def _worker_main(job: _Job, index: int) -> None:
    """Entry point of a worker process (``--jobs`` > 1). A worker dies with
    the sweep's process: one left training after a kill would hold trials
    that the next sweep on the folder (the lock being free) marks failed."""
    from qpcore.data.pool import die_with_parent

    die_with_parent()
    _optuna().logging.set_verbosity(_optuna().logging.WARNING)
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    from qpcore.registry import default_registry

    try:
        _Worker(job, index, default_registry()).run()
    except KeyboardInterrupt:
        sys.exit(130)
    except QPError as exc:
        print(f"Error (sweep worker {index}): {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _check_workers_registry(registry: Registry) -> None:
    """Worker processes load the installed plugins themselves: refuse a
    registry holding components that they would not find."""
    from qpcore.registry import default_registry

    def named(r: Registry) -> set[tuple[str, str]]:
        return {(k, n) for k in KINDS for n in r.names(k)}

    extra = sorted(named(registry) - named(default_registry()))
    if extra:
        shown = ", ".join(f"{kind} {name!r}" for kind, name in extra)
        raise QPError(
            f"jobs > 1: each worker process loads the installed plugins, which lack "
            f"{shown} of the registry given; install it as a plugin or use jobs=1"
        )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_workers(job: _Job, jobs: int) -> list[int]:
    """``jobs`` worker processes on the shared storage; returns their exit codes.
    On Ctrl-C the workers (which got the same signal from the terminal) are
    given time to record their trials as failed, then stopped."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no forked torch or SQLite state
    procs = [
        context.Process(target=_worker_main, args=(job, i), name=f"qp-sweep-{i}")
        for i in range(jobs)
    ]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        _stop(procs)
        raise
    return [proc.exitcode if proc.exitcode is not None else -1 for proc in procs]


def _stop(procs: Sequence[Any]) -> None:
    deadline = time.monotonic() + 20
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + 20
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


# --- the sweep ----------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` leaves in ``out`` (also in ``sweep.json``).

    Attributes:
        out: The sweep folder.
        report: The content of ``sweep.json``.
    """

    out: Path
    report: dict[str, Any]

    @property
    def trials(self) -> list[dict[str, Any]]:
        return self.report["trials"]

    @property
    def best(self) -> dict[str, Any] | None:
        return self.report["best"]

    @property
    def importances(self) -> dict[str, float] | None:
        return self.report["importance"]["values"]

    @property
    def counts(self) -> dict[str, int]:
        return self.report["counts"]


def run_sweep(
    config: str | Path | Mapping[str, Any] | None,
    params: Sequence[str | ParamSpec],
    trials: int,
    out: str | Path,
    *,
    overrides: Sequence[str] = (),
    jobs: int = 1,
    pruner: str | optuna.pruners.BasePruner = "median",
    seed: int = 0,
    quiet: bool = True,
    registry: Registry | None = None,
) -> SweepResult:
    """Run (or continue) a sweep in ``out`` until it holds ``trials`` finished
    (complete or pruned) trials, then write its report.

    Args:
        config: The base config: a file, a packaged config's name, a mapping,
            or ``None`` for the packaged default.
        params: ``--param`` texts (or parsed specs). Empty: continue the sweep
            stored in ``out`` as it was defined.
        trials: Finished trials the study should hold in the end.
        out: The sweep folder (``study.db``, ``trials/``, the report).
        overrides: ``--set`` overrides every trial gets.
        jobs: Trials trained at once, each in its own process.
        pruner: ``median``, ``hyperband``, ``none``, or an Optuna pruner.
        seed: The TPE sampler's seed (and fANOVA's).
        quiet: No line per trial.
        registry: The installed components (default: the entry points').

    Raises:
        QPError: A bad ``--param``, a sweep in ``out`` defined differently,
            or trials that keep failing.
    """
    optuna = _optuna()
    from qpcore.locking import hold_folder
    from qpcore.registry import default_registry

    if trials < 1 or jobs < 1:
        raise QPError("--trials and --jobs must be at least 1")
    out = Path(out)
    registry = registry or default_registry()
    specs = parse_params(params)
    given: Definition | None = None
    if specs:
        given = define(config, specs, overrides, registry)
    elif config is not None or overrides:
        raise QPError(
            "no --param: that continues the sweep stored in --out as it was defined; "
            "give no CONFIG or --set with it (or give every --param)"
        )
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with hold_folder(out, "sweep"):
            definition, start = _open_study(out, given, quiet)
            if isinstance(pruner, str):
                pruner = make_pruner(pruner, _epochs(definition))
            job = _Job(out, trials, definition.to_dict(), pruner, seed, start, quiet)
            workers = min(jobs, max(0, trials - _finished(out)))
            codes: list[int] = []
            try:
                if workers == 1:
                    _Worker(job, 0, registry).run()
                elif workers > 1:
                    _check_workers_registry(registry)
                    _prepare_data(definition, registry)
                    job.threads = max(1, _cores() // workers)
                    codes = _run_workers(job, workers)
            except KeyboardInterrupt:
                _close(out, definition, trials, seed, registry, "interrupted (Ctrl-C)")
                if not quiet:
                    print(
                        f"interrupted; finished trials are kept in {out / DB_FILE}: "
                        "rerun the same command to continue",
                        flush=True,
                    )
                raise
            result = _close(out, definition, trials, seed, registry, "its worker stopped")
    finally:
        optuna.logging.set_verbosity(verbosity)
    _check_finished(result, trials, codes)
    return result


def _warn_if_loss_scaled(params: Sequence[ParamSpec], metric: str) -> None:
    """``val_loss`` is the run's own loss: with the loss swept, trials are
    compared on different scales (a smaller ranking weight lowers it by
    itself), so the best trial and the importances mean little."""
    swept = [p.path for p in params if overlaps(p.path, "loss")]
    if swept and metric.endswith("_loss"):
        print(
            f"warning: {', '.join(swept)} changes the loss that {metric} measures, so "
            "trials are compared on different scales; sweep on a metric every trial "
            "shares: --set trainer.early_stopping.monitor=val_mae (or val_pearson)",
            file=sys.stderr,
            flush=True,
        )


def define(
    config: str | Path | Mapping[str, Any] | None,
    params: Sequence[ParamSpec],
    overrides: Sequence[str],
    registry: Registry,
) -> Definition:
    """Read the base config, check every param against it, fix the objective."""
    from qpcore.epoch_metrics import metric_mode

    data, cfg, source, overridden = _read_base(config, list(overrides), registry)
    check_params(params, data, overridden, registry, source)
    metric = cfg.trainer.early_stopping.monitor
    _warn_if_loss_scaled(params, metric)
    direction: Literal["minimize", "maximize"] = (
        "maximize" if metric_mode(metric) == "max" else "minimize"
    )
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise QPError(f"{source}: the config holds a value that is not plain data: {exc}") from exc
    return Definition(
        params=tuple(params),
        metric=metric,
        direction=direction,
        source=source,
        overrides=tuple(overrides),
        data=data,
        config=cfg.to_dict(),
    )


def _open_study(out: Path, given: Definition | None, quiet: bool) -> tuple[Definition, int]:
    """Create the study, or load it and check it is the sweep ``given``
    defines; returns the definition and how many trials the study held."""
    optuna = _optuna()
    if given is None and not (out / DB_FILE).is_file():
        raise QPError(f"{out} holds no sweep to continue: give --param to start one")
    storage = open_storage(out)
    exists = STUDY_NAME in optuna.study.get_all_study_names(storage)
    if not exists:
        if given is None:
            raise QPError(f"{out} holds no sweep to continue: give --param to start one")
        trials_dir = out / TRIALS_DIR
        if trials_dir.is_dir() and any(trials_dir.iterdir()):
            raise QPError(
                f"{trials_dir} holds trial runs but {out / DB_FILE} holds no study "
                "(deleted?): sweep into another --out, or remove the trials folder"
            )
        study = optuna.create_study(
            storage=storage, study_name=STUDY_NAME, direction=given.direction
        )
        study.set_user_attr(DEFINITION_ATTR, given.to_dict())
        return given, 0
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    stored_dict = study.user_attrs.get(DEFINITION_ATTR)
    if not isinstance(stored_dict, dict) or stored_dict.get("format") != DEFINITION_FORMAT:
        raise QPError(f"{out / DB_FILE} holds a study that qp sweep did not define; refused")
    stored = Definition.from_dict(stored_dict)
    if given is not None:
        problems = stored.differences(given)
        if problems:
            raise QPError(
                f"{out} holds a different sweep, refused (a study mixing two definitions "
                "cannot be read): " + "; ".join(problems) + ". Sweep into another --out, "
                "or rerun with the stored definition (no --param continues it as it is)"
            )
    stale = _fail_running(storage, study, "left running by a sweep that ended (crash or kill)")
    if stale and not quiet:
        print(f"marked trials {', '.join(map(str, stale))} failed: left running by a crash")
    return stored, len(study.trials)


def _finished(out: Path) -> int:
    """Complete and pruned trials in the study."""
    optuna = _optuna()
    states = optuna.trial.TrialState
    study = optuna.load_study(study_name=STUDY_NAME, storage=open_storage(out))
    return len(study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)))


def _epochs(definition: Definition) -> int:
    return int(definition.config["trainer"]["epochs"])


def _prepare_data(definition: Definition, registry: Registry) -> None:
    """Label the base dataset once, before the workers start, so they do not
    all label it at once (a sweep over ``data.*`` leaves this to the trials)."""
    if any(p.path == "data" or p.path.startswith("data.") for p in definition.params):
        return
    from qpcore.training_data import build_dataset
    from qpcore.validate import resolve_config

    build_dataset(resolve_config(definition.data, registry, definition.source))


def _close(
    out: Path, definition: Definition, trials: int, seed: int, registry: Registry, reason: str
) -> SweepResult:
    """Fail what is still running (its worker is gone), then write the report."""
    optuna = _optuna()
    storage = open_storage(out)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    _fail_running(storage, study, reason)
    return write_report(out, study, definition, trials, seed, registry)


def _check_finished(result: SweepResult, trials: int, codes: Sequence[int]) -> None:
    counts = result.counts
    done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    if done >= trials:
        return
    failed = [t for t in result.trials if t["state"] == "FAIL" and t.get("error")]
    last = failed[-1] if failed else None
    why = f"; trial {last['number']} failed: {last['error']}" if last else ""
    crashed = [str(c) for c in codes if c not in (0,)]
    if crashed:
        why += f"; workers exited with codes {', '.join(crashed)} (their errors are above)"
    raise QPError(
        f"the sweep stopped with {done} of {trials} trials finished, after "
        f"{counts.get('FAIL', 0)} failed ones{why}. Rerun to continue once that is fixed "
        f"(the report in {result.out} covers the trials so far)"
    )


# --- the report -----------------------------------------------------------------


def _trial_record(frozen: optuna.trial.FrozenTrial, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    duration = None
    if frozen.datetime_start is not None and frozen.datetime_complete is not None:
        duration = round((frozen.datetime_complete - frozen.datetime_start).total_seconds(), 2)
    attrs = frozen.user_attrs
    record: dict[str, Any] = {
        "number": frozen.number,
        "state": frozen.state.name,
        "value": frozen.value,
        "best_value": attrs.get("best_value"),
        "params": {s.path: frozen.params.get(s.path) for s in specs},
        "epochs": attrs.get("epochs"),
        "run_dir": attrs.get("run_dir", f"{TRIALS_DIR}/trial-{frozen.number}"),
        "duration_s": duration,
        "stop_reason": attrs.get("stop_reason"),
        "curve": {str(k): v for k, v in sorted(frozen.intermediate_values.items())},
    }
    if attrs.get("error"):
        record["error"] = attrs["error"]
    return record


def importances(
    study: optuna.study.Study, specs: Sequence[ParamSpec], seed: int
) -> tuple[dict[str, float] | None, str | None]:
    """fANOVA importance of each param over the complete trials (normalised to
    sum 1), or ``None`` and why it cannot be measured yet."""
    optuna = _optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, f"needs at least 2 complete trials, the study has {len(complete)}"
    varied = [
        s.path for s in specs if len({yaml_scalar(t.params.get(s.path)) for t in complete}) > 1
    ]
    if not varied:
        return None, "no parameter took two different values in the complete trials"
    if len({t.value for t in complete}) < 2:
        return None, "every complete trial gave the same value: nothing to attribute"
    note = None
    constant = [s.path for s in specs if s.path not in varied]
    if constant:
        note = f"left out (one value in every complete trial): {', '.join(constant)}"
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied)
    except (ValueError, RuntimeError) as exc:
        return None, f"fANOVA failed: {exc}"
    values = {name: float(found.get(name, 0.0)) for name in varied}
    return dict(sorted(values.items(), key=lambda kv: -kv[1])), note


def write_report(
    out: Path,
    study: optuna.study.Study,
    definition: Definition,
    trials: int,
    seed: int,
    registry: Registry,
) -> SweepResult:
    """``sweep.json``, ``best.yaml`` (the best trial's config, runnable as it is)
    and ``report.html`` in ``out``."""
    optuna = _optuna()
    from qpcore import jsontext
    from qpcore.fileio import write_atomic

    specs = definition.params
    records = [_trial_record(t, specs) for t in study.get_trials(deepcopy=False)]
    counts = {s.name: 0 for s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)}
    counts["FAIL"] = 0
    for record in records:
        counts[record["state"]] = counts.get(record["state"], 0) + 1
    complete = [r for r in records if r["state"] == "COMPLETE" and r["value"] is not None]
    best = None
    if complete:
        pick = min if definition.direction == "minimize" else max
        top = pick(complete, key=lambda r: r["value"])
        best = {k: top[k] for k in ("number", "value", "params", "run_dir", "epochs")}
        best["config"] = BEST_YAML
        write_atomic(out / BEST_YAML, best_config(definition, top, registry), "the best config")
    values, note = importances(study, specs, seed)
    report = {
        "study": STUDY_NAME,
        "storage": DB_FILE,
        "objective": {"metric": definition.metric, "direction": definition.direction},
        "params": [{**p.to_dict(), "spec": p.describe()} for p in specs],
        "config": definition.source,
        "overrides": list(definition.overrides),
        "trials_requested": trials,
        "counts": counts,
        "best": best,
        "importance": {"method": "fanova", "seed": seed, "values": values, "note": note},
        "trials": records,
    }
    write_atomic(out / REPORT_JSON, jsontext.dumps(report, indent=2) + "\n", "the sweep report")
    from qpcore.sweep_report import write_html

    write_html(out, report, specs)
    return SweepResult(out, report)


def best_config(definition: Definition, record: Mapping[str, Any], registry: Registry) -> str:
    """The best trial's resolved config as YAML. Its output is the base
    config's folder with no run name, so ``qp train best.yaml`` makes a new
    timestamped run there instead of meeting the trial's own folder."""
    from qpcore.config_io import dump_yaml
    from qpcore.validate import resolve_config

    data, paths = trial_data(definition.data, definition.params, record["params"])
    output = data.get("output")
    data["output"] = {**(output if isinstance(output, dict) else {}), "name": None}
    cfg = resolve_config(data, registry, f"trial {record['number']}", None, True, paths)
    shown = ", ".join(f"{k}={short_value(v)}" for k, v in record["params"].items())
    header = (
        f"# Best trial ({record['number']}) of a qp sweep: {definition.metric} "
        f"{record['value']:.6g} ({definition.direction}).\n"
        f"# Swept: {shown}\n# Base: {definition.source}\n"
    )
    return header + dump_yaml(cfg)


def summary(result: SweepResult) -> str:
    """The sweep in a few lines and a markdown table: best value, best params,
    importances."""
    report = result.report
    counts = report["counts"]
    objective = report["objective"]
    total = sum(counts.values())
    lines = [
        f"{result.out}: {total} trials ({counts.get('COMPLETE', 0)} complete, "
        f"{counts.get('PRUNED', 0)} pruned, {counts.get('FAIL', 0)} failed)"
    ]
    best = report["best"]
    values = report["importance"]["values"] or {}
    if best is None:
        lines.append(f"no complete trial yet: no best {objective['metric']}")
    else:
        lines.append(
            f"best: trial {best['number']}, {objective['metric']} {best['value']:.6g} "
            f"({objective['direction']}); config {result.out / BEST_YAML}"
        )
    rows = [
        (
            p["path"],
            short_value(best["params"][p["path"]]) if best else "-",
            f"{values[p['path']]:.3f}" if p["path"] in values else "-",
        )
        for p in report["params"]
    ]
    rows.sort(key=lambda r: -float(r[2]) if r[2] != "-" else 1.0)
    lines += ["", *_markdown(["param", "best value", "importance (fANOVA)"], rows)]
    if report["importance"]["note"]:
        lines.append(f"importance: {report['importance']['note']}")
    lines.append(f"report: {result.out / REPORT_HTML}")
    return "\n".join(lines)


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    line += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return line


__all__ = [
    "GRAMMAR",
    "Definition",
    "ParamSpec",
    "SweepResult",
    "best_value",
    "importances",
    "make_pruner",
    "parse_param",
    "parse_params",
    "run_sweep",
    "summary",
]
