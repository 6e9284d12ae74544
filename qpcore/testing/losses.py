"""The loss kit: :func:`assert_loss_conforms`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qpcore.testing._common import _built, _fail, _params, _require

if TYPE_CHECKING:
    from torch import Tensor, nn

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
    * ``pred`` and ``target`` of different batch sizes raise ``ValueError``,
      including ``[1]`` against ``[B]``, which plain tensor arithmetic would
      silently broadcast into a wrong but finite loss;
    * an empty batch (``[0]`` or ``[0, 1]``) raises ``ValueError``: a mean over
      no rows is NaN, and a loss that returned a quiet 0 instead would hide the
      empty split or filter upstream that produced it (the built-ins raise, see
      ``docs/losses.md``);
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
            "loss",
            spec.name,
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
        _require("loss", spec.name, callable(set_epoch), "set_epoch is not callable")
        set_epoch(3)
        _evaluate(spec, loss, pred, target, "a random batch after set_epoch(3)")

    # Last, so a loss broken in a more basic way is told about that first.
    for bad_pred, bad_target in [
        (pred, target[:-1]),
        (column, target[:-1]),
        (pred[:1], target),
        (pred, target[:1]),
    ]:
        _require_value_error(spec, loss, bad_pred, bad_target, "different batch sizes")
    empty = pred[:0]
    _require_value_error(spec, loss, empty, target[:0], "an empty batch")
    _require_value_error(spec, loss, empty.unsqueeze(1), target[:0].unsqueeze(1), "an empty batch")


def _build(spec: LossSpec, params: Mapping[str, Any] | None) -> nn.Module:
    from torch import nn

    args = (_params(spec, params),)
    return _built("loss", spec.name, spec.factory, args, nn.Module, "a torch.nn.Module")


def _require_value_error(
    spec: LossSpec, loss: nn.Module, pred: Tensor, target: Tensor, case: str
) -> None:
    """The loss refuses ``pred`` and ``target`` with ``ValueError``."""
    shapes = f"pred {list(pred.shape)} and target {list(target.shape)} ({case})"
    try:
        out = loss(pred.detach().clone().requires_grad_(True), target.clone())
    except ValueError:
        return
    except Exception as exc:
        _fail(
            "loss",
            spec.name,
            f"{shapes} must raise ValueError, not {type(exc).__name__}: {exc}",
        )
    _fail(
        "loss",
        spec.name,
        f"{shapes} must raise ValueError, but the loss returned {out!r}; check the "
        "shapes before computing (qp_losses.functional.flatten_pair does)",
    )


def _evaluate(
    spec: LossSpec, loss: nn.Module, pred: Tensor, target: Tensor, case: str
) -> tuple[Tensor, Tensor]:
    """Run forward and backward once; return the total and ``pred``'s gradient."""
    import torch

    from qpcore.loss_output import split_loss_output

    def require(condition: bool, message: str) -> None:
        _require("loss", spec.name, condition, message)

    pred = pred.detach().clone().requires_grad_(True)
    pred_before, target_before = pred.detach().clone(), target.clone()
    loss.zero_grad(set_to_none=True)
    out = loss(pred, target)
    try:
        total, components = split_loss_output(out)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"loss {spec.name!r} on {case}: {err}") from err
    require(total.is_floating_point(), f"on {case}: the total is not a float tensor")
    require(bool(torch.isfinite(total)), f"on {case}: the total is {total.item()}")
    bad = {k: v for k, v in components.items() if not math.isfinite(v)}
    require(not bad, f"on {case}: non-finite components {bad}")
    require(
        total.requires_grad,
        f"on {case}: the total is not connected to pred, so backward() fails; "
        "return e.g. pred.sum() * 0 rather than a new zero tensor",
    )
    total.backward()
    grad = pred.grad
    require(grad is not None, f"on {case}: pred received no gradient")
    assert grad is not None  # for the type checker
    require(grad.shape == pred.shape, f"on {case}: gradient shape {list(grad.shape)}")
    require(bool(torch.isfinite(grad).all()), f"on {case}: non-finite gradient {grad}")
    for name, param in loss.named_parameters():
        if param.grad is not None:
            require(
                bool(torch.isfinite(param.grad).all()),
                f"on {case}: non-finite gradient for the loss parameter {name!r}",
            )
    require(
        torch.equal(pred.detach(), pred_before) and torch.equal(target, target_before),
        f"on {case}: the loss modified its inputs in place",
    )
    loss.zero_grad(set_to_none=True)
    return total.detach(), grad


__all__ = ["CONFORMANCE_BATCH", "assert_loss_conforms"]
