"""The optimizer kit: :func:`assert_optimizer_conforms`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qpcore.testing._common import _built, _call, _params, _reloaded, _require

if TYPE_CHECKING:
    import torch

    from qpcore.params import Params
    from qpcore.specs import OptimizerSpec


def assert_optimizer_conforms(
    spec: OptimizerSpec, params: Mapping[str, Any] | None = None, *, steps: int = 10
) -> None:
    """Check that an optimizer keeps the contract the trainer relies on.

    The trainer calls ``factory(param_groups, params)`` with two groups (the
    model's parameters, then the loss's own ones with ``weight_decay: 0.0``),
    steps it with ``optimizer.step()`` after ``backward()``, lets schedulers
    and rollbacks write each group's ``"lr"``, and saves ``state_dict()`` in
    every checkpoint (read back with ``torch.load(weights_only=True)``) to
    resume into a freshly built optimizer. So the check asserts that:

    * the factory returns a ``torch.optim.Optimizer`` holding the groups it was
      given, in order, each with a numeric ``"lr"`` and with the options the
      trainer set (``weight_decay: 0.0``) kept;
    * ``steps`` steps on the quadratic ``sum((w - 1)²)`` change every parameter
      that has a gradient, leave one whose gradient is ``None`` (frozen, or
      unused this batch) unchanged, keep everything finite and lower the loss;
    * a step after setting every group's ``"lr"`` to 0 changes nothing, so the
      rate schedulers and rollbacks write is the rate used;
    * ``state_dict()`` survives ``torch.save``/``torch.load(weights_only=True)``
      and, loaded into a fresh optimizer over copies of the parameters, gives
      exactly the same next steps as the optimizer it came from.

    Args:
        spec: The optimizer's registration record.
        params: Raw parameters as a config would give them; ``None`` for defaults.
        steps: Steps of each phase (more is slower, not stricter).

    Raises:
        AssertionError: Naming the optimizer and the broken rule.
    """
    import torch

    name = spec.name
    validated = _params(spec, params)
    weights, loss_weight, frozen = _parameters()
    optimizer = _build(spec, validated, weights, loss_weight, frozen)
    groups = optimizer.param_groups
    _require(
        "optimizer",
        name,
        len(groups) == 2
        and _same(groups[0]["params"], [*weights, frozen])
        and _same(groups[1]["params"], [loss_weight]),
        f"the optimizer holds {len(groups)} groups, not the 2 it was given in that order "
        "(the trainer's second group holds the loss's own parameters)",
    )
    for index, group in enumerate(groups):
        lr = group.get("lr")
        _require(
            "optimizer",
            name,
            isinstance(lr, int | float) and not isinstance(lr, bool) and math.isfinite(lr),
            f"group {index} has lr {lr!r}: schedulers and the logs read a finite number there",
        )
    if "weight_decay" in groups[0]:
        _require(
            "optimizer",
            name,
            groups[1].get("weight_decay") == 0.0,
            "the second group's weight_decay: 0.0 was overridden (the loss's own "
            "parameters must not decay)",
        )

    start = [w.detach().clone() for w in [*weights, loss_weight, frozen]]
    before = _objective(weights, loss_weight)
    _run(optimizer, weights, loss_weight, steps, name)
    after = _objective(weights, loss_weight)
    for index, (param, old) in enumerate(zip([*weights, loss_weight], start, strict=False)):
        _require(
            "optimizer",
            name,
            bool(torch.isfinite(param).all()),
            f"parameter {index} is not finite after {steps} steps",
        )
        _require(
            "optimizer",
            name,
            not torch.equal(param.detach(), old),
            f"parameter {index} has a gradient but did not change in {steps} steps",
        )
    _require(
        "optimizer",
        name,
        torch.equal(frozen.detach(), start[-1]),
        "a parameter whose gradient is None changed: a frozen or unused parameter must "
        "stay as it is",
    )
    _require(
        "optimizer",
        name,
        after < before,
        f"{steps} steps on sum((w - 1)^2) did not lower it ({before:.6g} -> {after:.6g})",
    )

    saved = _reloaded("optimizer", name, optimizer.state_dict())
    copies, copy_loss, copy_frozen = _copies(weights, loss_weight, frozen)
    fresh = _build(spec, validated, copies, copy_loss, copy_frozen)
    _call("optimizer", name, "load_state_dict() of a saved state", fresh.load_state_dict, saved)
    _run(optimizer, weights, loss_weight, steps, name)
    _run(fresh, copies, copy_loss, steps, name)
    for index, (mine, theirs) in enumerate(zip(weights, copies, strict=True)):
        _require(
            "optimizer",
            name,
            torch.equal(mine.detach(), theirs.detach()),
            f"after a state_dict() round trip into a fresh optimizer, parameter {index} "
            f"took other steps ({(mine - theirs).abs().max().item():.3g} apart): the "
            "state_dict loses state a resumed run needs",
        )

    for group in optimizer.param_groups:
        group["lr"] = 0.0
    held = [w.detach().clone() for w in weights]
    _run(optimizer, weights, loss_weight, 1, name)
    _require(
        "optimizer",
        name,
        all(torch.equal(w.detach(), h) for w, h in zip(weights, held, strict=True)),
        "a step with every group's lr set to 0 changed the parameters: the optimizer "
        "ignores the lr that schedulers and rollbacks write into param_groups",
    )


def _parameters() -> tuple[list[torch.nn.Parameter], torch.nn.Parameter, torch.nn.Parameter]:
    """Two model weights, the loss's own weight, and one that never gets a gradient."""
    import torch

    gen = torch.Generator().manual_seed(0)
    weights = [
        torch.nn.Parameter(torch.randn(4, 3, generator=gen) * 0.1),
        torch.nn.Parameter(torch.randn(3, generator=gen) * 0.1),
    ]
    return (
        weights,
        torch.nn.Parameter(torch.zeros(2)),
        torch.nn.Parameter(torch.full((2,), 0.5)),
    )


def _copies(
    weights: list[torch.nn.Parameter], loss_weight: torch.nn.Parameter, frozen: torch.nn.Parameter
) -> tuple[list[torch.nn.Parameter], torch.nn.Parameter, torch.nn.Parameter]:
    import torch

    def copy(p: torch.nn.Parameter) -> torch.nn.Parameter:
        return torch.nn.Parameter(p.detach().clone())

    return [copy(w) for w in weights], copy(loss_weight), copy(frozen)


def _build(
    spec: OptimizerSpec,
    params: Params,
    weights: list[torch.nn.Parameter],
    loss_weight: torch.nn.Parameter,
    frozen: torch.nn.Parameter,
) -> torch.optim.Optimizer:
    """As :func:`qpcore.build.build_optimizer` calls the factory."""
    import torch

    groups: list[dict[str, Any]] = [
        {"params": [*weights, frozen]},
        {"params": [loss_weight], "weight_decay": 0.0},
    ]
    described = "a torch.optim.Optimizer"
    args = (groups, params)
    return _built("optimizer", spec.name, spec.factory, args, torch.optim.Optimizer, described)


def _objective(weights: list[torch.nn.Parameter], loss_weight: torch.nn.Parameter) -> float:
    import torch

    with torch.no_grad():
        return float(sum(((w - 1.0) ** 2).sum() for w in [*weights, loss_weight]))


def _run(
    optimizer: torch.optim.Optimizer,
    weights: list[torch.nn.Parameter],
    loss_weight: torch.nn.Parameter,
    steps: int,
    name: str,
) -> None:
    """``steps`` trainer-style steps: zero_grad(set_to_none), backward, step."""
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        total = sum(((w - 1.0) ** 2).sum() for w in [*weights, loss_weight])
        total.backward()  # type: ignore[union-attr]
        _call("optimizer", name, "step()", optimizer.step)


def _same(found: list[Any], given: list[Any]) -> bool:
    return len(found) == len(given) and all(a is b for a, b in zip(found, given, strict=True))


__all__ = ["assert_optimizer_conforms"]
