"""What the default monitors cost per epoch (issue 6 target: under 3 %).

Two runs are timed, each with no monitor and with the packaged run's monitors,
alternating (A B A B ...) so drift in machine load hits both:

* the packaged default run (vectorizer + image_stats features, cached; the
  head trains on 1700 rows), 15 epochs;
* a frozen ``resnet50`` run (random weights: the same cost as ImageNet's, which
  cannot be downloaded here) on 300 synthetic images, features cached, 15 epochs.

Two numbers per run:

* the share of epoch time spent inside the monitors' per-epoch hooks
  (epoch start, batch end, epoch end) and the ``system`` thread's samples,
  measured directly with pluggy's hook-call monitoring: precise, and the
  figure the target is about; the run's start and end hooks (final plots,
  summary, the thread-count probe) are paid once and given in seconds;
* the median epoch wall time with over without monitors (from one
  ``qp_on_epoch_start`` to the next, so epoch-end hooks count), per pair of
  runs: the end-to-end check, as noisy as the machine (identical runs differ
  by up to 10 % here).

Run: ``.venv/bin/python benchmarks/bench_monitors.py [--repeats 5] [--epochs 15]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import import_qpcore

import_qpcore()

from qpcore import hookimpl  # noqa: E402
from qpcore.config_io import default_config_text  # noqa: E402
from qpcore.registry import default_registry  # noqa: E402
from qpcore.trainer import Trainer  # noqa: E402
from qpcore.validate import resolve_config  # noqa: E402


class EpochClock:
    """Wall time from one epoch start to the next."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    @hookimpl
    def qp_on_epoch_start(self, run: Any, epoch: int) -> None:
        self.starts.append(time.perf_counter())

    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]


#: Hooks that run every epoch; fit_start and fit_end are paid once per run.
PER_EPOCH = ("qp_on_epoch_start", "qp_on_batch_end", "qp_on_epoch_end", "sampling")


def timed(
    cfg: dict[str, Any], monitors: list[Any], out: Path
) -> tuple[list[float], dict[str, float]]:
    """Epoch wall times, and seconds spent inside monitor hooks (by hook) and sampling."""
    registry = default_registry()
    run = {**cfg, "monitors": monitors, "evaluators": [], "output": {"dir": str(out)}}
    clock = EpochClock()
    trainer = Trainer(resolve_config(run, registry), registry, out / "run", [clock], quiet=True)
    inside: dict[str, float] = dict.fromkeys([*PER_EPOCH, "qp_on_fit_start", "qp_on_fit_end"], 0.0)
    started: list[float] = []

    def before(name: str, impls: Any, kwargs: Any) -> None:
        started.append(time.perf_counter())

    def after(outcome: Any, name: str, impls: Any, kwargs: Any) -> None:
        inside[name] = inside.get(name, 0.0) + time.perf_counter() - started.pop()

    trainer.hooks.add_hookcall_monitoring(before, after)
    system = trainer.monitors.get("system")
    if system is not None:  # time the background samples too
        sample = system.sample

        def timed_sample(process: Any) -> Any:
            start = time.perf_counter()
            try:
                return sample(process)
            finally:
                inside["sampling"] += time.perf_counter() - start

        system.sample = timed_sample
    trainer.fit()
    return clock.epochs(), inside


def compare(name: str, cfg: dict[str, Any], monitors: list[Any], repeats: int) -> float:
    ratios: list[float] = []
    shares: list[float] = []
    ends: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        timed(cfg, [], Path(tmp) / "warm")  # features into the cache, imports warm
        for i in range(repeats):
            # Which run of a pair goes first alternates: drift within a pair cancels.
            if i % 2:
                epochs, inside = timed(cfg, monitors, Path(tmp) / f"full{i}")
            bare = statistics.median(timed(cfg, [], Path(tmp) / f"bare{i}")[0])
            if not i % 2:
                epochs, inside = timed(cfg, monitors, Path(tmp) / f"full{i}")
            ratios.append(statistics.median(epochs) / bare)
            shares.append(sum(inside[k] for k in PER_EPOCH) / sum(epochs))
            ends.append(inside["qp_on_fit_start"] + inside["qp_on_fit_end"])
    share = statistics.median(shares)
    names = [m if isinstance(m, str) else m["name"] for m in monitors]
    change = statistics.median(ratios) - 1
    print(
        f"{name} (monitors: {names}):\n"
        f"  inside per-epoch monitor hooks and sampling: {share:.2%} of epoch time "
        f"(runs: {', '.join(f'{s:.2%}' for s in shares)}); once per run: "
        f"{statistics.median(ends):.2f} s\n"
        f"  median epoch with / without monitors, paired runs: {change:+.1%} "
        f"(pairs: {', '.join(f'{r - 1:+.1%}' for r in ratios)})"
    )
    return share


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    args, _ = parser.parse_known_args()
    packaged = yaml.safe_load(default_config_text())
    monitors = packaged["monitors"]
    fixed = {"epochs": args.epochs, "early_stopping": {"enabled": False}}
    default = {**packaged, "trainer": {**packaged["trainer"], **fixed}}
    resnet = {
        "data": {"name": "synthetic", "count": 300},
        "model": {"backbone": {"name": "resnet50", "weights": "none"}},
        "trainer": {"batch_size": 32, **fixed},
    }
    worst = max(
        compare("default run", default, monitors, args.repeats),
        compare("frozen resnet50", resnet, monitors, args.repeats),
    )
    return 0 if worst < 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
