"""Optimizers and schedulers by name, warmup in front of any scheduler, resume state."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from qpcore import QPError
from qpcore.registry import Registry
from qpcore.schedulers import ScheduledLR, build_scheduler

# These tests step schedulers without training, which torch warns about.
pytestmark = pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)`")


@pytest.fixture
def builtins(qp_registry: Registry) -> Registry:
    return qp_registry  # the fixture qpcore.testing offers plugin authors


def make_optimizer(builtins: Registry, name: str = "sgd", **options: Any) -> torch.optim.Optimizer:
    spec = builtins.get("optimizer", name)
    model = torch.nn.Linear(3, 1)
    return spec.factory(model.parameters(), spec.params(**options))


def make_scheduler(
    builtins: Registry,
    optimizer: torch.optim.Optimizer,
    name: str,
    epochs: int = 10,
    steps: int = 4,
    **options: Any,
) -> ScheduledLR:
    spec = builtins.get("scheduler", name)
    return build_scheduler(spec, spec.params(**options), optimizer, epochs, steps)


def lr_of(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize(
    ("name", "cls", "decay"),
    [
        ("adam", torch.optim.Adam, 1e-4),
        ("adamw", torch.optim.AdamW, 1e-2),
        ("sgd", torch.optim.SGD, 0.0),
    ],
)
def test_optimizers_by_name(builtins: Registry, name: str, cls: type, decay: float) -> None:
    optimizer = make_optimizer(builtins, name, lr=0.05)
    assert type(optimizer) is cls
    assert lr_of(optimizer) == 0.05
    assert optimizer.param_groups[0]["weight_decay"] == decay


def test_optimizer_params_are_validated(builtins: Registry) -> None:
    adam = builtins.get("optimizer", "adam").params
    with pytest.raises(ValidationError, match="betas must both lie in"):
        adam(betas=(0.9, 1.5))
    with pytest.raises(ValidationError, match="Extra inputs"):
        adam(momentum=0.9)
    with pytest.raises(ValidationError, match="nesterov needs momentum"):
        builtins.get("optimizer", "sgd").params(nesterov=True, momentum=0.0)


def test_optimizer_trains_only_the_groups_it_is_given(builtins: Registry) -> None:
    frozen, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    spec = builtins.get("optimizer", "adam")
    optimizer = spec.factory([{"params": head.parameters()}], spec.params())
    before = frozen.weight.clone()
    head(frozen(torch.ones(4, 2))).sum().backward()
    optimizer.step()
    assert torch.equal(frozen.weight, before)
    assert frozen.weight.grad is not None  # it had a gradient, yet was not stepped


def test_warmup_ramps_linearly_then_hands_over_to_cosine(builtins: Registry) -> None:
    optimizer = make_optimizer(builtins, lr=1.0)
    sched = make_scheduler(
        builtins,
        optimizer,
        "cosine",
        epochs=6,
        warmup_epochs=2,
        warmup_start_factor=0.2,
        eta_min=0.0,
    )
    seen = [lr_of(optimizer)]
    for _ in range(6):
        sched.step_epoch({"val_loss": 1.0})
        seen.append(lr_of(optimizer))
    # warmup: 0.2 -> 0.6 -> 1.0; then cosine over the 4 remaining epochs down to 0
    expected = [0.2, 0.6, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)]
    assert seen == pytest.approx(expected, abs=1e-9)


def test_plateau_reduces_after_patience_on_the_watched_metric(builtins: Registry) -> None:
    optimizer = make_optimizer(builtins, lr=1.0)
    sched = make_scheduler(
        builtins, optimizer, "reduce_on_plateau", monitor="val_pearson", patience=1, factor=0.5
    )
    for value in (0.5, 0.6, 0.6, 0.6):  # pearson improves, then stalls (mode: max)
        sched.step_epoch({"val_pearson": value, "val_loss": 9.0})
    assert lr_of(optimizer) == 0.5
    with pytest.raises(QPError, match="watches 'val_pearson'"):
        sched.step_epoch({"val_loss": 1.0})


def test_step_scheduler(builtins: Registry) -> None:
    optimizer = make_optimizer(builtins, lr=1.0)
    sched = make_scheduler(builtins, optimizer, "step", step_size=2, gamma=0.1)
    lrs = []
    for _ in range(4):
        sched.step_epoch({})
        lrs.append(lr_of(optimizer))
    assert lrs == pytest.approx([1.0, 0.1, 0.1, 0.01])


def test_onecycle_steps_per_batch_and_ignores_epoch_ends(builtins: Registry) -> None:
    optimizer = make_optimizer(builtins, lr=0.4)
    sched = make_scheduler(builtins, optimizer, "onecycle", epochs=2, steps=5, pct_start=0.5)
    assert lr_of(optimizer) == pytest.approx(0.4 / 25)
    sched.step_epoch({"val_loss": 1.0})
    assert lr_of(optimizer) == pytest.approx(0.4 / 25)
    lrs = []
    for _ in range(9):
        sched.step_batch()
        lrs.append(lr_of(optimizer))
    assert max(lrs) == pytest.approx(0.4)
    assert lrs[-1] < 0.4 / 25


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_onecycle_holds_its_final_rate_after_the_last_step(
    builtins: Registry, strategy: str
) -> None:
    """The trainer steps after every optimizer step, the last one included:
    torch's OneCycle extrapolated that rate (below zero with linear)."""
    optimizer = make_optimizer(builtins, lr=0.4)
    sched = make_scheduler(
        builtins, optimizer, "onecycle", epochs=2, steps=5, anneal_strategy=strategy
    )
    lrs = [lr_of(optimizer)]
    for _ in range(10):  # one per optimizer step of the 2 x 5
        sched.step_batch()
        lrs.append(lr_of(optimizer))
    final = 0.4 / 25 / 1e4
    assert lrs[9] == pytest.approx(final) and lrs[10] == pytest.approx(final)
    assert min(lrs) > 0 and max(lrs) == pytest.approx(0.4)
    state = sched.state_dict()
    sched.step_batch()  # past the end, also after a resume
    sched.load_state_dict(state)
    sched.step_batch()
    assert lr_of(optimizer) == pytest.approx(final)


def test_scheduler_state_resumes_exactly(builtins: Registry) -> None:
    def run(split: int | None) -> list[float]:
        optimizer = make_optimizer(builtins, lr=1.0)
        sched = make_scheduler(builtins, optimizer, "cosine", epochs=8, warmup_epochs=3)
        lrs = []
        for epoch in range(8):
            if epoch == split:  # rebuild from scratch and restore, as --resume does
                state_opt, state_sched = optimizer.state_dict(), sched.state_dict()
                optimizer = make_optimizer(builtins, lr=1.0)
                sched = make_scheduler(builtins, optimizer, "cosine", epochs=8, warmup_epochs=3)
                optimizer.load_state_dict(state_opt)
                sched.load_state_dict(state_sched)
            sched.step_epoch({})
            lrs.append(lr_of(optimizer))
        return lrs

    straight = run(None)
    assert run(2) == straight
    assert run(5) == straight
