"""The conformance kit of :mod:`qpcore.testing`: every built-in passes it, and a
component that breaks one of its rules fails with that rule in the message.

The loss kit's older rules are tested in ``test_losses.py`` (every built-in
loss passes there); here are the rules added since: unequal and empty batches.
"""

from __future__ import annotations

import io
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from qpcore import (
    BackboneSpec,
    DatasetParams,
    DatasetSpec,
    EvaluatorSpec,
    ExecutorParams,
    ExecutorSpec,
    LossSpec,
    MonitorSpec,
    NoParams,
    OptimizerSpec,
    SchedulerParams,
    SchedulerSpec,
    hookimpl,
)
from qpcore.backbone import Backbone, ComputedFeatures
from qpcore.data.dataset import LabelledData
from qpcore.data.manifest import Sample
from qpcore.data.pool import LocalPool
from qpcore.data.protocol import PROTOCOL, VtracerParams
from qpcore.errors import DiskFull
from qpcore.evaluation import EvalData, EvalOutput
from qpcore.html import Html, Section
from qpcore.registry import Registry
from qpcore.testing import (
    RecordingMonitor,
    assert_backbone_conforms,
    assert_dataset_conforms,
    assert_evaluator_conforms,
    assert_executor_conforms,
    assert_loss_conforms,
    assert_monitor_conforms,
    assert_optimizer_conforms,
    assert_scheduler_conforms,
)

REGISTRY = Registry.from_entrypoints(disabled=set())


def builtins(kind: str) -> list[str]:
    """The names qpcore itself ships for ``kind``."""
    return sorted(e.spec.name for e in REGISTRY.entries(kind) if e.plugin.distribution == "qpcore")  # type: ignore[arg-type]


def spec(kind: str, name: str) -> Any:
    return REGISTRY.get(kind, name)  # type: ignore[arg-type]


def test_every_kind_has_builtins_to_check() -> None:
    for kind in ("optimizer", "scheduler", "monitor", "evaluator", "backbone", "dataset"):
        assert builtins(kind), kind
    assert builtins("executor") == ["local", "ray"]


# --- losses: unequal and empty batches --------------------------------------


class _Loss(nn.Module):
    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.fn(pred.reshape(-1), target.reshape(-1))


def _strict_sizes(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    def checked(p: Tensor, t: Tensor) -> Tensor:
        if p.shape != t.shape:
            raise ValueError("different batch sizes")
        return fn(p, t)

    return checked


def _mse(p: Tensor, t: Tensor) -> Tensor:
    return (p - t).square().mean()


def _broadcasting(p: Tensor, t: Tensor) -> Tensor:
    if p.shape != t.shape and min(len(p), len(t)) > 1:
        raise ValueError("different batch sizes")
    return _mse(p, t)


def _truncating(p: Tensor, t: Tensor) -> Tensor:
    n = min(len(p), len(t))
    return _mse(p[:n], t[:n])


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        # [1] - [B] broadcasts: a finite, wrong loss instead of an error.
        (_broadcasting, r"pred \[1\] and target \[8\] \(different batch sizes\).*returned"),
        (_truncating, r"pred \[8\] and target \[7\] \(different batch sizes\) must raise Val"),
        # Plain subtraction: torch's RuntimeError, which callers do not expect.
        (_mse, r"\[7\] \(different batch sizes\) must raise ValueError, not RuntimeError"),
        (_strict_sizes(_mse), r"pred \[0\] and target \[0\] \(an empty batch\).*returned"),
        # A quiet zero is refused as well: it hides the empty split upstream.
        (
            _strict_sizes(lambda p, t: _mse(p, t) if len(p) else p.sum() * 0),
            r"an empty batch\) must raise ValueError",
        ),
    ],
)
def test_loss_kit_refuses_unequal_and_empty_batches(
    fn: Callable[[Tensor, Tensor], Tensor], message: str
) -> None:
    broken = LossSpec("broken", lambda _p: _Loss(fn), NoParams)
    with pytest.raises(AssertionError, match=rf"loss 'broken': .*{message}"):
        assert_loss_conforms(broken)


def test_loss_kit_passes_a_loss_that_checks_its_batches() -> None:
    def checked(p: Tensor, t: Tensor) -> Tensor:
        if p.shape != t.shape or not len(p):
            raise ValueError("unequal or empty")
        return _mse(p, t)

    assert_loss_conforms(LossSpec("checked", lambda _p: _Loss(checked), NoParams))


# --- optimizers ---------------------------------------------------------------


@pytest.mark.parametrize("name", builtins("optimizer"))
def test_every_builtin_optimizer_conforms(name: str) -> None:
    assert_optimizer_conforms(spec("optimizer", name))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sgd", {"nesterov": True, "weight_decay": 1e-3}),
        ("sgd", {"momentum": 0.0}),
        ("adam", {"amsgrad": True}),
        ("adamw", {"lr": 1e-2, "betas": [0.8, 0.9]}),
    ],
)
def test_builtin_optimizers_conform_with_other_params(name: str, params: dict[str, Any]) -> None:
    assert_optimizer_conforms(spec("optimizer", name), params)


class ForgetfulAdam(torch.optim.Adam):
    """Saves its groups but not its moments."""

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "state": {}}


class FixedRate(torch.optim.Optimizer):
    """Reads its learning rate once, so schedulers and rollbacks change nothing."""

    def __init__(self, groups: Any, lr: float) -> None:
        super().__init__(groups, {"lr": lr})
        self.rate = lr

    def step(self, closure: Any = None) -> None:
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-self.rate)


class Idle(torch.optim.SGD):
    def step(self, closure: Any = None) -> None:
        return None


class DecaysEverything(torch.optim.SGD):
    """Shrinks every parameter, also those without a gradient."""

    def step(self, closure: Any = None) -> None:
        super().step(closure)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        p.mul_(0.9)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda groups, _p: object(), "not a torch.optim.Optimizer"),
        (
            lambda groups, _p: torch.optim.SGD([p for g in groups for p in g["params"]], lr=0.1),
            "not the 2 it was given",
        ),
        (
            lambda groups, _p: torch.optim.AdamW(
                [{"params": g["params"]} for g in groups], weight_decay=0.1
            ),
            "weight_decay: 0.0 was overridden",
        ),
        (lambda groups, _p: ForgetfulAdam(groups, lr=0.01), "loses state a resumed run needs"),
        (lambda groups, _p: FixedRate(groups, 0.05), "ignores the lr"),
        (lambda groups, _p: Idle(groups, lr=0.1), "did not change"),
        (lambda groups, _p: DecaysEverything(groups, lr=0.1), "gradient is None changed"),
        (lambda groups, _p: torch.optim.SGD(groups, lr=0.1, maximize=True), "did not lower it"),
    ],
)
def test_optimizer_kit_catches_broken_optimizers(
    factory: Callable[[Any, Any], Any], message: str
) -> None:
    with pytest.raises(AssertionError, match=rf"optimizer 'broken': .*{message}"):
        assert_optimizer_conforms(OptimizerSpec("broken", factory, NoParams))


# --- schedulers -----------------------------------------------------------------


@pytest.mark.parametrize("name", builtins("scheduler"))
def test_every_builtin_scheduler_conforms(name: str) -> None:
    assert_scheduler_conforms(spec("scheduler", name))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("reduce_on_plateau", {"patience": 1, "warmup_epochs": 2}),
        ("cosine", {"eta_min": 0.0, "warmup_epochs": 1}),
        ("cosine", {"t_max": 2}),
        ("step", {"step_size": 2, "gamma": 0.5}),
        ("onecycle", {"warmup_epochs": 1, "anneal_strategy": "linear"}),
    ],
)
def test_builtin_schedulers_conform_with_other_params(name: str, params: dict[str, Any]) -> None:
    assert_scheduler_conforms(spec("scheduler", name), params)


def test_scheduler_kit_really_reduces_on_a_plateau() -> None:
    """The watched metric stalls, so the resume check covers a changed LR too."""
    from qpcore.testing.schedulers import _build, _drive

    plateau = spec("scheduler", "reduce_on_plateau")
    scheduler, optimizer = _build(plateau, plateau.params(patience=1), 6, 4)
    lrs = [lr[0] for lr in _drive("x", scheduler, optimizer, range(6), 4)]
    assert lrs[0] == 0.1 and lrs[-1] < 0.1


class AmnesicStep(torch.optim.lr_scheduler.StepLR):
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None


class OpaqueState:
    """Something torch.load(weights_only=True) refuses to rebuild."""


class OpaqueStep(torch.optim.lr_scheduler.StepLR):
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "extra": OpaqueState()}


class StepOnly:
    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def step(self) -> None:
        return None


def _lambda(fn: Callable[[int], float]) -> Callable[..., Any]:
    return lambda optimizer, _p, _c: torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda o, _p, _c: AmnesicStep(o, step_size=2), "does not restore where the schedule"),
        (
            _lambda(lambda epoch: 1.0 - 0.4 * epoch),
            r"at step 0 of epoch 3 the learning rate is -0\.\d+: it must be finite and not neg",
        ),
        (_lambda(lambda epoch: math.inf if epoch > 2 else 1.0), "inf: it must be finite"),
        (_lambda(lambda epoch: 0.0), "must start with a positive one"),
        (lambda o, _p, _c: StepOnly(o), r"has no state_dict\(\)"),
        (lambda o, _p, _c: OpaqueStep(o, step_size=2), r"weights_only=True"),
    ],
)
def test_scheduler_kit_catches_broken_schedulers(factory: Callable[..., Any], message: str) -> None:
    broken = SchedulerSpec("broken", factory, SchedulerParams)
    with pytest.raises(AssertionError, match=rf"scheduler 'broken': .*{message}"):
        assert_scheduler_conforms(broken)


# --- monitors -------------------------------------------------------------------


@pytest.mark.parametrize("name", builtins("monitor"))
def test_every_builtin_monitor_conforms(name: str, tmp_path: Path) -> None:
    assert_monitor_conforms(spec("monitor", name), run_dir=tmp_path)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("system", {"interval_s": 0.05}),
        ("anomaly", {"action": "stop", "warmup_batches": 1}),
        ("jsonl", {"max_bytes": 1024, "backups": 1}),
        ("plots", {"every": 1, "min_interval_s": 0}),
        ("tensorboard", {"every_batches": 1}),
    ],
)
def test_builtin_monitors_conform_with_other_params(name: str, params: dict[str, Any]) -> None:
    assert_monitor_conforms(spec("monitor", name), params)


def test_the_recording_monitor_conforms() -> None:
    assert_monitor_conforms(MonitorSpec("recording", lambda _p: RecordingMonitor()))


class WrongArgument:
    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metric: Any) -> None: ...


class Misspelt:
    @hookimpl
    def qp_on_epoch_ends(self, run: Any, epoch: int, metrics: Any) -> None: ...


class Unmarked:
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Any) -> None: ...


class Defaulted:
    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Any = None) -> None: ...


class Catchall:
    @hookimpl
    def qp_on_batch_end(self, run: Any, **kwargs: Any) -> None: ...


class Nothing:
    def close(self) -> None: ...


class Sampler:
    """Starts a thread with the run and stops it only when ``stop_on`` comes."""

    def __init__(self, stop_on: tuple[str, ...]) -> None:
        self.stop_on = stop_on
        self.done = threading.Event()

    @hookimpl
    def qp_on_fit_start(self, run: Any) -> None:
        self.done.clear()
        threading.Thread(target=self.done.wait, name="kit-sampler", daemon=True).start()

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Any) -> None:
        if "fit_end" in self.stop_on:
            self.done.set()

    @hookimpl
    def qp_on_exception(self, run: Any, error: BaseException) -> None:
        if "exception" in self.stop_on:
            self.done.set()


class Logfile:
    """Holds a file open through the run; closes it only at a normal end."""

    def __init__(self) -> None:
        self.handle: io.TextIOWrapper | None = None

    @hookimpl
    def qp_on_fit_start(self, run: Any) -> None:
        self.handle = open(run.run_dir / "log.txt", "a", encoding="utf-8")  # noqa: SIM115

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Any) -> None:
        assert self.handle is not None
        self.handle.close()


class Counter:
    """Its state_dict counts batches, but load_state_dict forgets to restore it."""

    def __init__(self) -> None:
        self.batches = 0

    @hookimpl
    def qp_on_batch_end(self, run: Any, epoch: int, batch: int, metrics: Any) -> None:
        self.batches += 1

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None


class HalfStateful(Counter):
    load_state_dict = None  # type: ignore[assignment]


class Printer:
    """Formats val_pearson as a number, though it is None when undefined."""

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Any) -> None:
        print(f"{metrics['val_pearson']:.3f}")


class NormReader:
    """Reads grad_norm without asking for it (wants_grad_norm)."""

    @hookimpl
    def qp_on_batch_end(self, run: Any, epoch: int, batch: int, metrics: Any) -> None:
        print(metrics["grad_norm"])


class NormAsker(NormReader):
    wants_grad_norm = True


class Leaky:
    """Reports the run folder as raw markup."""

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Any) -> None: ...

    def report(self, run: Any) -> list[Section]:
        return [Section("Run", Html(f"<p>{run.run_dir}</p>"))]


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (WrongArgument, r"the hook has no argument 'metric'; .*qp_on_epoch_end\(run, epoch"),
        (Misspelt, "qp_on_epoch_ends is not a training hook"),
        (Unmarked, "not marked with @qpcore.hookimpl"),
        (Defaulted, "'metrics' has a default, so pluggy never passes it"),
        (Catchall, r"\*args/\*\*kwargs receive nothing"),
        (Nothing, "implements none of the hooks"),
        (lambda: Sampler(()), r"threads \['kit-sampler'\] are still running after qp_on_fit_end"),
        (
            lambda: Sampler(("fit_end",)),
            r"threads \['kit-sampler'\] are still running after qp_on_exception",
        ),
        (Logfile, r"log\.txt'\] are still open after qp_on_exception"),
        (Counter, "returns another state_dict"),
        (HalfStateful, "no load_state_dict"),
        (Printer, "qp_on_epoch_end raised TypeError"),
        (NormReader, "qp_on_batch_end raised KeyError"),
        (Leaky, r"report\(run\): a section puts '<script>alert.*unescaped"),
    ],
)
def test_monitor_kit_catches_broken_monitors(factory: Callable[[], Any], message: str) -> None:
    broken = MonitorSpec("broken", lambda _p: factory())
    with pytest.raises(AssertionError, match=rf"monitor 'broken': .*{message}"):
        assert_monitor_conforms(broken)


def test_monitor_kit_passes_what_the_broken_ones_get_wrong_done_right() -> None:
    assert_monitor_conforms(MonitorSpec("sampler", lambda _p: Sampler(("fit_end", "exception"))))
    assert_monitor_conforms(MonitorSpec("asker", lambda _p: NormAsker()))


# --- evaluators -----------------------------------------------------------------


@pytest.mark.parametrize("name", builtins("evaluator"))
def test_every_builtin_evaluator_conforms(name: str) -> None:
    assert_evaluator_conforms(spec("evaluator", name))


def test_builtin_evaluators_conform_with_other_params() -> None:
    assert_evaluator_conforms(spec("evaluator", "bands"), {"edges": [0.5, 0.7, 0.9]})
    assert_evaluator_conforms(spec("evaluator", "calibration"), {"levels": [0.5], "mc_passes": 0})
    assert_evaluator_conforms(spec("evaluator", "regression"), {"outliers": 0})


class Evaluator:
    """A correct evaluator whose parts the broken ones replace."""

    def metric(self, data: EvalData, out: EvalOutput) -> None:
        from qpcore.evaluation import degenerate

        flat = degenerate(data.predictions, data.targets)
        out.put("r", lambda: float(np.corrcoef(data.predictions, data.targets)[0, 1]), flat)

    def evaluate(self, data: EvalData) -> EvalOutput:
        out = EvalOutput()
        self.metric(data, out)
        out.put("mae", lambda: float(np.abs(data.errors).mean()))
        return out

    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        from qpcore.html import table

        rows = [(str(s.image), s.group, s.source) for s in data.samples]
        return [Section("Rows", table(["image", "group", "source"], rows))]


class NanCorrelation(Evaluator):
    def metric(self, data: EvalData, out: EvalOutput) -> None:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out.metrics["r"] = float(np.corrcoef(data.predictions, data.targets)[0, 1])


class Unexplained(Evaluator):
    def metric(self, data: EvalData, out: EvalOutput) -> None:
        out.metrics["r"] = None


class NestedNan(Evaluator):
    def metric(self, data: EvalData, out: EvalOutput) -> None:
        out.metrics["per_group"] = [{"group": "a", "mae": math.nan}]


class Crashes(Evaluator):
    def metric(self, data: EvalData, out: EvalOutput) -> None:
        from scipy import stats

        out.put("r", lambda: float(stats.pearsonr(data.predictions, data.targets)[0]))


class NumpyCount(Evaluator):
    def metric(self, data: EvalData, out: EvalOutput) -> None:
        out.metrics["count"] = np.int64(len(data.targets))


class ReportsRows(Evaluator):
    def metric(self, data: EvalData, out: EvalOutput) -> None:
        out.metrics["rows"] = len(data.targets)


class StrayReason(Evaluator):
    def metric(self, data: EvalData, out: EvalOutput) -> None:
        out.metrics["r"] = 0.5
        out.undefined["r"] = "no reason"


class LeaksScript(Evaluator):
    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        items = "".join(f"<li>{s.image}</li>" for s in data.samples)
        return [Section("Rows", Html(f"<ul>{items}</ul>"))]


class LeaksAttribute(Evaluator):
    def report(self, data: EvalData, out: EvalOutput) -> list[Section]:
        return [Section("Rows", Html(f'<p title="{data.samples[0].source}">rows</p>'))]


class NotSections(Evaluator):
    def report(self, data: EvalData, out: EvalOutput) -> Any:
        return "<p>rows</p>"


@pytest.mark.parametrize(
    ("evaluator", "message"),
    [
        (NanCorrelation, "on a single row, metric 'r' holds nan"),
        (Unexplained, "metric 'r' is None without a reason"),
        (NestedNan, "metric 'per_group' holds nan"),
        (Crashes, r"evaluate\(\) on a single row raised ValueError"),
        (NumpyCount, "the metrics are not JSON"),
        (ReportsRows, "'rows', which run_evaluators reports itself"),
        (StrayReason, "explains 'r', which is not a None metric"),
        (LeaksScript, r"a section puts '<script>alert\(\"qp-kit\"\)' .* unescaped"),
        (LeaksAttribute, "a section puts '<img src=x onerror=' from the data"),
        (NotSections, "not a list of qpcore.report.Section"),
    ],
)
def test_evaluator_kit_catches_broken_evaluators(evaluator: type, message: str) -> None:
    broken = EvaluatorSpec("broken", lambda _p: evaluator())
    with pytest.raises(AssertionError, match=rf"evaluator 'broken': .*{message}"):
        assert_evaluator_conforms(broken)


def test_evaluator_kit_passes_the_correct_one() -> None:
    assert_evaluator_conforms(EvaluatorSpec("correct", lambda _p: Evaluator()))


# --- backbones ------------------------------------------------------------------

#: Small inputs for each built-in, so the whole kit runs in seconds; the CNNs
#: get random weights (nothing to download).
SMALL_BACKBONES: dict[str, dict[str, Any]] = {
    "image_stats": {"size": 16},
    "vectorizer": {"size": 16},
    "vtracer_preview": {"size": 16},
    "vectorizer_response": {"size": 16},
    "small_cnn": {"input_size": 16, "width": 4, "blocks": 2},
}
CNN = {"weights": "none", "input_size": 32}


@pytest.mark.parametrize("name", builtins("backbone"))
def test_every_builtin_backbone_conforms(name: str, tmp_path: Path) -> None:
    params = SMALL_BACKBONES.get(name, CNN)
    assert_backbone_conforms(spec("backbone", name), params, image_size=32, cache_dir=tmp_path)


def test_a_frozen_small_cnn_with_a_last_stage_conforms() -> None:
    assert_backbone_conforms(
        spec("backbone", "small_cnn"), {**SMALL_BACKBONES["small_cnn"], "freeze": True}
    )
    assert_backbone_conforms(
        spec("backbone", "resnet18"), {**CNN, "train_last_stage": True}, images=2
    )


class Means(Backbone):
    """Per-channel means; the broken variants change one thing each."""

    num_features = 3

    def preprocess(self, pixels: np.ndarray) -> Tensor:
        return torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))

    def describe(self) -> dict[str, Any]:
        return {"name": "means", "version": 1}


class Narrow(Means):
    num_features = 4


class Noisy(Means):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3)) + 1e-3 * torch.rand(len(x), 3)


class Clock(Means):
    def describe(self) -> dict[str, Any]:
        return {"name": "clock", "at": time.monotonic_ns()}


class ById(Means):
    def describe(self) -> dict[str, Any]:
        return {"name": "by_id", "object": id(self)}


class Weighted(Means):
    """Learned scales, but an identity that leaves the weights out."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3)) * self.scale

    def identity(self) -> str:
        return "weighted-v1"


class BatchCentred(Means):
    def forward(self, x: Tensor) -> Tensor:
        means = x.mean(dim=(2, 3))
        return means - means.mean(0)


class NotFinite(Means):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3)) / 0.0 * 0.0


class Inplace(Means):
    def preprocess(self, pixels: np.ndarray) -> Tensor:
        pixels[0, 0] = 0
        return super().preprocess(pixels)


class Wide(Means):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=3)  # [B, 3, H]: not flattened to num_features


class Unnamed(Means):
    feature_names = ("r", "g")


@pytest.mark.parametrize(
    ("factory", "num_features", "message"),
    [
        (Narrow, None, r"forward\(\) returned shape \[3, 3\] for 3 images, not \[3, 4\]"),
        (Means, 4, "the record says num_features=4, the module has 3"),
        (Noisy, None, "not deterministic in eval mode"),
        (Clock, None, r"identity\(\) changed when asked again"),
        (ById, None, "same torch seed have different identities"),
        (Weighted, None, r"left identity\(\) as it was"),
        (BatchCentred, None, "an image alone gets other features than within a batch"),
        (NotFinite, None, "non-finite features"),
        (Inplace, None, r"preprocess\(\) modified the pixels"),
        (Wide, None, r"forward\(\) returned shape \[3, 3, 32\]"),
        (Unnamed, None, "2 feature_names for 3 features"),
        (lambda: nn.Linear(3, 3), None, "not a qpcore.backbone.Backbone"),
    ],
)
def test_backbone_kit_catches_broken_backbones(
    factory: Callable[[], Any], num_features: int | None, message: str
) -> None:
    broken = BackboneSpec("broken", lambda _p: factory(), num_features=num_features)
    with pytest.raises(AssertionError, match=rf"backbone 'broken': .*{message}"):
        assert_backbone_conforms(broken, image_size=32)


def test_backbone_kit_passes_the_correct_ones() -> None:
    assert_backbone_conforms(BackboneSpec("means", lambda _p: Means(), num_features=3))
    computed = ComputedFeatures("sums", lambda px: px.sum(axis=(0, 1)), ("r", "g", "b"), {})
    assert_backbone_conforms(BackboneSpec("sums", lambda _p: computed))


# --- datasets -------------------------------------------------------------------


def _images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = Image.new("RGB", (32, 32), "white")
        image.paste((30 * i % 256, 90, 200), (4, 4, 20 + i, 24))
        path = folder / f"logo-{i}.png"
        image.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A minimal manifest (image, ssim, group) of 8 real images."""
    paths = _images(tmp_path / "images", 8)
    lines = ["image,ssim,group"]
    lines += [f"images/{p.name},{0.55 + 0.05 * i:.6f},g{i // 2}" for i, p in enumerate(paths)]
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path / "manifest.csv"


def dataset_params(name: str, manifest: Path, tmp_path: Path) -> dict[str, Any]:
    labelling = {"workers": 1, "cache_dir": str(tmp_path / "labels")}
    return {
        "manifest": {"path": str(manifest)},
        "synthetic": {"count": 6, "size": 32, **labelling},
        "folder": {"path": str(manifest.parent / "images"), **labelling},
    }[name]


@pytest.mark.parametrize("name", builtins("dataset"))
def test_every_builtin_dataset_conforms(name: str, manifest: Path, tmp_path: Path) -> None:
    params = dataset_params(name, manifest, tmp_path)
    assert_dataset_conforms(spec("dataset", name), params, cache_dir=tmp_path / "cache")


class Rows(DatasetParams):
    folder: str


def _rows(folder: Path, count: int = 6) -> list[Sample]:
    return [
        Sample(path, 0.5 + 0.05 * i, VtracerParams(), f"g{i}")
        for i, path in enumerate(_images(folder, count))
    ]


def _labelled(samples: list[Sample], protocol: str | None = PROTOCOL) -> LabelledData:
    return LabelledData(samples, protocol, Path("kit.csv"))


def _replace(sample: Sample, **changes: Any) -> Sample:
    from dataclasses import replace

    return replace(sample, **changes)


def _shuffled(folder: Path) -> LabelledData:
    samples = _rows(folder)
    order = np.random.default_rng().permutation(len(samples))
    return _labelled([samples[i] for i in order])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda rows: _labelled([_replace(rows[0], ssim=1.5), *rows[1:]]), r"row 0: ssim 1\.5"),
        (lambda rows: _labelled([_replace(rows[0], ssim=math.nan)]), "ssim nan"),
        (
            lambda rows: _labelled([_replace(rows[0], image=rows[0].image.with_name("gone.png"))]),
            r"gone\.png does not exist",
        ),
        (
            lambda rows: _labelled([_replace(rows[0], image=Path(rows[0].image.name))]),
            "is not an absolute Path",
        ),
        (lambda rows: _labelled([*rows, rows[0]]), "rows 0 and 6 label the same image"),
        (lambda rows: _labelled([_replace(rows[0], group="")]), "group '' is not a non-empty"),
        (lambda rows: _labelled(rows, "other-protocol/v9"), "protocol is 'other-protocol/v9'"),
        (lambda rows: _labelled([]), "holds no rows"),
        (lambda rows: rows, "returned list, not qpcore.data.dataset.LabelledData"),
        (
            lambda rows: _labelled([_replace(rows[0], svg_bytes=-3)]),
            "svg_bytes -3 is neither None nor an int",
        ),
    ],
)
def test_dataset_kit_catches_broken_datasets(
    make: Callable[[list[Sample]], Any], message: str, tmp_path: Path
) -> None:
    broken = DatasetSpec("broken", lambda p: make(_rows(Path(p.folder))), Rows)
    with pytest.raises(AssertionError, match=rf"dataset 'broken': .*{message}"):
        assert_dataset_conforms(broken, {"folder": str(tmp_path / "rows")})


def test_dataset_kit_catches_rows_that_change_between_loads(tmp_path: Path) -> None:
    broken = DatasetSpec("broken", lambda p: _shuffled(Path(p.folder)), Rows)
    with pytest.raises(AssertionError, match="loading it again gave other rows"):
        assert_dataset_conforms(broken, {"folder": str(tmp_path / "rows")})


def test_dataset_kit_catches_an_unreadable_image(tmp_path: Path) -> None:
    def load(p: Rows) -> LabelledData:
        rows = _rows(Path(p.folder))
        rows[0].image.write_bytes(b"not an image")
        return _labelled(rows)

    broken = DatasetSpec("broken", load, Rows)
    with pytest.raises(AssertionError, match=r"decoding .*logo-0\.png raised UnreadableImage"):
        assert_dataset_conforms(broken, {"folder": str(tmp_path / "rows")})


def test_dataset_kit_catches_a_split_that_divides_a_group(tmp_path: Path) -> None:
    class Halved(LabelledData):
        def split(self, params: DatasetParams) -> dict[str, list[Sample]]:
            return {"train": self.samples[::2], "val": self.samples[1::2], "test": []}

    def load(p: Rows) -> LabelledData:
        rows = [_replace(s, group="one") for s in _rows(Path(p.folder))]
        return Halved(rows, PROTOCOL, Path("kit.csv"))

    broken = DatasetSpec("broken", load, Rows)
    with pytest.raises(AssertionError, match="puts group 'one' in both train and val"):
        assert_dataset_conforms(broken, {"folder": str(tmp_path / "rows")})


def test_dataset_kit_passes_a_correct_dataset(tmp_path: Path) -> None:
    correct = DatasetSpec("rows", lambda p: _labelled(_rows(Path(p.folder))), Rows)
    assert_dataset_conforms(correct, {"folder": str(tmp_path / "rows")})


# --- executors ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One private Ray for all Ray checks: the executor joins it instead of
    starting (about 8 s) and stopping its own for each of the kit's runs."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_local_executor_conforms(workers: int) -> None:
    assert_executor_conforms(spec("executor", "local"), {"workers": workers})


def test_the_ray_executor_conforms(ray_cluster: None) -> None:
    assert_executor_conforms(spec("executor", "ray"), {"workers": 2})


class Wrapped(LocalPool):
    """The local executor with its results passed through ``change``."""

    def __init__(self, change: Callable[[Iterator[Any]], Iterator[Any]]) -> None:
        super().__init__(2)
        self.change = change

    def run(self, todo: Sequence[Any], call: Any, failed: Any, limit: Any) -> Iterator[Any]:
        return self.change(super().run(todo, call, failed, limit))


def _reversed(results: Iterator[Any]) -> Iterator[Any]:
    yield from reversed(list(results))


def _drop_last(results: Iterator[Any]) -> Iterator[Any]:
    yield from list(results)[:-1]


def _twice_first(results: Iterator[Any]) -> Iterator[Any]:
    kept = list(results)
    yield from [kept[0], *kept]


def _swallow_disk_full(results: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from results
    except DiskFull:
        return


def _wrap_disk_full(results: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from results
    except DiskFull as exc:
        raise RuntimeError(f"job failed: {exc}") from None


def _as_list(results: Iterator[Any]) -> Any:
    return list(results)


def _leave_thread(results: Iterator[Any]) -> Iterator[Any]:
    threading.Thread(target=time.sleep, args=(60,), name="kit-leftover", daemon=True).start()
    yield from results


class Serial:
    """Runs every job in the caller, one after the other, and ignores the time limit."""

    name = "serial"

    def run(self, todo: Sequence[Any], call: Any, failed: Any, limit: Any) -> Iterator[Any]:
        return (call(job) for job in todo)


class Nameless(Serial):
    name = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: Wrapped(_drop_last), "12 jobs gave 11 results"),
        (lambda: Wrapped(_twice_first), "12 jobs gave 13 results"),
        (lambda: Wrapped(_swallow_disk_full), "DiskFull raised by a job never reached the caller"),
        (lambda: Wrapped(_wrap_disk_full), "reached the caller as RuntimeError"),
        (lambda: Wrapped(_as_list), r"run\(\) returned list, not an iterator"),
        (lambda: Wrapped(_leave_thread), r"threads \['kit-leftover'\] are still running"),
        (Serial, r"a job past its time limit: job 0 gave \('slept', 0\)"),
        (Nameless, "lacks the protocol's name"),
    ],
)
def test_executor_kit_catches_broken_executors(factory: Callable[[], Any], message: str) -> None:
    broken = ExecutorSpec("broken", lambda _p: factory(), ExecutorParams)
    with pytest.raises(AssertionError, match=rf"executor 'broken': .*{message}"):
        assert_executor_conforms(broken, limit_s=0.1)


def test_executor_kit_takes_results_in_any_order() -> None:
    """Results come as jobs finish; callers place them by their job's index."""
    assert_executor_conforms(
        ExecutorSpec("reversed", lambda _p: Wrapped(_reversed), ExecutorParams)
    )


class FailsAll(LocalPool):
    """Reports every job of a run holding a job that ``action`` as crashed, at once."""

    def __init__(self, action: str) -> None:
        super().__init__(2)
        self.action = action

    def run(self, todo: Sequence[Any], call: Any, failed: Any, limit: Any) -> Iterator[Any]:
        from qpcore.data.pool import CRASHED

        if any(getattr(job, "action", "") == self.action for job in todo):
            return iter([failed(job, CRASHED) for job in todo])
        return super().run(todo, call, failed, limit)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("crash_once", "a job whose worker died once gave"),  # no retry
        ("crash_always", "a job whose worker always dies: job 1 gave"),  # blames a bystander
    ],
)
def test_executor_kit_catches_a_crash_handled_wrongly(
    action: str, message: str, tmp_path: Path
) -> None:
    broken = ExecutorSpec("broken", lambda _p: FailsAll(action), ExecutorParams)
    with pytest.raises(AssertionError, match=message):
        assert_executor_conforms(broken, limit_s=0.2, workdir=tmp_path)
