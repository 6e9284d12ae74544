"""The Python API that mirrors the CLI, for users who drive qpcore from code.

``qpcore.train`` is ``qp train``; ``qpcore.create`` builds any registered
component by name, validated as a config entry is, so a plain PyTorch or
Lightning loop can use a qpcore loss, optimizer or backbone without a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpcore.config import RunConfig
from qpcore.errors import ConfigError, QPError
from qpcore.specs import KINDS, Kind

if TYPE_CHECKING:
    from qpcore.predictor import Predictor
    from qpcore.registry import Registry


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` leaves behind.

    Attributes:
        run_dir: The run folder.
        results: The content of ``results.json`` (best epoch, val/test scores...).
    """

    run_dir: Path
    results: dict[str, Any]

    @property
    def best(self) -> Path | None:
        """``best.pt``, or ``None`` when no epoch gave a finite checkpoint metric."""
        path = self.run_dir / "best.pt"
        return path if path.is_file() else None

    def predictor(self, device: str = "cpu") -> Predictor:
        """The best checkpoint, loaded for prediction."""
        from qpcore.predictor import load_predictor

        if self.best is None:
            raise QPError(f"{self.run_dir} kept no weights (no epoch gave a finite metric)")
        return load_predictor(self.best, device=device)


def train(
    config: str | Path | Mapping[str, Any] | RunConfig | None = None,
    overrides: Iterable[str] = (),
    *,
    out: str | Path | None = None,
    quiet: bool = True,
    registry: Registry | None = None,
) -> TrainResult:
    """Train one run, as ``qp train [CONFIG] --set ... [--out DIR]`` does.

    Args:
        config: A config file, a packaged config's name (``"random"``), the
            config as a mapping, or a resolved :class:`RunConfig`; ``None`` for
            the packaged default.
        overrides: ``dotted.key=value`` settings, as ``--set`` takes them.
        out: The run folder (default: ``output.dir/output.name``, or a timestamp).
        quiet: No progress bars or per-epoch lines.
        registry: The installed components (default: the entry points').

    Raises:
        ConfigError: Every problem of the config, with paths (and lines).
        QPError: The data or the run folder cannot be used.

    Example:
        >>> result = qpcore.train("random", ["trainer.epochs=2"])  # doctest: +SKIP
        >>> result.results["val"]["pearson"]  # doctest: +SKIP
    """
    from qpcore.config_io import load_run_config
    from qpcore.registry import default_registry
    from qpcore.trainer import Trainer, new_run_dir

    registry = registry or default_registry()
    overrides = list(overrides)
    if isinstance(config, RunConfig):
        if overrides:
            raise QPError("overrides apply to a config file or mapping, not a RunConfig")
        cfg = config
    else:
        cfg = load_run_config(config, overrides, registry)
    run_dir = Path(out) if out is not None else new_run_dir(cfg.output.dir, cfg.output.name)
    trainer = Trainer(cfg, registry, run_dir, quiet=quiet)
    try:
        results = trainer.fit()
    finally:
        trainer.dist.close()
    return TrainResult(trainer.run_dir, results)


def create(
    kind: Kind, name: str, *args: Any, registry: Registry | None = None, **params: Any
) -> Any:
    """Build the registered component ``name`` of ``kind`` with ``params``,
    validated by its params model as a config entry is (cf.
    ``timm.create_model``).

    ``args`` are what the kind's factory takes before its params: an
    optimizer's parameters (or groups), a scheduler's optimizer. A scheduler
    also takes ``epochs`` and ``steps_per_epoch`` (default 1 each) and comes
    back wrapped as the trainer uses it (warmup included), with ``step_batch``
    and ``step_epoch(metrics)``.

    Raises:
        ConfigError: An unknown name or bad params, as ``kind.param`` paths.

    Example:
        >>> loss = qpcore.create("loss", "focal", gamma=1.5)  # doctest: +SKIP
        >>> opt = qpcore.create("optimizer", "adamw", model.parameters(), lr=1e-3)  # doctest: +SKIP
    """
    from qpcore.registry import default_registry
    from qpcore.validate import resolve_component

    if kind not in KINDS:
        raise QPError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    registry = registry or default_registry()
    registry.ensure_usable()
    context = {}
    if kind == "scheduler":
        context = {k: int(params.pop(k, 1)) for k in ("epochs", "steps_per_epoch")}
    ref, issues = resolve_component(name, params, (kind,), kind, registry)
    if ref is None:
        raise ConfigError(issues, f"qpcore.create({kind!r}, {name!r})")
    wanted = {"optimizer": "the parameters to optimise", "scheduler": "the optimizer"}
    if kind in wanted and len(args) != 1:
        raise TypeError(
            f"create({kind!r}, ...) takes {wanted[kind]} as its one positional argument"
        )
    if kind == "optimizer":
        (parameters,) = args
        groups = list(parameters)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        return ref.spec.build(groups, ref.params)
    if kind == "scheduler":
        from qpcore.schedulers import build_scheduler

        (optimizer,) = args
        return build_scheduler(
            ref.spec, ref.params, optimizer, context["epochs"], context["steps_per_epoch"]
        )
    return ref.spec.build(*args, ref.params)
