"""``timing``: where a training batch's time goes, and what to change."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from qpcore import Params, hookimpl

#: Batch phases the trainer times, in order.
PHASES = ("data_s", "forward_s", "backward_s", "step_s")
#: Share of batch time spent waiting for data above which loading is the bottleneck.
DATA_BOUND = 0.3


class RunningStats:
    """Count, mean, standard deviation, min and max in constant memory (Welford)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)
        self.low, self.high = min(self.low, value), max(self.high, value)

    def summary(self) -> dict[str, float | int | None]:
        if not self.n:
            return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
        std = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0
        return {"count": self.n, "mean": self.mean, "std": std, "min": self.low, "max": self.high}

    def state(self) -> list[float | None]:
        """Plain JSON: an empty record's infinite bounds are stored as ``None``."""
        bounds = [self.low, self.high] if self.n else [None, None]
        return [self.n, self.mean, self.m2, *bounds]

    @classmethod
    def of(cls, state: list[float | None]) -> RunningStats:
        stats = cls()
        stats.n, stats.mean, stats.m2 = int(state[0]), float(state[1]), float(state[2])
        stats.low = math.inf if state[3] is None else float(state[3])
        stats.high = -math.inf if state[4] is None else float(state[4])
        return stats


class TimingParams(Params):
    probe_threads: bool = Field(
        True, description="At the end, time one training batch at each thread count."
    )
    probe_repeats: int = Field(3, ge=1, le=100, description="Timed repeats per thread count.")


class Timing:
    """Per-batch seconds of each phase (data loading, forward with loss,
    backward, optimizer step) and training throughput; at the end,
    ``RUN/timing.json`` with their statistics, the bottleneck, and a thread
    count found by timing one real batch at each candidate count."""

    def __init__(self, params: TimingParams) -> None:
        self.params = params
        self.phases = {name: RunningStats() for name in (*PHASES, "batch_s")}
        self.throughput = RunningStats()
        self._rows = 0
        self._seconds = 0.0
        self.threads: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "phases": {k: v.state() for k, v in self.phases.items()},
            "throughput": self.throughput.state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, saved in state["phases"].items():
            self.phases[name] = RunningStats.of(saved)
        self.throughput = RunningStats.of(state["throughput"])

    @hookimpl
    def qp_on_epoch_start(self, run: Any, epoch: int) -> None:
        self._rows, self._seconds = 0, 0.0

    @hookimpl
    def qp_on_batch_end(
        self, run: Any, epoch: int, batch: int, metrics: Mapping[str, float]
    ) -> None:
        total = 0.0
        for name in PHASES:
            value = metrics.get(name)
            if value is not None:
                self.phases[name].add(value)
                total += value
        self.phases["batch_s"].add(total)
        self._rows += int(metrics.get("rows", 0))
        self._seconds += total

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        if self._seconds > 0:
            self.throughput.add(self._rows / self._seconds)

    def bottleneck(self, run: Any) -> str:
        """Which part of a batch dominates, and what to change about it."""
        data = self.phases["data_s"].summary()["mean"] or 0.0
        batch = self.phases["batch_s"].summary()["mean"] or 0.0
        if batch <= 0:
            return "no training batch was timed"
        share = data / batch
        if share > DATA_BOUND:
            workers = run.cfg.trainer.num_workers
            return (
                f"data loading: {share:.0%} of each batch is spent waiting for images; "
                f"raise trainer.num_workers (now {workers}), or freeze the backbones and "
                "drop augmentation so the feature cache serves features"
            )
        parts = {name: self.phases[name].summary()["mean"] or 0.0 for name in PHASES[1:]}
        top = max(parts, key=parts.get)  # type: ignore[arg-type]
        return (
            f"compute: {1 - share:.0%} of each batch is model work "
            f"(largest: {top.removesuffix('_s')}, {parts[top] / batch:.0%})"
        )

    def probe_threads(self, run: Any) -> dict[str, Any] | None:
        """Seconds of one real training batch (forward, loss, backward; weights
        untouched) at 1, 2, 4 ... up to the CPU count, and the fastest count
        (the fewest threads within 5 % of the best)."""
        # Not at module level: registering the monitors must not import torch.
        import torch

        from qpcore.loss_output import split_loss_output

        if run.device.type != "cpu" or not len(run.splits["train"]):
            return None
        inputs, params, target = run.sample_batch(run.cfg.trainer.batch_size)
        counts = sorted({1, *(2**k for k in range(1, 8) if 2**k <= (os.cpu_count() or 1))})
        before = torch.get_num_threads()
        seconds: dict[int, float] = {}
        # Dropout as in training, but BatchNorm frozen: the probe must not
        # move the running statistics of the weights the run keeps.
        run.model.train()
        for module in run.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        try:
            for count in counts:
                torch.set_num_threads(count)
                best = math.inf
                for _ in range(self.params.probe_repeats + 1):  # the first warms up
                    start = time.perf_counter()
                    pred = run.forward(inputs, params)
                    total, _ = split_loss_output(run.loss(pred, target))
                    total.backward()
                    best = min(best, time.perf_counter() - start)
                seconds[count] = best
        finally:
            run.optimizer.zero_grad(set_to_none=True)
            torch.set_num_threads(before)
            run.model.eval()
        fastest = min(seconds.values())
        chosen = min(c for c, s in seconds.items() if s <= fastest * 1.05)
        return {
            "seconds_per_batch": {str(c): s for c, s in seconds.items()},
            "recommended": chosen,
            "current": before,
        }

    def summary(self, run: Any) -> dict[str, Any]:
        return {
            "per_batch": {name: stats.summary() for name, stats in self.phases.items()},
            "images_per_s": self.throughput.summary(),
            "bottleneck": self.bottleneck(run),
            "threads": self.threads,
        }

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Mapping[str, Any]) -> None:
        if self.params.probe_threads:
            self.threads = self.probe_threads(run)
        path = run.run_dir / "timing.json"
        path.write_text(json.dumps(self.summary(run), indent=2) + "\n", encoding="utf-8")
