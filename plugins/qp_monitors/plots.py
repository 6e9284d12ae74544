"""``plots``: the run's curves as PNG files, refreshed while it trains."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from qp_monitors.timing import PHASES
from qpcore import Params, hookimpl


class PlotsParams(Params):
    every: int = Field(5, ge=1, description="Redraw every this many epochs (and at the end).")
    min_interval_s: float = Field(
        120.0, ge=0, description="Least seconds between two redraws before the end."
    )
    folder: str = Field("plots", description="Folder inside the run folder.")


class Plots:
    """``loss.png`` (train and val loss), ``lr.png``, ``batch_time.png`` (mean
    seconds per batch of each phase, per epoch), ``loss_components.png`` when
    the loss returns components (each term, its weight and its share of the
    total) and, when the ``system`` monitor runs too, ``system.png`` (process
    CPU % and resident memory); redrawn every ``every`` epochs but at most
    once per ``min_interval_s``."""

    def __init__(self, params: PlotsParams) -> None:
        self.params = params
        self._drawn = -math.inf
        self.batch_times: deque[tuple[int, list[float]]] = deque(maxlen=100_000)
        self._sums = [0.0] * len(PHASES)
        self._count = 0

    def state_dict(self) -> dict[str, Any]:
        return {"batch_times": [[e, t] for e, t in self.batch_times]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.batch_times.clear()
        self.batch_times.extend((int(e), [float(v) for v in t]) for e, t in state["batch_times"])

    @hookimpl
    def qp_on_fit_start(self, run: Any) -> None:
        self._drawn = time.monotonic()  # the first redraw, too, waits min_interval_s

    @hookimpl
    def qp_on_epoch_start(self, run: Any, epoch: int) -> None:
        self._sums, self._count = [0.0] * len(PHASES), 0

    @hookimpl
    def qp_on_batch_end(
        self, run: Any, epoch: int, batch: int, metrics: Mapping[str, float]
    ) -> None:
        for i, name in enumerate(PHASES):
            self._sums[i] += metrics.get(name, 0.0)
        self._count += 1

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        if self._count:
            self.batch_times.append((epoch, [s / self._count for s in self._sums]))
        # Drawing costs about a second; short epochs must not pay it often.
        due = time.monotonic() - self._drawn >= self.params.min_interval_s
        if epoch % self.params.every == 0 and due:
            self.draw(run)

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Mapping[str, Any]) -> None:
        self.draw(run)

    def draw(self, run: Any) -> None:
        from qpcore import plots  # matplotlib: only once there is something to draw

        self._drawn = time.monotonic()
        folder = run.run_dir / self.params.folder
        folder.mkdir(parents=True, exist_ok=True)
        history = run.state.history
        epochs = [row["epoch"] for row in history]

        def line(key: str) -> tuple[str, list[int], list[float]]:
            values = [row.get(key) for row in history]
            return key, epochs, [float("nan") if v is None else v for v in values]

        losses = [line(k) for k in ("train_loss", "val_loss") if any(k in r for r in history)]
        charts = {
            "loss": [("loss", "epoch", losses)],
            "lr": [("learning rate", "epoch", [line("lr")])],
        }
        if self.batch_times:
            xs = [e for e, _ in self.batch_times]
            phases = [
                (name.removesuffix("_s"), xs, [t[i] for _, t in self.batch_times])
                for i, name in enumerate(PHASES)
            ]
            charts["batch_time"] = [("seconds per batch", "epoch", phases)]
        system = run.monitors.get("system")
        samples = system.snapshot() if hasattr(system, "snapshot") else []
        if samples:
            start = samples[0][0]
            xs = [(s[0] - start) / 60 for s in samples]
            charts["system"] = [
                ("CPU % (100 = one core)", "minutes", [("process", xs, [s[1] for s in samples])]),
                ("resident memory (MiB)", "minutes", [("process", xs, [s[3] for s in samples])]),
            ]
        figures = {
            name: plots.panels(chart, log=("learning rate",))
            for name, chart in charts.items()
            if epochs or name == "system"
        }
        components = plots.loss_components(history)
        if components is not None:
            figures["loss_components"] = components
        for name, png in figures.items():
            tmp = folder / f".{name}.png.tmp"
            tmp.write_bytes(png)
            tmp.replace(folder / f"{name}.png")
