"""``system``: CPU, memory and threads sampled by a background thread."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import psutil
from pydantic import Field

from qpcore import Params, hookimpl
from qpcore.monitoring import ClosedWithRun, warn

#: What each sample holds, in order.
FIELDS = ("cpu_process", "cpu_system", "rss_mb", "memory_percent", "threads")


class SystemParams(Params):
    interval_s: float = Field(2.0, ge=0.05, le=3600, description="Seconds between samples.")
    cpu_warn: float = Field(90.0, gt=0, le=100, description="System CPU % that warns.")
    memory_warn: float = Field(85.0, gt=0, le=100, description="System memory % that warns.")
    warn_every_s: float = Field(
        300.0, ge=0, description="Least seconds between two warnings of one kind."
    )
    keep: int = Field(2000, ge=10, le=1_000_000, description="Samples kept for plots.")


class System(ClosedWithRun):
    """Samples this process's CPU % (100 = one core), its resident memory and
    thread count, and the system's CPU and memory %, every ``interval_s``
    seconds. The thread starts with the run and is stopped and joined when the
    run ends, however it ends. Only the last ``keep`` samples are held; running
    totals (kept in checkpoints) cover the whole run."""

    def __init__(self, params: SystemParams) -> None:
        self.params = params
        self.samples: deque[tuple[float, ...]] = deque(maxlen=params.keep)
        self.totals = {name: [0.0, 0.0, 0] for name in FIELDS}  # sum, max, count
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_warning: dict[str, float] = {}

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"totals": {k: list(v) for k, v in self.totals.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            for name, (total, peak, count) in state["totals"].items():
                if name in self.totals:
                    self.totals[name] = [float(total), float(peak), int(count)]

    def snapshot(self) -> list[tuple[float, ...]]:
        """The held samples, ``(unix time, *FIELDS)`` each, safe to read while sampling."""
        with self._lock:
            return list(self.samples)

    def summary(self) -> dict[str, dict[str, float | None]]:
        """Mean and maximum of each field over the run (resumed runs included)."""
        with self._lock:
            return {
                name: {
                    "mean": total / count if count else None,
                    "max": peak if count else None,
                }
                for name, (total, peak, count) in self.totals.items()
            }

    def sample(self, process: psutil.Process) -> tuple[float, ...]:
        with process.oneshot():
            values = (
                process.cpu_percent(None),
                psutil.cpu_percent(None),
                process.memory_info().rss / 2**20,
                psutil.virtual_memory().percent,
                float(process.num_threads()),
            )
        with self._lock:
            self.samples.append((time.time(), *values))
            for name, value in zip(FIELDS, values, strict=True):
                entry = self.totals[name]
                entry[0] += value
                entry[1] = max(entry[1], value)
                entry[2] += 1
        self._check(values)
        return values

    def _check(self, values: tuple[float, ...]) -> None:
        cpu, memory = values[1], values[3]
        for kind, value, limit in (
            ("CPU", cpu, self.params.cpu_warn),
            ("memory", memory, self.params.memory_warn),
        ):
            now = time.monotonic()
            last = self._last_warning.get(kind)
            if value > limit and (last is None or now - last >= self.params.warn_every_s):
                self._last_warning[kind] = now
                warn(f"system {kind} at {value:.0f} % (threshold {limit:g} %)")

    def _loop(self) -> None:
        process = psutil.Process()
        process.cpu_percent(None)  # the first reading of a counter is meaningless
        psutil.cpu_percent(None)
        while not self._stop.wait(self.params.interval_s):
            try:
                self.sample(process)
            except psutil.Error:  # a sample can fail (containers); the next may not
                continue

    def start(self) -> None:
        self.close()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="qp-system-monitor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=max(5.0, 2 * self.params.interval_s))
            self._thread = None

    @hookimpl
    def qp_on_fit_start(self, run: Any) -> None:
        self.start()
