"""Tests of the built-in losses (plugin ``qp_losses``) and of the loss contract.

The seed's literal algorithms (``qp_losses.reference``) are the ground truth for
the losses the seed defined; hand-computed cases pin down the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import qp_losses
import torch
from pydantic import BaseModel, ValidationError
from qp_losses.batchwise import PLCCLoss, PLCCParams, RankingLoss, RankingParams
from qp_losses.combined import COMPONENTS, CombinedLoss, CombinedParams, WeightRamp
from qp_losses.pointwise import (
    FocalLoss,
    FocalParams,
    HuberLoss,
    HuberParams,
    MAELoss,
    MSELoss,
    SSIMLoss,
    SSIMParams,
)
from qp_losses.reference import (
    seed_combined_loss,
    seed_correlation_loss,
    seed_focal_loss,
    seed_ranking_loss,
    seed_ssim_loss,
)
from scipy.stats import pearsonr
from torch import Tensor, nn

from qpcore import LossSpec, NoParams, Params
from qpcore.loss_output import split_loss_output
from qpcore.testing import assert_loss_conforms

SPECS: dict[str, LossSpec] = {spec.name: spec for spec in qp_losses.qp_register_losses()}
F64 = torch.float64


def t64(*values: float) -> Tensor:
    return torch.tensor(values, dtype=F64)


def ssim_batch(n: int, seed: int, dtype: torch.dtype = F64) -> tuple[Tensor, Tensor]:
    """Targets in an SSIM-like range and predictions with errors around 0.1."""
    gen = torch.Generator().manual_seed(seed)
    target = (0.5 + 0.5 * torch.rand(n, generator=gen, dtype=F64)).to(dtype)
    pred = (target + 0.1 * torch.randn(n, generator=gen, dtype=F64)).to(dtype)
    return pred, target


def value_and_grad(fn: Callable[[Tensor, Tensor], Any], pred: Tensor, target: Tensor):
    pred = pred.detach().clone().requires_grad_(True)
    out = fn(pred, target)
    total = out["loss"] if isinstance(out, dict) else out
    total.backward()
    assert pred.grad is not None
    return total.detach(), pred.grad


# --- registration and the contract -------------------------------------------


def test_registers_exactly_the_eight_losses() -> None:
    specs = qp_losses.qp_register_losses()
    assert [s.name for s in specs] == [
        "mse",
        "mae",
        "huber",
        "ssim",
        "ranking",
        "plcc",
        "combined",
        "focal",
    ]
    assert all(isinstance(s, LossSpec) and s.summary for s in specs)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_loss_conforms(name: str) -> None:
    assert_loss_conforms(SPECS[name])


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("combined", {"weighting": "uncertainty"}),
        ("combined", {"ranking_weight": {"start": 0.0, "end": 0.2, "epochs": 4}}),
        ("combined", {"ssim_weight": 0.0, "ranking_weight": 0.0}),
        ("focal", {"gamma": 0.5}),
        ("focal", {"gamma": 0.0}),
        ("ranking", {"margin": 0.0}),
        ("huber", {"delta": 1.0}),
    ],
)
def test_conforms_with_non_default_params(name: str, params: dict[str, Any]) -> None:
    assert_loss_conforms(SPECS[name], params)


class _Wrapped(nn.Module):
    """Turns a loss function into a module; ``flatten`` gives it [B] inputs only."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Any], flatten: bool) -> None:
        super().__init__()
        self.fn = fn
        self.flatten = flatten

    def forward(self, pred: Tensor, target: Tensor) -> Any:
        if self.flatten:
            pred, target = pred.reshape(-1), target.reshape(-1)
        return self.fn(pred, target)


def _seed_correlation_past_one(pred: Tensor, target: Tensor) -> Tensor:
    # Past the seed's batch-of-one bug, to reach its constant-prediction NaN.
    return seed_correlation_loss(pred, target) if pred.numel() > 1 else pred.sum() * 0


@pytest.mark.parametrize(
    ("fn", "flatten", "message"),
    [
        (seed_ranking_loss, True, "batch of one: the total is not connected to pred"),
        (lambda p, t: seed_focal_loss(p, t, gamma=0.5), True, "perfect predictions: non-finite"),
        (_seed_correlation_past_one, True, "constant predictions: non-finite gradient"),
        (lambda p, t: {"total_loss": seed_ssim_loss(p, t)}, True, "under 'loss'"),
        (lambda p, t: (p - t).square(), True, "0-d tensor"),
        (lambda p, t: (p - t).square().mean(), False, r"\[B, 1\] predictions .* disagree"),
        (lambda p, t: (p - t).square().mean(dim=-1).sum(), False, "disagree"),
        (lambda p, t: (p - t.clamp_(max=0.5)).square().mean(), True, "modified its inputs"),
        (lambda p, t: (p.detach() - t).square().mean(), True, "not connected to pred"),
    ],
)
def test_conformance_check_catches_broken_losses(
    fn: Callable[[Tensor, Tensor], Any], flatten: bool, message: str
) -> None:
    spec = LossSpec("broken", lambda _params: _Wrapped(fn, flatten), params=NoParams)
    with pytest.raises(AssertionError, match=message):
        assert_loss_conforms(spec)


def test_conformance_check_rejects_non_modules_and_bad_params() -> None:
    with pytest.raises(AssertionError, match=r"not a torch\.nn\.Module"):
        assert_loss_conforms(LossSpec("fn", lambda _p: seed_ssim_loss, params=NoParams))
    with pytest.raises(ValidationError):
        assert_loss_conforms(SPECS["focal"], {"gama": 1.0})


def _all_params_models() -> list[type[BaseModel]]:
    return [spec.params for spec in SPECS.values()] + [WeightRamp]


@pytest.mark.parametrize("model", _all_params_models(), ids=lambda m: m.__name__)
def test_every_params_field_is_documented(model: type[BaseModel]) -> None:
    model.model_json_schema()  # must not raise
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"


# --- hand-computed values ----------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "pred", "target", "expected"),
    [
        (MSELoss(), t64(0.5, 1.0), t64(0.0, 1.0), 0.125),
        (MAELoss(), t64(0.5, 1.0), t64(0.0, 1.0), 0.25),
        # |e| = 0.5 is linear: 0.1 * (0.5 - 0.05); |e| = 0.05 quadratic: 0.5 * 0.05².
        (HuberLoss(), t64(0.5, 0.95), t64(0.0, 1.0), (0.045 + 0.00125) / 2),
        (HuberLoss(HuberParams(delta=1.0)), t64(0.5, 0.95), t64(0.0, 1.0), (0.125 + 0.00125) / 2),
        # mse 0.25 + 0.1 * l1 0.5 + 0.1 * mean(1 * 0.25, 1.5 * 0.25)
        (SSIMLoss(), t64(0.5, 1.0), t64(0.0, 0.5), 0.25 + 0.05 + 0.03125),
        (SSIMLoss(SSIMParams(alpha=0.0, beta=1.0)), t64(0.5, 1.0), t64(0.0, 0.5), 0.5 + 0.3125),
        # 2 * mean(|0.5|³, |-0.2|³)
        (FocalLoss(FocalParams(alpha=2.0, gamma=1.0)), t64(0.5, 0.0), t64(0.0, 0.2), 0.133),
        (FocalLoss(), t64(0.5, -0.5), t64(0.0, 0.0), 0.0625),
        # pairs (0,1): 0.7, (0,2): 0.4, (1,2): 0.4, over 3 pairs
        (RankingLoss(), t64(0.2, 0.8, 0.5), t64(0.9, 0.1, 0.5), 0.5),
        # 4 pairs beyond the margin, each 0.1, divided by all 6 pairs (not by 4)
        (RankingLoss(), t64(0, 0, 0, 0), t64(0.5, 0.45, 0.0, 0.02), 0.4 / 6),
        # only (0,1) is beyond 0.5: relu(0.5 - (0.2 - 0.8)) = 1.1
        (RankingLoss(RankingParams(margin=0.5)), t64(0.2, 0.8, 0.5), t64(0.9, 0.1, 0.5), 1.1 / 3),
        (PLCCLoss(), t64(1, 2, 3), t64(1, 3, 2), 0.5),
        (PLCCLoss(), t64(1, 2, 3), t64(3, 2, 1), 2.0),
        (PLCCLoss(), t64(1, 2, 3), t64(2, 4, 6), 0.0),
    ],
)
def test_hand_computed_values(loss: nn.Module, pred: Tensor, target: Tensor, expected: float):
    assert loss(pred, target).item() == pytest.approx(expected, abs=1e-7)


def test_ranking_hand_computed_gradient() -> None:
    _, grad = value_and_grad(RankingLoss(), t64(0.2, 0.8, 0.5), t64(0.9, 0.1, 0.5))
    torch.testing.assert_close(grad, t64(-2 / 3, 2 / 3, 0.0))


def test_focal_gradient_is_zero_not_nan_at_a_perfect_prediction() -> None:
    for gamma in (0.0, 0.5, 2.0):
        _, grad = value_and_grad(FocalLoss(FocalParams(gamma=gamma)), t64(0.3, 0.9), t64(0.3, 0.5))
        assert grad[0].item() == 0.0
        assert grad[1].item() > 0.0


# --- against the seed's formulas ---------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 7, 16, 33])
@pytest.mark.parametrize("margin", [0.0, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("quantized", [False, True])
def test_ranking_matches_the_seed_loop(n: int, margin: float, quantized: bool) -> None:
    pred, target = ssim_batch(n, seed=n * 100 + int(margin * 100))
    if quantized:  # ties and differences of exactly the margin in both inputs
        pred, target = (pred * 20).round() / 20, (target * 20).round() / 20
    loss = RankingLoss(RankingParams(margin=margin))
    value, grad = value_and_grad(loss, pred, target)
    ref_value, ref_grad = value_and_grad(lambda p, t: seed_ranking_loss(p, t, margin), pred, target)
    assert abs(value - ref_value).item() <= 1e-6
    assert (grad - ref_grad).abs().max().item() <= 1e-6


@pytest.mark.parametrize("n", [1, 5, 64])
def test_ssim_and_focal_match_the_seed(n: int) -> None:
    pred, target = ssim_batch(n, seed=n)
    cases = [
        (SSIMLoss(), seed_ssim_loss),
        (SSIMLoss(SSIMParams(alpha=0.5, beta=0.3)), lambda p, t: seed_ssim_loss(p, t, 0.5, 0.3)),
        (FocalLoss(), seed_focal_loss),
        (
            FocalLoss(FocalParams(alpha=3.0, gamma=1.5)),
            lambda p, t: seed_focal_loss(p, t, 3.0, 1.5),
        ),
    ]
    for loss, seed in cases:
        value, grad = value_and_grad(loss, pred, target)
        ref_value, ref_grad = value_and_grad(seed, pred, target)
        torch.testing.assert_close(value, ref_value, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


def test_combined_defaults_match_the_seed() -> None:
    pred, target = ssim_batch(24, seed=7)
    out = CombinedLoss()(pred, target)
    ref = seed_combined_loss(pred, target)
    for mine, theirs in [
        ("loss", "total_loss"),
        ("ssim", "ssim_loss"),
        ("ranking", "ranking_loss"),
        ("correlation", "correlation_loss"),
    ]:
        assert out[mine].item() == pytest.approx(ref[theirs].item(), abs=1e-6), mine


def test_combined_output_mapping() -> None:
    pred, target = ssim_batch(8, seed=1)
    out = CombinedLoss()(pred.unsqueeze(1).requires_grad_(True), target.unsqueeze(1))
    assert list(out) == [
        "loss",
        "ssim",
        "ranking",
        "correlation",
        "weight_ssim",
        "weight_ranking",
        "weight_correlation",
    ]
    assert out["loss"].requires_grad
    assert not any(v.requires_grad for k, v in out.items() if k != "loss")
    expected = sum(out[f"weight_{c}"] * out[c] for c in COMPONENTS)
    assert out["loss"].item() == pytest.approx(float(expected), abs=1e-12)


# --- shapes and small batches ------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
def test_mixed_ranks_do_not_broadcast(name: str) -> None:
    loss = SPECS[name].factory(SPECS[name].params())
    pred, target = ssim_batch(6, seed=3)
    flat = split_loss_output(loss(pred, target))[0]
    mixed = split_loss_output(loss(pred.unsqueeze(1), target))[0]
    mixed_other = split_loss_output(loss(pred, target.unsqueeze(1)))[0]
    assert flat.item() == pytest.approx(mixed.item(), abs=1e-12)
    assert flat.item() == pytest.approx(mixed_other.item(), abs=1e-12)


@pytest.mark.parametrize(
    ("pred_shape", "target_shape", "message"),
    [
        ((4, 2), (4, 2), r"\[B\] or \[B, 1\]"),
        ((4, 1, 1), (4,), r"\[B\] or \[B, 1\]"),
        ((), (), r"\[B\] or \[B, 1\]"),
        ((4,), (5,), "different batch sizes"),
        ((0,), (0,), "empty batch"),
    ],
)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_bad_shapes_raise(name: str, pred_shape, target_shape, message: str) -> None:
    loss = SPECS[name].factory(SPECS[name].params())
    with pytest.raises(ValueError, match=message):
        loss(torch.zeros(pred_shape), torch.zeros(target_shape))


def test_float64_targets_are_cast_to_the_prediction_dtype() -> None:
    pred, target = ssim_batch(5, seed=2, dtype=torch.float32)
    out = CombinedLoss()(pred, target.double())
    assert out["loss"].dtype == torch.float32


def test_ranking_batch_of_one_is_a_connected_zero() -> None:
    value, grad = value_and_grad(RankingLoss(), t64(0.4), t64(0.9))
    assert value.item() == 0.0
    assert grad.tolist() == [0.0]


@pytest.mark.parametrize(
    ("pred", "target", "zero_grad"),
    [
        (t64(0.4), t64(0.9), True),  # batch of one
        (t64(0.4, 0.6, 0.9), t64(0.75, 0.75, 0.75), True),  # constant targets
        (t64(0.75, 0.75, 0.75), t64(0.4, 0.6, 0.9), False),  # collapsed model
    ],
)
def test_plcc_degenerate_batches_read_as_uncorrelated(pred, target, zero_grad: bool) -> None:
    value, grad = value_and_grad(PLCCLoss(), pred, target)
    assert value.item() == pytest.approx(1.0, abs=1e-12)
    assert torch.isfinite(grad).all()
    assert (grad.abs().max().item() == 0.0) is zero_grad


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [3, 16, 100])
def test_plcc_matches_scipy(seed: int, n: int) -> None:
    pred, target = ssim_batch(n, seed=seed)
    r = pearsonr(pred.numpy(), target.numpy()).statistic
    # Without the variance floor: scipy's value to rounding.
    exact = PLCCLoss(PLCCParams(eps=1e-30))(pred, target).item()
    assert exact == pytest.approx(1.0 - r, abs=1e-9)
    # With the default floor: within the documented first-order bias bound.
    eps = PLCCParams().eps
    bound = r * (eps / (2 * pred.var(correction=0)) + eps / (2 * target.var(correction=0)))
    default = PLCCLoss()(pred, target).item()
    assert default == pytest.approx(1.0 - r, abs=1.01 * abs(bound.item()) + 1e-12)
    assert abs(default - (1.0 - r)) <= 1e-4


def test_plcc_float32_matches_scipy() -> None:
    pred, target = ssim_batch(64, seed=11, dtype=torch.float32)
    r = pearsonr(pred.double().numpy(), target.double().numpy()).statistic
    assert PLCCLoss()(pred, target).item() == pytest.approx(1.0 - r, abs=1e-5)


# --- params validation -------------------------------------------------------


@pytest.mark.parametrize("model", [*_all_params_models(), NoParams], ids=lambda m: m.__name__)
def test_unknown_keys_are_rejected(model: type[Params]) -> None:
    required = {"end": 0.1, "epochs": 2} if model is WeightRamp else {}
    model(**required)  # the valid case passes
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model(**required, bogus=1)


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        (HuberParams, {"delta": 0.0}, "greater than 0"),
        (SSIMParams, {"alpha": -1.0}, "greater than or equal to 0"),
        (SSIMParams, {"beta": -0.1}, "greater than or equal to 0"),
        (RankingParams, {"margin": -0.1}, "greater than or equal to 0"),
        (PLCCParams, {"eps": 0.0}, "greater than 0"),
        (FocalParams, {"alpha": 0.0}, "greater than 0"),
        (FocalParams, {"gamma": -1.0}, "greater than or equal to 0"),
        (CombinedParams, {"margin": -1.0}, "greater than or equal to 0"),
        (CombinedParams, {"ranking_weight": -0.1}, "greater than or equal to 0"),
        (CombinedParams, {"weighting": "learned"}, "'fixed' or 'uncertainty'"),
        (CombinedParams, {"ranking_weight": {"end": 0.1}}, "Field required"),
        (CombinedParams, {"ranking_weight": {"end": 0.1, "epochs": 0}}, "greater than or equal"),
        (CombinedParams, {"ranking_weight": {"end": 0.1, "epochs": 2, "x": 1}}, "Extra inputs"),
        (CombinedParams, {"ranking_weight": {"end": -0.1, "epochs": 2}}, "greater than or equal"),
        (CombinedParams, {"correlation_weight": "high"}, "valid number"),
        (
            CombinedParams,
            {"ssim_weight": 0, "ranking_weight": 0, "correlation_weight": 0},
            "every weight is zero",
        ),
        (
            CombinedParams,
            {"weighting": "uncertainty", "ranking_weight": {"end": 0.1, "epochs": 5}},
            "ranking_weight: a ramp cannot be combined",
        ),
    ],
)
def test_invalid_values_are_rejected(model: type[Params], kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        model(**kwargs)
    assert info.value.error_count() == 1  # one mistake, one message


def test_a_bad_ramp_reports_its_path() -> None:
    with pytest.raises(ValidationError) as info:
        CombinedParams.model_validate({"ranking_weight": {"end": 0.1}})
    assert info.value.errors()[0]["loc"] == ("ranking_weight", "ramp", "epochs")


def test_resolved_params_round_trip() -> None:
    params = CombinedParams(
        ranking_weight={"start": 0.0, "end": 0.1, "epochs": 10, "start_epoch": 2},  # type: ignore[arg-type]
        correlation_weight=0.3,
    )
    dumped = params.model_dump()
    assert dumped["ranking_weight"] == {"start": 0.0, "end": 0.1, "epochs": 10, "start_epoch": 2}
    assert CombinedParams.model_validate(dumped) == params
    assert CombinedParams.model_validate_json(params.model_dump_json()) == params


# --- combined: schedules -----------------------------------------------------


@pytest.mark.parametrize(
    # The trainer's epoch numbers start at 1; the ramp's zero-based epoch is one less.
    ("epoch", "expected"),
    [(1, 0.0), (2, 0.01), (6, 0.05), (11, 0.1), (12, 0.1), (501, 0.1)],
)
def test_ramp_weight_per_epoch(epoch: int, expected: float) -> None:
    params = CombinedParams.model_validate(
        {"ranking_weight": {"start": 0.0, "end": 0.1, "epochs": 10}}
    )
    loss = CombinedLoss(params)
    loss.set_epoch(epoch)
    assert loss.weights() == pytest.approx(
        {"ssim": 1.0, "ranking": expected, "correlation": 0.1}, abs=1e-15
    )
    pred, target = ssim_batch(12, seed=epoch)
    out = loss(pred, target)
    assert out["weight_ranking"].item() == pytest.approx(expected, abs=1e-15)
    total = out["ssim"] + expected * out["ranking"] + 0.1 * out["correlation"]
    assert out["loss"].item() == pytest.approx(total.item(), abs=1e-12)


def test_ramp_can_start_late_and_decrease() -> None:
    ramp = WeightRamp(start=1.0, end=0.2, epochs=4, start_epoch=3)
    assert [ramp.at(e) for e in range(9)] == pytest.approx(
        [1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2]
    )


def test_ramp_from_zero_counts_as_active() -> None:
    params = CombinedParams.model_validate(
        {"ssim_weight": 0, "correlation_weight": 0, "ranking_weight": {"end": 0.5, "epochs": 3}}
    )
    assert params.active_components() == ("ranking",)


# --- combined: uncertainty weighting -----------------------------------------


def test_uncertainty_weighting_value_and_gradients() -> None:
    loss = CombinedLoss(CombinedParams(weighting="uncertainty", ranking_weight=0.2))
    assert loss.log_variance is not None
    assert sorted(name for name, _ in loss.named_parameters()) == [
        "log_variance.correlation",
        "log_variance.ranking",
        "log_variance.ssim",
    ]
    s = {"ssim": 0.5, "ranking": -0.3, "correlation": 1.0}
    with torch.no_grad():
        for name, value in s.items():
            loss.log_variance[name].fill_(value)
    weight = {"ssim": 1.0, "ranking": 0.2, "correlation": 0.1}
    pred, target = ssim_batch(16, seed=5, dtype=torch.float32)
    pred.requires_grad_(True)
    out = loss(pred, target)

    terms = {c: out[c].item() for c in COMPONENTS}
    expected = sum(math.exp(-s[c]) * weight[c] * terms[c] + s[c] for c in COMPONENTS)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    for c in COMPONENTS:
        assert out[f"log_var_{c}"].item() == pytest.approx(s[c])
        assert out[f"weight_{c}"].item() == pytest.approx(math.exp(-s[c]) * weight[c], rel=1e-6)

    out["loss"].backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    for c in COMPONENTS:
        grad = loss.log_variance[c].grad
        assert grad is not None
        # d/ds [exp(-s) w L + s] = 1 - exp(-s) w L
        assert grad.item() == pytest.approx(1 - math.exp(-s[c]) * weight[c] * terms[c], rel=1e-5)


def test_uncertainty_starts_where_fixed_weighting_does_and_learns() -> None:
    pred, target = ssim_batch(16, seed=9, dtype=torch.float32)
    fixed = CombinedLoss()(pred, target)["loss"]
    learned = CombinedLoss(CombinedParams(weighting="uncertainty"))
    assert learned(pred, target)["loss"].item() == pytest.approx(fixed.item(), rel=1e-6)

    optimizer = torch.optim.SGD(learned.parameters(), lr=0.1)
    before = {n: p.item() for n, p in learned.named_parameters()}
    learned(pred, target)["loss"].backward()
    optimizer.step()
    assert all(p.item() != before[n] for n, p in learned.named_parameters())


def test_uncertainty_skips_zero_weight_terms() -> None:
    loss = CombinedLoss(CombinedParams(weighting="uncertainty", ranking_weight=0.0))
    assert loss.log_variance is not None
    assert sorted(loss.log_variance.keys()) == ["correlation", "ssim"]
    pred, target = ssim_batch(8, seed=4)
    out = loss(pred, target)
    assert "log_var_ranking" not in out
    assert out["weight_ranking"].item() == 0.0
    assert out["loss"].item() == pytest.approx(out["ssim"].item() + 0.1 * out["correlation"].item())


def test_fixed_weighting_has_no_parameters() -> None:
    assert list(CombinedLoss().parameters()) == []


# --- split_loss_output -------------------------------------------------------


def test_split_a_tensor_output() -> None:
    total = torch.tensor(0.5, requires_grad=True)
    out_total, parts = split_loss_output(total)
    assert out_total is total and parts == {}


def test_split_a_mapping_keeps_order_and_the_graph() -> None:
    total = torch.tensor(2.0, requires_grad=True) * 1.0
    out = {"b": torch.tensor(0.25), "loss": total, "a": 3, "c": torch.tensor(1.5, dtype=F64)}
    out_total, parts = split_loss_output(out)
    assert out_total is total
    assert parts == {"b": 0.25, "a": 3.0, "c": 1.5}
    assert list(parts) == ["b", "a", "c"]
    assert all(type(v) is float for v in parts.values())


@pytest.mark.parametrize(
    ("out", "error", "message"),
    [
        ([torch.tensor(1.0)], TypeError, "scalar tensor or a mapping"),
        (1.0, TypeError, "scalar tensor or a mapping"),
        ({"total_loss": torch.tensor(1.0)}, TypeError, "under 'loss'"),
        ({"loss": 1.0}, TypeError, "must be a tensor"),
        (torch.ones(3), ValueError, "0-d tensor"),
        ({"loss": torch.ones(1)}, ValueError, "0-d tensor"),
        ({"loss": torch.tensor(1.0), "mse": torch.ones(2)}, ValueError, "'mse' must be a scalar"),
        ({"loss": torch.tensor(1.0), "note": "x"}, TypeError, "'note' must be a scalar"),
        ({"loss": torch.tensor(1.0), "flag": True}, TypeError, "'flag' must be a scalar"),
    ],
)
def test_split_rejects_contract_violations(out: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        split_loss_output(out)


def test_numpy_scalars_are_accepted_as_components() -> None:
    _, parts = split_loss_output({"loss": torch.tensor(1.0), "np": np.float32(0.5)})
    assert parts == {"np": 0.5}
