"""Tests of ``combined``'s performance-based weighting, ``weighting: dwa``.

Dynamic Weight Averaging (Liu, Johns and Davison 2019) rescales each term by how
slowly its mean training loss fell over the last two epochs. What can go wrong
is mostly bookkeeping: which batches count, when an epoch is closed, and whether
a resumed run computes the same factors, so most tests drive the module through
epochs the way the trainer does and compare against means taken by hand.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import qp_losses
import torch
from pydantic import ValidationError
from qp_losses.combined import COMPONENTS, CombinedLoss, CombinedParams, dwa_weights
from test_trainer import fit, run_config
from torch import Tensor

from qpcore import LossSpec
from qpcore.checkpoint import load_checkpoint
from qpcore.registry import default_registry
from qpcore.testing import assert_loss_conforms
from qpcore.trainer import Trainer

SPECS: dict[str, LossSpec] = {spec.name: spec for spec in qp_losses.qp_register_losses()}
#: The configured weights every test uses unless it says otherwise.
CONFIGURED = {"ssim": 1.0, "ranking": 0.2, "correlation": 0.1}


def dwa_loss(**params: Any) -> CombinedLoss:
    settings: dict[str, Any] = {
        "weighting": "dwa",
        "ranking_weight": CONFIGURED["ranking"],
        "correlation_weight": CONFIGURED["correlation"],
        **params,
    }
    return CombinedLoss(CombinedParams.model_validate(settings))


def batch(n: int, seed: int, bias: float = 0.0, noise: float = 0.1) -> tuple[Tensor, Tensor]:
    """SSIM-like targets and predictions off by ``bias`` plus Gaussian ``noise``.

    A bias moves the ssim term only: ranking and correlation see differences
    between predictions, which a common shift leaves alone.
    """
    gen = torch.Generator().manual_seed(seed)
    target = 0.4 + 0.6 * torch.rand(n, generator=gen)
    pred = target + bias + noise * torch.randn(n, generator=gen)
    return pred, target


def train_epoch(
    loss: CombinedLoss, epoch: int, batches: list[tuple[Tensor, Tensor]]
) -> dict[str, float]:
    """One epoch as the trainer runs it; returns the effective weights it used."""
    loss.set_epoch(epoch)
    loss.train(True)
    seen: dict[str, float] = {}
    for pred, target in batches:
        pred = pred.clone().requires_grad_(True)
        out = loss(pred, target)
        out["loss"].backward()
        seen = {c: out[f"weight_{c}"].item() for c in COMPONENTS}
    return seen


def epoch_batches(epoch: int, bias: float = 0.0) -> list[tuple[Tensor, Tensor]]:
    """Three batches of unequal sizes, so a per-batch mean would differ from the row mean."""
    return [batch(n, seed=100 * epoch + i, bias=bias) for i, n in enumerate((16, 9, 5))]


def row_means(batches: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Each term's row-weighted mean over ``batches``, computed apart from the module."""
    reference = CombinedLoss()
    sums = torch.zeros(len(COMPONENTS), dtype=torch.float64)
    rows = 0
    for pred, target in batches:
        out = reference(pred, target)
        sums += torch.tensor([out[c].item() for c in COMPONENTS], dtype=torch.float64) * len(pred)
        rows += len(pred)
    return sums / rows


def expected_factors(before: Tensor, last: Tensor, temperature: float = 2.0) -> list[float]:
    ratio = (last / before).tolist()
    exp = [math.exp(r / temperature) for r in ratio]
    return [len(exp) * e / sum(exp) for e in exp]


# --- dwa_weights, the formula -------------------------------------------------


def test_dwa_weights_follow_the_formula() -> None:
    history = torch.tensor([[0.2, 0.5, 0.8], [0.1, 0.45, 0.8]])
    ratio = [0.5, 0.9, 1.0]
    exp = [math.exp(r / 2.0) for r in ratio]
    expected = [3 * e / sum(exp) for e in exp]
    assert dwa_weights(history, 2.0).tolist() == pytest.approx(expected, rel=1e-6)


def test_the_term_that_falls_slower_gets_more_weight() -> None:
    # ssim halves, ranking drops 10 %, correlation stalls.
    found = dwa_weights(torch.tensor([[0.2, 0.5, 0.8], [0.1, 0.45, 0.8]]), 2.0).tolist()
    assert found[0] < found[1] < found[2]
    assert found[0] < 1.0 < found[2]


@pytest.mark.parametrize("temperature", [0.05, 0.5, 2.0, 10.0, 1e4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dwa_weights_sum_to_the_number_of_terms(temperature: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for terms in (1, 2, 3, 5):
        history = 0.01 + torch.rand(2, terms, generator=gen)
        found = dwa_weights(history, temperature)
        assert found.shape == (terms,)
        assert bool((found >= 0).all())  # a small T may underflow a factor to 0
        assert found.sum().item() == pytest.approx(terms, rel=1e-5)


def test_high_temperature_is_near_uniform_and_low_temperature_picks_the_slowest() -> None:
    history = torch.tensor([[0.2, 0.5, 0.8], [0.1, 0.45, 0.8]])
    flat = dwa_weights(history, 1e3)
    assert flat.tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-3)
    sharp = dwa_weights(history, 0.01)
    assert sharp.tolist() == pytest.approx([0.0, 0.0, 3.0], abs=1e-3)
    spread = [
        (dwa_weights(history, t).max() - dwa_weights(history, t).min()).item() for t in (0.1, 1, 10)
    ]
    assert spread[0] > spread[1] > spread[2]


def test_unknown_epochs_give_factors_of_one() -> None:
    assert dwa_weights(torch.zeros(2, 3), 2.0).tolist() == [1.0, 1.0, 1.0]
    one_epoch = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.1, 0.9]])
    assert dwa_weights(one_epoch, 2.0).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "bad", [0.0, math.nan, math.inf, -math.inf], ids=["zero", "nan", "inf", "-inf"]
)
@pytest.mark.parametrize("row", [0, 1])
def test_an_untrusted_mean_counts_as_ratio_one(bad: float, row: int) -> None:
    history = torch.tensor([[0.2, 0.5, 0.8], [0.1, 0.45, 0.8]])
    history[row, 0] = bad
    found = dwa_weights(history, 2.0)
    assert bool(torch.isfinite(found).all())
    assert found.sum().item() == pytest.approx(3.0, rel=1e-6)
    if not (row == 1 and bad == 0.0):  # a last mean of 0 is a real ratio of 0
        # ssim's ratio is taken as 1: it equals correlation's, whose ratio is 1.
        assert found[0].item() == pytest.approx(found[2].item(), rel=1e-6)


def test_a_tiny_temperature_does_not_overflow_into_nan() -> None:
    history = torch.tensor([[1e-30, 0.5, 0.8], [1.0, 0.45, 0.8]])
    found = dwa_weights(history, 1e-30)
    assert bool(torch.isfinite(found).all())
    assert found.tolist() == pytest.approx([3.0, 0.0, 0.0], abs=1e-6)


@pytest.mark.parametrize(
    ("history", "temperature", "message"),
    [
        (torch.ones(3), 2.0, r"shape \[2, K\]"),
        (torch.ones(3, 3), 2.0, r"shape \[2, K\]"),
        (torch.ones(2, 3), 0.0, "positive"),
        (torch.ones(2, 3), -1.0, "positive"),
        (torch.ones(2, 3), math.nan, "positive"),
    ],
)
def test_dwa_weights_refuse_bad_input(history: Tensor, temperature: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dwa_weights(history, temperature)


# --- the module through epochs ------------------------------------------------


@pytest.mark.parametrize("first", [0, 1])  # the trainer numbers epochs from 1
def test_factors_are_one_for_the_first_two_epochs(first: int) -> None:
    loss = dwa_loss()
    for epoch in (first, first + 1):
        used = train_epoch(loss, epoch, epoch_batches(epoch))
        assert used == pytest.approx(CONFIGURED, rel=1e-6)
        assert loss.factors() == {"ssim": 1.0, "ranking": 1.0, "correlation": 1.0}
    loss.set_epoch(first + 2)
    assert loss.factors() != {"ssim": 1.0, "ranking": 1.0, "correlation": 1.0}


def test_factors_come_from_the_row_weighted_training_means() -> None:
    loss = dwa_loss(dwa_temperature=0.5)
    first, second = epoch_batches(0, bias=0.2), epoch_batches(1, bias=0.05)
    train_epoch(loss, 0, first)
    train_epoch(loss, 1, second)
    loss.set_epoch(2)
    expected = expected_factors(row_means(first), row_means(second), 0.5)
    assert list(loss.factors().values()) == pytest.approx(expected, rel=1e-5)
    assert sum(loss.factors().values()) == pytest.approx(3.0, rel=1e-6)


def test_a_term_whose_loss_falls_slower_gets_more_weight() -> None:
    # The shrinking bias makes the ssim term fall fast while ranking and
    # correlation, blind to a shift, stay where they are.
    loss = dwa_loss()
    for epoch, bias in enumerate((0.3, 0.1)):
        train_epoch(loss, epoch, [batch(32, seed=7, bias=bias)])
    pred, target = batch(32, seed=7, bias=0.05)
    loss.set_epoch(2)
    out = loss(pred, target)
    factors = loss.factors()
    assert factors["ssim"] < 1.0 < factors["ranking"]
    assert factors["ranking"] == pytest.approx(factors["correlation"], rel=1e-6)
    for c in COMPONENTS:
        assert out[f"weight_{c}"].item() == pytest.approx(CONFIGURED[c] * factors[c], rel=1e-6)


def test_output_reports_effective_weights_and_the_total_uses_them() -> None:
    loss = dwa_loss()
    train_epoch(loss, 0, epoch_batches(0, bias=0.2))
    train_epoch(loss, 1, epoch_batches(1, bias=0.0))
    loss.set_epoch(2)
    pred, target = batch(24, seed=3)
    out = loss(pred, target)
    factors = loss.factors()
    total = sum(CONFIGURED[c] * factors[c] * out[c].item() for c in COMPONENTS)
    assert out["loss"].item() == pytest.approx(total, rel=1e-6)
    assert sorted(out) == sorted(
        ["loss", *COMPONENTS, *(f"weight_{c}" for c in COMPONENTS)]
    )  # the same keys as fixed weighting
    assert not any(out[k].requires_grad for k in out if k != "loss")


def test_validation_batches_do_not_move_the_weights() -> None:
    plain, checked = dwa_loss(), dwa_loss()
    for epoch in range(4):
        train_epoch(plain, epoch, epoch_batches(epoch, bias=0.3 / (epoch + 1)))
        train_epoch(checked, epoch, epoch_batches(epoch, bias=0.3 / (epoch + 1)))
        checked.train(False)  # the trainer's validation pass
        with torch.no_grad():
            for seed in range(3):
                checked(*batch(16, seed=900 + seed, bias=0.5 * epoch, noise=0.4))
    assert checked.dwa is not None and plain.dwa is not None
    for name, value in plain.state_dict().items():
        assert torch.equal(value, checked.state_dict()[name]), name
    assert checked.factors() == plain.factors()


def test_set_epoch_twice_is_idempotent() -> None:
    once, twice = dwa_loss(), dwa_loss()
    for epoch in range(4):
        for loss in (once, twice):
            train_epoch(loss, epoch, epoch_batches(epoch, bias=0.1 * epoch))
        twice.set_epoch(epoch)
    for loss in (once, twice):
        loss.set_epoch(4)
    twice.set_epoch(4)
    assert twice.factors() == once.factors()
    for name, value in once.state_dict().items():
        assert torch.equal(value, twice.state_dict()[name]), name


def test_an_earlier_epoch_changes_nothing() -> None:
    # The loss landscape loads last.pt's loss state, then sets best.pt's epoch.
    loss = dwa_loss()
    for epoch in range(1, 5):
        train_epoch(loss, epoch, epoch_batches(epoch, bias=0.1 * epoch))
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    factors = loss.factors()
    loss.set_epoch(2)
    assert loss.factors() == factors
    assert all(torch.equal(v, state[k]) for k, v in loss.state_dict().items())
    assert loss.weights()["ranking"] == CONFIGURED["ranking"]


def test_an_epoch_without_training_batches_keeps_the_history() -> None:
    loss = dwa_loss()
    train_epoch(loss, 0, epoch_batches(0, bias=0.3))
    train_epoch(loss, 1, epoch_batches(1, bias=0.1))
    loss.set_epoch(2)
    before = loss.factors()
    loss.set_epoch(3)  # nothing trained in epoch 2
    assert loss.factors() == before


def test_a_state_dict_round_trip_continues_identically() -> None:
    epochs, saved_after = 7, 3
    straight = dwa_loss(dwa_temperature=0.7)
    straight_weights = [
        train_epoch(straight, e, epoch_batches(e, bias=0.4 / (e + 1))) for e in range(epochs)
    ]

    first = dwa_loss(dwa_temperature=0.7)
    resumed_weights = [
        train_epoch(first, e, epoch_batches(e, bias=0.4 / (e + 1))) for e in range(saved_after)
    ]
    # The trainer validates, then saves at the epoch's end.
    first.train(False)
    with torch.no_grad():
        first(*batch(16, seed=999, bias=0.6))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = dwa_loss(dwa_temperature=0.7)
    second.load_state_dict(torch.load(buffer, weights_only=True))
    second.set_epoch(saved_after - 1)  # a resume may announce the saved epoch again
    resumed_weights += [
        train_epoch(second, e, epoch_batches(e, bias=0.4 / (e + 1)))
        for e in range(saved_after, epochs)
    ]
    assert resumed_weights == straight_weights
    assert straight_weights[0] != straight_weights[-1]  # the schedule did move
    for name, value in straight.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name


def test_accumulated_values_hold_no_graph() -> None:
    loss = dwa_loss()
    train_epoch(loss, 0, epoch_batches(0))
    assert loss.dwa is not None
    for name, value in loss.dwa.named_buffers():
        assert value.grad_fn is None and not value.requires_grad, name


def test_a_diverged_epoch_keeps_the_weights_finite() -> None:
    loss = dwa_loss()
    train_epoch(loss, 0, epoch_batches(0))
    pred, target = batch(8, seed=1)
    pred[0] = math.nan
    loss.set_epoch(1)
    loss(pred, target)
    loss.set_epoch(2)
    assert loss.factors() == {"ssim": 1.0, "ranking": 1.0, "correlation": 1.0}
    train_epoch(loss, 2, epoch_batches(2))
    loss.set_epoch(3)  # history: NaN, then a finite mean
    assert all(math.isfinite(f) for f in loss.factors().values())


def test_dwa_multiplies_a_ramp() -> None:
    loss = dwa_loss(ranking_weight={"start": 0.0, "end": 0.4, "epochs": 4})
    for epoch in range(3):
        train_epoch(loss, epoch, epoch_batches(epoch, bias=0.3 / (epoch + 1)))
    loss.set_epoch(3)
    out = loss(*batch(16, seed=5))
    factors = loss.factors()
    assert factors["ranking"] != 1.0
    # Epoch 3 (the trainer's numbering) is the ramp's zero-based epoch 2: 0.4 * 2 / 4.
    assert out["weight_ranking"].item() == pytest.approx(0.2 * factors["ranking"], rel=1e-6)
    assert sum(factors.values()) == pytest.approx(3.0, rel=1e-6)


def test_a_single_active_term_keeps_factor_one() -> None:
    loss = dwa_loss(ssim_weight=0.0, ranking_weight=0.0, correlation_weight=0.5)
    for epoch in range(4):
        train_epoch(
            loss,
            epoch,
            epoch_batches(
                epoch,
                bias=0.1 * epoch,
            ),
        )
    assert loss.factors()["correlation"] == 1.0
    out = loss(*batch(16, seed=5))
    assert out["weight_correlation"].item() == 0.5
    assert out["weight_ssim"].item() == out["weight_ranking"].item() == 0.0


def test_inactive_terms_get_no_share_of_the_factors() -> None:
    loss = dwa_loss(ranking_weight=0.0)
    assert loss.dwa is not None and loss.dwa.history.shape == (2, 2)
    for epoch in range(3):
        train_epoch(loss, epoch, epoch_batches(epoch, bias=0.3 / (epoch + 1)))
    factors = loss.factors()
    assert factors["ranking"] == 1.0
    assert factors["ssim"] + factors["correlation"] == pytest.approx(2.0, rel=1e-6)
    assert loss(*batch(16, seed=5))["weight_ranking"].item() == 0.0


def test_the_state_is_buffers_only_and_other_weightings_are_unchanged() -> None:
    loss = dwa_loss()
    assert list(loss.parameters()) == []
    assert sorted(loss.state_dict()) == ["dwa.epoch", "dwa.history", "dwa.rows", "dwa.sums"]
    assert CombinedLoss().state_dict() == {}
    assert sorted(CombinedLoss(CombinedParams(weighting="uncertainty")).state_dict()) == [
        f"log_variance.{c}" for c in sorted(COMPONENTS)
    ]


def test_the_first_epochs_equal_fixed_weighting() -> None:
    fixed = CombinedLoss(CombinedParams.model_validate({"ranking_weight": 0.2}))
    pred, target = batch(16, seed=11)
    loss = dwa_loss()
    loss.set_epoch(0)
    a, b = loss(pred, target), fixed(pred, target)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-6), key


# --- params and the loss kit --------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"dwa_temperature": 0.0}, "greater than 0"),
        ({"dwa_temperature": -1.0}, "greater than 0"),
        ({"dwa_temperature": "warm"}, "valid number"),
        ({"weighting": "DWA"}, "'dwa', 'fixed' or 'uncertainty'"),
    ],
)
def test_bad_dwa_params_are_rejected(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        CombinedParams.model_validate({"weighting": "dwa", **params})
    assert info.value.error_count() == 1


def test_dwa_accepts_ramps_and_round_trips() -> None:
    params = CombinedParams.model_validate(
        {"weighting": "dwa", "dwa_temperature": 0.5, "ranking_weight": {"end": 0.2, "epochs": 3}}
    )
    assert params.dwa_temperature == 0.5
    assert CombinedParams.model_validate(params.model_dump()) == params
    assert CombinedParams().dwa_temperature == 2.0


@pytest.mark.parametrize(
    "params",
    [
        {"weighting": "dwa"},
        {"weighting": "dwa", "dwa_temperature": 0.1, "ranking_weight": {"end": 0.2, "epochs": 3}},
        {"weighting": "dwa", "ssim_weight": 0.0, "ranking_weight": 0.0},
    ],
)
def test_dwa_conforms_to_the_loss_kit(params: dict[str, Any]) -> None:
    assert_loss_conforms(SPECS["combined"], params)


# --- through the trainer ------------------------------------------------------


def test_a_ramp_starts_at_its_start_in_the_trainers_first_epoch(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    # The trainer numbers epochs from 1; a ramp counts from 0: no weight is skipped.
    ramp = {"start": 0.0, "end": 0.1, "epochs": 2}
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        loss={"name": "combined", "ranking_weight": ramp},
        trainer={"epochs": 4, "batch_size": 8, "num_threads": 1},
    )
    rows = [
        json.loads(line) for line in (fit(cfg).run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    ranking = [r["train_loss_weight_ranking"] for r in rows]
    assert ranking == pytest.approx([0.0, 0.05, 0.1, 0.1], abs=1e-7)


def test_trainer_run_moves_the_weights_and_resumes_identically(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        loss={"name": "combined", "weighting": "dwa", "dwa_temperature": 0.5},
        trainer={
            "epochs": 5,
            "batch_size": 8,
            "num_threads": 1,
            "early_stopping": {"enabled": False},
            "checkpoint": {"every": 1, "keep_last": 10},
        },
    )
    straight = fit(cfg).run_dir
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    weights = [[r[f"train_loss_weight_{c}"] for c in COMPONENTS] for r in rows]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert weights[0] == weights[1] == pytest.approx([1.0, 0.1, 0.1], rel=1e-6)
    assert weights[2] != pytest.approx(weights[1], rel=1e-6)
    for row in rows:  # within an epoch the weights are constant: val reports the same
        for c in COMPONENTS:
            assert row[f"val_loss_weight_{c}"] == pytest.approx(
                row[f"train_loss_weight_{c}"], rel=1e-6
            )

    # Resume a copy of the folder from its epoch-2 checkpoint.
    copy = tmp_path / "resumed"
    shutil.copytree(straight, copy)
    shutil.copy(copy / "epoch-0002.pt", copy / "last.pt")
    Trainer.resume(copy / "last.pt", default_registry(), quiet=True).fit()
    again = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    strip = lambda found: [  # noqa: E731
        {k: v for k, v in r.items() if k not in ("time_s", "timestamp")} for r in found
    ]
    assert strip(again) == strip(rows)
    _, a = load_checkpoint(straight / "last.pt")
    _, b = load_checkpoint(copy / "last.pt")
    for key, value in a["training"]["loss"].items():
        assert torch.equal(value, b["training"]["loss"][key]), key


# --- DDP ----------------------------------------------------------------------


class _Objective(torch.nn.Module):
    """A model and the loss in one module, as the trainer hands them to DDP."""

    def __init__(self) -> None:
        super().__init__()
        self.model = torch.nn.Linear(4, 1)
        self.loss = dwa_loss(dwa_temperature=0.2)

    def forward(self, x: Tensor, target: Tensor) -> dict[str, Tensor]:
        return self.loss(self.model(x).squeeze(1), target)


def _ddp_rank(rank: int, world: int, folder: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world
    )
    torch.manual_seed(0)
    objective = _Objective()
    ddp = torch.nn.parallel.DistributedDataParallel(objective)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(10 + rank)
    record: list[dict[str, Any]] = []
    for epoch in range(1, 6):
        objective.loss.set_epoch(epoch)
        objective.loss.train(True)
        sums, rows, used = [0.0] * len(COMPONENTS), 0, []
        for step in range(6):
            x = torch.randn(8, 4, generator=gen)
            target = torch.sigmoid(x[:, 0] * (1 + rank))  # each rank its own data
            stepping = step % 2 == 1  # accumulate 2: every other forward skips the sync
            with ddp.no_sync() if not stepping else torch.enable_grad():
                out = ddp(x, target)
                out["loss"].backward()
            if stepping:
                optimizer.step()
                optimizer.zero_grad()
            sums = [s + out[c].item() * len(x) for s, c in zip(sums, COMPONENTS, strict=True)]
            rows += len(x)
            used.append([out[f"weight_{c}"].item() for c in COMPONENTS])
        record.append({"means": [s / rows for s in sums], "used": used})
    Path(folder, f"rank{rank}.json").write_text(json.dumps(record))
    # As qpcore.distributed.close does: a rank leaving while the other still
    # finishes its last all-reduce aborts in gloo's threads.
    del ddp
    dist.barrier()
    dist.destroy_process_group()


def test_under_ddp_every_rank_trains_with_the_factors_of_rank_0(tmp_path: Path) -> None:
    # DDP broadcasts buffers from rank 0 before each synchronised forward, so
    # rank 1's own sums never reach its history: docs/losses.md promises this.
    import torch.multiprocessing as mp

    mp.spawn(_ddp_rank, args=(2, str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [e["used"] for e in ranks[0]] == [e["used"] for e in ranks[1]]
    own = ranks[0]
    for n in range(2, 5):
        factors = expected_factors(
            torch.tensor(own[n - 2]["means"]), torch.tensor(own[n - 1]["means"]), 0.2
        )
        expected = [CONFIGURED[c] * f for c, f in zip(COMPONENTS, factors, strict=True)]
        for used in own[n]["used"]:
            assert used == pytest.approx(expected, rel=1e-4)
    assert ranks[1][4]["means"] != pytest.approx(own[4]["means"], rel=1e-2)  # other data
