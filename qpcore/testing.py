"""Test helpers for plugin authors, loaded by pytest as the ``qpcore`` plugin.

The ``pytest11`` entry point loads this module in every pytest session of an
environment where qpcore is installed, so it imports nothing heavy at module
level: torch is imported inside the checks that need it.

Example:
    >>> from qpcore.testing import assert_loss_conforms
    >>> from my_plugin import qp_register_losses
    >>> for spec in qp_register_losses():  # doctest: +SKIP
    ...     assert_loss_conforms(spec)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from qpcore.hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import Tensor, nn

    from qpcore.registry import Registry
    from qpcore.specs import LossSpec

#: Batch size of the random batches the loss checks use.
CONFORMANCE_BATCH = 8


def assert_loss_conforms(spec: LossSpec, params: Mapping[str, Any] | None = None) -> None:
    """Check that a loss keeps the contract the trainer relies on.

    Builds the loss from ``spec`` with ``params`` (validated by the spec's own
    Params model, so a bad key raises pydantic's ``ValidationError``) and checks
    that:

    * the output is a 0-d tensor or a mapping with a 0-d ``"loss"`` and scalar
      components (:func:`qpcore.loss_output.split_loss_output` accepts it);
    * ``[B]`` and ``[B, 1]`` inputs holding the same numbers, in any mix, give
      the same value and gradient (a loss that lets ``[B, 1] - [B]`` broadcast
      to ``[B, B]`` fails here);
    * the total is finite and has finite gradients w.r.t. ``pred`` for a random
      batch, a batch of one, perfect predictions and constant predictions (what
      a freshly collapsed model outputs), and the total stays connected to
      ``pred`` in every case so ``backward()`` works;
    * the loss's own parameters, if any, get finite gradients;
    * the inputs are left unmodified;
    * ``set_epoch``, where present, accepts an epoch number.

    Args:
        spec: The loss's registration record.
        params: Raw parameters as a config would give them; ``None`` for defaults.

    Raises:
        AssertionError: Naming the loss and the broken rule.
    """
    import torch

    loss = _build(spec, params)
    gen = torch.Generator().manual_seed(0)
    n = CONFORMANCE_BATCH
    target = 0.4 + 0.6 * torch.rand(n, generator=gen)
    pred = (target + 0.1 * torch.randn(n, generator=gen)).clamp(0.0, 1.0)

    value, grad = _evaluate(spec, loss, pred, target, "a random [B] batch")
    column, row = pred.unsqueeze(1), target.unsqueeze(1)
    for case_pred, case_target, case in [
        (column, row, "[B, 1] predictions and targets"),
        (column, target, "[B, 1] predictions with [B] targets"),
        (pred, row, "[B] predictions with [B, 1] targets"),
    ]:
        case_value, case_grad = _evaluate(spec, loss, case_pred, case_target, case)
        _require(
            spec,
            torch.allclose(value, case_value, rtol=1e-5, atol=1e-7)
            and torch.allclose(grad, case_grad.reshape(grad.shape), rtol=1e-5, atol=1e-7),
            f"{case} disagree with [B] inputs holding the same values: "
            f"{case_value.item()} vs {value.item()}",
        )
    _evaluate(spec, loss, pred[:1], target[:1], "a batch of one")
    _evaluate(spec, loss, pred[:1].unsqueeze(1), target[:1].unsqueeze(1), "a [1, 1] batch")
    _evaluate(spec, loss, target.clone(), target, "perfect predictions")
    # 0.75 is exact in binary, so the batch mean is exact and deviations are 0.
    _evaluate(spec, loss, torch.full_like(target, 0.75), target, "constant predictions")

    set_epoch = getattr(loss, "set_epoch", None)
    if set_epoch is not None:
        _require(spec, callable(set_epoch), "set_epoch is not callable")
        set_epoch(3)
        _evaluate(spec, loss, pred, target, "a random batch after set_epoch(3)")


def _build(spec: LossSpec, params: Mapping[str, Any] | None) -> nn.Module:
    from torch import nn

    validated = spec.params.model_validate(dict(params or {}))
    factory: Callable[[Any], Any] = spec.factory
    loss = factory(validated)
    _require(
        spec,
        isinstance(loss, nn.Module),
        f"factory returned {type(loss).__name__}, not a torch.nn.Module",
    )
    return loss


def _evaluate(
    spec: LossSpec, loss: nn.Module, pred: Tensor, target: Tensor, case: str
) -> tuple[Tensor, Tensor]:
    """Run forward and backward once; return the total and ``pred``'s gradient."""
    import torch

    from qpcore.loss_output import split_loss_output

    pred = pred.detach().clone().requires_grad_(True)
    pred_before, target_before = pred.detach().clone(), target.clone()
    loss.zero_grad(set_to_none=True)
    out = loss(pred, target)
    try:
        total, components = split_loss_output(out)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"loss {spec.name!r} on {case}: {err}") from err
    _require(spec, total.is_floating_point(), f"on {case}: the total is not a float tensor")
    _require(spec, bool(torch.isfinite(total)), f"on {case}: the total is {total.item()}")
    bad = {k: v for k, v in components.items() if not math.isfinite(v)}
    _require(spec, not bad, f"on {case}: non-finite components {bad}")
    _require(
        spec,
        total.requires_grad,
        f"on {case}: the total is not connected to pred, so backward() fails; "
        "return e.g. pred.sum() * 0 rather than a new zero tensor",
    )
    total.backward()
    grad = pred.grad
    _require(spec, grad is not None, f"on {case}: pred received no gradient")
    assert grad is not None  # for the type checker
    _require(spec, grad.shape == pred.shape, f"on {case}: gradient shape {list(grad.shape)}")
    _require(spec, bool(torch.isfinite(grad).all()), f"on {case}: non-finite gradient {grad}")
    for name, param in loss.named_parameters():
        if param.grad is not None:
            _require(
                spec,
                bool(torch.isfinite(param.grad).all()),
                f"on {case}: non-finite gradient for the loss parameter {name!r}",
            )
    _require(
        spec,
        torch.equal(pred.detach(), pred_before) and torch.equal(target, target_before),
        f"on {case}: the loss modified its inputs in place",
    )
    loss.zero_grad(set_to_none=True)
    return total.detach(), grad


def _require(spec: LossSpec, condition: bool, message: str) -> None:
    # An explicit raise, not ``assert``: this module must also check when Python
    # runs with -O or pytest's assertion rewriting does not apply.
    if not condition:
        raise AssertionError(f"loss {spec.name!r}: {message}")


__all__ = ["CONFORMANCE_BATCH", "assert_loss_conforms"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--qp-allow-plugin-problems",
        action="store_true",
        help="qpcore: run even when installed plugins clash or are broken "
        "(for tests that build such an environment on purpose).",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail the run when the environment's plugins clash or are broken.

    ``qp`` refuses to start for every user of such an environment, while the
    plugin's own tests would pass: a name clash only raises when the clashing name
    is looked up. So a plugin's CI fails here, naming both providers.
    """
    if session.config.getoption("qp_allow_plugin_problems", default=False):
        return
    from qpcore.registry import Registry

    problems = Registry.from_entrypoints().problems()
    if problems:
        raise pytest.UsageError(
            "qpcore: the installed plugins cannot be used together, so qp would refuse "
            "to start:\n" + "\n".join(problems) + "\n(pass --qp-allow-plugin-problems "
            "to run the tests anyway)"
        )


@pytest.fixture
def qp_registry() -> Registry:
    """The registry of what is installed, loaded afresh for each test.

    Honours ``QP_DISABLE_PLUGINS`` as the CLI does, so a test can set it with
    ``monkeypatch.setenv`` before asking for this fixture.
    """
    from qpcore.registry import Registry

    return Registry.from_entrypoints()


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
