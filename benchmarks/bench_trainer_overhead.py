"""What the trainer adds to an epoch over a bare PyTorch loop (goal: <= 1.10x).

Both sides train the packaged default run's head on the same cached features,
in one process, alternating runs (A B A B ...) so drift in machine load hits
both; each run is ``--epochs`` epochs, early stopping off:

* **trainer**: :class:`qpcore.trainer.Trainer` with the packaged run's
  monitors (evaluators left out: they run once, after the last epoch). An
  epoch is timed around ``Trainer._epoch``: from before ``qp_on_epoch_start``
  to after ``_after_epoch`` and the per-epoch ``gc.collect()``, so the
  checkpoint writes (``last.pt`` every epoch, ``best.pt`` when val improves, a
  periodic one every ``checkpoint.every``), the epoch metrics, the
  ``metrics.jsonl`` line and every monitor hook count as trainer time;
* **bare**: the least an epoch of this run must do, written by hand: for each of
  the trainer's own batches (``Trainer._batches``), features, params and labels
  indexed, forward (``model.predict_features``), the config's loss, backward,
  the config's gradient clipping, ``optimizer.step()``, ``zero_grad``; then a
  forward pass over the val rows under ``no_grad`` summing the val loss. It
  keeps nothing else: no train loss or metrics, no scheduler, no checkpoint.
  The model is a copy of the trainer's (same architecture and initial weights,
  feature statistics included), the loss and optimizer are built from the
  config by :mod:`qpcore.build`, and the global RNG starts where the trainer's
  does, so dropout draws the same masks: the first epoch's val loss of the two
  must agree, which the script checks.

It prints the median epoch of each, their ratio (median over the pairs of runs
and overall), and where the trainer's extra time goes, in ms per epoch: the
monitors' hooks (pluggy's hook-call monitoring, and each monitor's share by
timing its hook implementations), the train and val passes against the bare
ones, ``_save`` per checkpoint (``_serving_state``, the half-precision check of
``best.pt``, apart), the copy of the best weights, ``files.append_metrics``,
``gc.collect()``, and the rest; the ``system`` monitor's background samples are
timed too. Once-per-run costs (``qp_on_fit_start``/``end``, ``_finish``) are
left out of the epoch and given in seconds.

``--configs resnet50`` adds a frozen ``resnet50`` run (random weights: the same
cost as ImageNet's, which cannot be downloaded here) on 300 synthetic images,
features cached (computed on first use, about a minute). ``--tiny`` is a smoke
size (40 synthetic images, 3 epochs, 2 pairs) for CI.

The default run's data set is generated and labelled on first use (a few
minutes) and cached after. Exit code 1 when a ratio is over ``--goal``.

Run: ``.venv/bin/python benchmarks/bench_trainer_overhead.py [--repeats 6] [--epochs 20]``
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import sys
import tempfile
import time
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from _common import import_qpcore

import_qpcore()

import qpcore.trainer as trainer_module  # noqa: E402
from qpcore.build import build_loss, build_optimizer  # noqa: E402
from qpcore.config_io import default_config_text  # noqa: E402
from qpcore.loss_output import split_loss_output  # noqa: E402
from qpcore.registry import default_registry  # noqa: E402
from qpcore.trainer import Trainer  # noqa: E402
from qpcore.validate import resolve_config  # noqa: E402

#: The largest difference in epoch 1's val loss between the two loops.
AGREE = 1e-6
#: Hooks called inside an epoch; fit_start and fit_end are paid once per run.
EPOCH_HOOKS = ("qp_on_epoch_start", "qp_on_batch_end", "qp_on_epoch_end")


class Clock:
    """Seconds of every call, by key, over a run."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)

    def add(self, key: str, seconds: float) -> None:
        self.calls[key].append(seconds)

    def wrap(self, function: Callable[..., Any], key: Callable[..., str] | str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                name = key if isinstance(key, str) else key(*args, **kwargs)
                self.add(name, time.perf_counter() - start)

        return timed


def _checkpoint_kind(name: str, *args: Any, **kwargs: Any) -> str:
    kind = name.removesuffix(".pt") if name in ("last.pt", "best.pt") else "periodic"
    return f"save {kind}"


@contextmanager
def timed_module_calls(clock: Clock) -> Iterator[None]:
    """``gc.collect`` and ``copy.deepcopy`` as the trainer module calls them,
    timed (the best-weights copy and the per-epoch collection)."""
    saved = trainer_module.gc, trainer_module.copy
    trainer_module.gc = types.SimpleNamespace(collect=clock.wrap(gc.collect, "gc.collect"))  # type: ignore[assignment]
    trainer_module.copy = types.SimpleNamespace(  # type: ignore[assignment]
        deepcopy=clock.wrap(copy.deepcopy, "copy best weights")
    )
    try:
        yield
    finally:
        trainer_module.gc, trainer_module.copy = saved


def instrument(trainer: Trainer, clock: Clock) -> None:
    """Time the trainer's per-epoch steps, its hooks and each monitor's share."""
    trainer._epoch = clock.wrap(trainer._epoch, "epoch")  # type: ignore[method-assign]
    trainer._run_split = clock.wrap(  # type: ignore[method-assign]
        trainer._run_split, lambda split, *a, **k: f"{split} pass"
    )
    trainer._after_epoch = clock.wrap(trainer._after_epoch, "after epoch")  # type: ignore[method-assign]
    trainer._save = clock.wrap(trainer._save, _checkpoint_kind)  # type: ignore[method-assign]
    trainer._serving_state = clock.wrap(trainer._serving_state, "serving state")  # type: ignore[method-assign]
    trainer.files.append_metrics = clock.wrap(  # type: ignore[method-assign]
        trainer.files.append_metrics, "append_metrics"
    )
    if trainer.scheduler is not None:
        trainer.scheduler.step_epoch = clock.wrap(  # type: ignore[method-assign]
            trainer.scheduler.step_epoch, "scheduler.step_epoch"
        )
    started: list[float] = []

    def before(name: str, impls: Any, kwargs: Any) -> None:
        started.append(time.perf_counter())

    def after(outcome: Any, name: str, impls: Any, kwargs: Any) -> None:
        clock.add(f"hook {name}", time.perf_counter() - started.pop())

    trainer.hooks.add_hookcall_monitoring(before, after)
    # Each monitor's share: its hook implementations, timed one by one.
    names = {id(m): n for n, m in trainer.monitors.items()}
    for hook in EPOCH_HOOKS:
        for impl in getattr(trainer.hooks.hook, hook).get_hookimpls():
            monitor = names.get(id(impl.plugin))
            if monitor is not None:
                impl.function = clock.wrap(impl.function, f"monitor {monitor}.{hook}")
    system = trainer.monitors.get("system")
    if system is not None:  # the background samples, on their own thread
        system.sample = clock.wrap(system.sample, "system samples (thread)")  # type: ignore[attr-defined]


class EpochsOf:
    """Per-epoch wall times of one run, epoch 1 (lazy imports, first
    checkpoint) left out of the medians."""

    def __init__(self, times: list[float]) -> None:
        self.all = times
        self.steady = times[1:] if len(times) > 2 else times

    @property
    def median(self) -> float:
        return statistics.median(self.steady)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.steady)


def run_trainer(
    cfg: Any, registry: Any, out: Path, init: dict[str, torch.Tensor] | None = None
) -> tuple[EpochsOf, Clock, float, list[dict[str, Any]]]:
    """One instrumented fit: epoch times, the clock, seconds outside the epochs,
    the history; ``init``: the initial weights it must start from."""
    clock = Clock()
    trainer = Trainer(cfg, registry, out, quiet=True)
    if init is not None:
        state = trainer.model.state_dict()
        if state.keys() != init.keys() or not all(torch.equal(init[k], state[k]) for k in init):
            raise SystemExit("the trainer's initial weights differ from the bare loop's")
    instrument(trainer, clock)
    epochs: list[float] = []
    epoch = trainer._epoch

    def each(number: int) -> bool:
        start = time.perf_counter()
        try:
            return epoch(number)
        finally:
            epochs.append(time.perf_counter() - start)

    trainer._epoch = each  # type: ignore[method-assign]
    start = time.perf_counter()
    with timed_module_calls(clock):
        trainer.fit()
    fit = time.perf_counter() - start
    return EpochsOf(epochs), clock, fit - sum(epochs), trainer.state.history


class Bare:
    """The hand-written loop over a trainer's features, batches and config."""

    def __init__(self, reference: Trainer) -> None:
        self.cfg = reference.cfg
        self.model = copy.deepcopy(reference.model)  # untrained: initial weights
        self.rng = torch.get_rng_state()  # where the trainer's first epoch starts
        self.splits = reference.splits
        self.batches = [reference._batches(e) for e in range(1, self.cfg.trainer.epochs + 1)]
        self.val_batches = reference._batches(0, "val")
        self.device = reference.device
        for split in ("train", "val"):
            if reference.splits[split].features is None:
                raise SystemExit(f"{split}: no cached features; this benchmark needs them")

    def run(self) -> tuple[EpochsOf, dict[str, list[float]], list[float]]:
        model = copy.deepcopy(self.model)
        loss_fn = build_loss(self.cfg).to(self.device)
        optimizer = build_optimizer(self.cfg, model, loss_fn)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        clip = self.cfg.trainer.grad_clip
        train, val = self.splits["train"], self.splits["val"]
        features, labels, inputs = (
            train.features.to(self.device),
            train.labels.to(self.device),
            train.params.to(self.device),
        )
        v_features, v_labels, v_inputs = (
            val.features.to(self.device),
            val.labels.to(self.device),
            val.params.to(self.device),
        )
        set_epoch = getattr(loss_fn, "set_epoch", None)
        torch.set_rng_state(self.rng)
        times: list[float] = []
        parts: dict[str, list[float]] = {"train pass": [], "val pass": []}
        val_losses: list[float] = []
        for epoch, batches in enumerate(self.batches, start=1):
            t0 = time.perf_counter()
            if callable(set_epoch):
                set_epoch(epoch)
            model.train()
            loss_fn.train()
            optimizer.zero_grad(set_to_none=True)
            for index in batches:
                pred = model.predict_features(features[index], inputs[index])
                total, _ = split_loss_output(loss_fn(pred, labels[index]))
                total.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            t1 = time.perf_counter()
            model.eval()
            loss_fn.eval()
            loss_sum = torch.zeros((), dtype=torch.float64)
            with torch.no_grad():
                for index in self.val_batches:
                    pred = model.predict_features(v_features[index], v_inputs[index])
                    total, _ = split_loss_output(loss_fn(pred, v_labels[index]))
                    loss_sum += total.double() * len(index)
            val_losses.append(float(loss_sum) / max(len(val), 1))
            t2 = time.perf_counter()
            times.append(t2 - t0)
            parts["train pass"].append(t1 - t0)
            parts["val pass"].append(t2 - t1)
        return EpochsOf(times), parts, val_losses


def packaged_default(epochs: int) -> dict[str, Any]:
    packaged = yaml.safe_load(default_config_text())
    fixed = {"epochs": epochs, "early_stopping": {"enabled": False}}
    return {**packaged, "trainer": {**packaged["trainer"], **fixed}, "evaluators": []}


def configs(names: list[str], epochs: int, tiny: bool) -> dict[str, dict[str, Any]]:
    default = packaged_default(epochs)
    found: dict[str, dict[str, Any]] = {}
    if "default" in names:
        if tiny:
            default = {**default, "data": {**default["data"], "count": 40}}
        found["default run"] = default
    if "resnet50" in names:
        found["frozen resnet50"] = {
            **default,
            "data": {"name": "synthetic", "count": 40 if tiny else 300},
            "model": {"backbone": {"name": "resnet50", "weights": "none"}},
        }
    return found


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def compare(name: str, run: dict[str, Any], repeats: int, tmp: Path) -> float:
    registry = default_registry()
    cfg = resolve_config({**run, "output": {"dir": str(tmp)}}, registry)
    # The first trainer builds (or finds) the data set and the cached features
    # and warms the imports; the bare loop copies its untrained model.
    reference = Trainer(cfg, registry, tmp / f"{name}-reference", quiet=True)
    bare = Bare(reference)
    init = {k: v.clone() for k, v in reference.model.state_dict().items()}
    run_trainer(cfg, registry, tmp / f"{name}-warm")
    bare.run()

    trainer_runs: list[tuple[EpochsOf, Clock, float]] = []
    bare_runs: list[tuple[EpochsOf, dict[str, list[float]]]] = []
    agree: list[float] = []
    for i in range(repeats):
        # Which side of a pair goes first alternates: drift within a pair cancels.
        for side in ("trainer", "bare") if i % 2 == 0 else ("bare", "trainer"):
            if side == "bare":
                epochs, parts, val_losses = bare.run()
                bare_runs.append((epochs, parts))
            else:
                epochs, clock, once, history = run_trainer(cfg, registry, tmp / f"{name}-{i}", init)
                trainer_runs.append((epochs, clock, once))
        agree.append(abs(history[0]["val_loss"] - val_losses[0]))

    t_median = statistics.median(x for e, _, _ in trainer_runs for x in e.steady)
    b_median = statistics.median(x for e, _ in bare_runs for x in e.steady)
    pairs = [t[0].median / b[0].median for t, b in zip(trainer_runs, bare_runs, strict=True)]
    ratio = statistics.median(pairs)
    t_mean = statistics.median(e.mean for e, _, _ in trainer_runs)
    b_mean = statistics.median(e.mean for e, _ in bare_runs)
    rows = len(reference.splits["train"])
    batches = len(bare.batches[0])
    print(
        f"\n{name}: {rows} train rows, {batches} batches of "
        f"{cfg.trainer.batch_size}, {len(reference.splits['val'])} val rows, "
        f"{len(trainer_runs[0][0].all)} epochs x {repeats} pairs of runs "
        f"(epoch 1 left out of the medians)\n"
        f"  trainer epoch, median: {ms(t_median)}   (mean per run, median: {ms(t_mean)})\n"
        f"  bare epoch, median:    {ms(b_median)}   (mean per run, median: {ms(b_mean)})\n"
        f"  ratio: {ratio:.3f}x median of pairs ({', '.join(f'{p:.2f}' for p in pairs)}); "
        f"{t_median / b_median:.3f}x of the overall medians; {t_mean / b_mean:.3f}x of the means\n"
        f"  epoch-1 val loss, trainer - bare: max |diff| {max(agree):.2e} "
        f"(same weights, batches, dropout masks)"
    )
    breakdown(trainer_runs, bare_runs)
    if max(agree) > AGREE:
        raise SystemExit(
            f"the bare loop is not the trainer's: val losses differ by {max(agree):.2e}"
        )
    return ratio


def breakdown(
    trainer_runs: list[tuple[EpochsOf, Clock, float]],
    bare_runs: list[tuple[EpochsOf, dict[str, list[float]]]],
) -> None:
    """ms per epoch of each timed part: the median call (pooled over the runs,
    so a burst of load elsewhere moves it little) times the calls per epoch."""
    epochs = sum(len(c.calls["epoch"]) for _, c, _ in trainer_runs)

    def pooled(key: str) -> list[float]:
        return [x for _, c, _ in trainer_runs for x in c.calls.get(key, [])]

    def per_epoch(key: str) -> float:
        found = pooled(key)
        return statistics.median(found) * len(found) / epochs if found else 0.0

    def calls(key: str) -> str:
        return f"{len(pooled(key)) / epochs:.2f}/epoch"

    def bare_part(key: str) -> float:
        return statistics.median(x for _, p in bare_runs for x in p[key])

    epoch = per_epoch("epoch")
    bare_epoch = statistics.median(x for e, _ in bare_runs for x in e.all)
    train, val = per_epoch("train pass"), per_epoch("val pass")
    batch_hooks = per_epoch("hook qp_on_batch_end")
    after = per_epoch("after epoch")
    start_hooks = per_epoch("hook qp_on_epoch_start")
    gc_time = per_epoch("gc.collect")
    saves = sum(per_epoch(f"save {k}") for k in ("last", "best", "periodic"))
    end_hooks = per_epoch("hook qp_on_epoch_end")
    best_copy = per_epoch("copy best weights")
    append = per_epoch("append_metrics")
    sched = per_epoch("scheduler.step_epoch")
    inside = train + val + after + start_hooks + gc_time
    lines = [
        ("train pass, minus the bare train pass", train - bare_part("train pass"), ""),
        ("  of which qp_on_batch_end hooks", batch_hooks, calls("hook qp_on_batch_end")),
        (
            "  of which the loop's bookkeeping (loss/mae floats, .cpu(), metrics)",
            train - batch_hooks - bare_part("train pass"),
            "",
        ),
        ("val pass (+ metrics), minus the bare val pass", val - bare_part("val pass"), ""),
        ("qp_on_epoch_start hooks", start_hooks, ""),
        ("_after_epoch", after, ""),
        ("  save last.pt", per_epoch("save last"), calls("save last")),
        ("  save best.pt", per_epoch("save best"), calls("save best")),
        ("    of which _serving_state (half-precision check)", per_epoch("serving state"), ""),
        ("  save periodic epoch-*.pt", per_epoch("save periodic"), calls("save periodic")),
        ("  qp_on_epoch_end hooks", end_hooks, ""),
        ("  copy of the best weights (deepcopy)", best_copy, calls("copy best weights")),
        ("  files.append_metrics", append, ""),
        ("  scheduler.step_epoch", sched, ""),
        (
            "  rest of _after_epoch",
            after - saves - end_hooks - best_copy - append - sched,
            "",
        ),
        ("gc.collect()", gc_time, ""),
        ("rest of _epoch (batches, metrics dict, timestamp)", epoch - inside, ""),
    ]
    print(
        f"  where the trainer's extra {ms(epoch - bare_epoch).strip()} per epoch goes "
        f"(median call x calls per epoch, all epochs; trainer {ms(epoch).strip()}, "
        f"bare {ms(bare_epoch).strip()}):"
    )
    for label, seconds, note in lines:
        share = seconds / bare_epoch
        print(f"    {label:<70}{ms(seconds)} {share:+7.1%} of bare  {note}")
    monitors = defaultdict(float)
    for key in trainer_runs[0][1].calls:
        if key.startswith("monitor "):
            monitors[key.removeprefix("monitor ").split(".")[0]] += per_epoch(key)
    if monitors:
        print("  per monitor, all epoch hooks:")
        for monitor, seconds in sorted(monitors.items(), key=lambda kv: -kv[1]):
            print(f"    {monitor:<70}{ms(seconds)} {seconds / bare_epoch:+7.1%} of bare")
    sampled = per_epoch("system samples (thread)")
    once = statistics.median(o for _, _, o in trainer_runs)
    print(
        f"  system monitor's samples (its own thread, overlapping): "
        f"{ms(sampled).strip()} per epoch\n"
        f"  once per run, outside the epochs (fit start/end hooks, _finish): {once:.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="Pairs of runs (trainer, bare).")
    parser.add_argument("--epochs", type=int, default=20, help="Epochs per run.")
    parser.add_argument(
        "--configs", nargs="+", default=["default"], choices=["default", "resnet50"]
    )
    parser.add_argument("--goal", type=float, default=1.10, help="Largest trainer/bare ratio.")
    parser.add_argument("--tiny", action="store_true", help="Smoke size: 40 images, 3 epochs.")
    args, _ = parser.parse_known_args()
    if args.tiny:
        args.repeats, args.epochs = 2, 3
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in configs(args.configs, args.epochs, args.tiny).items():
            worst = max(worst, compare(name, run, args.repeats, Path(tmp)))
    print(f"\nworst ratio {worst:.3f}x (goal <= {args.goal:.2f}x)")
    return 0 if worst <= args.goal or args.tiny else 1


if __name__ == "__main__":
    sys.exit(main())
