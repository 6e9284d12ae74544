"""Built-in training monitors, attached to a run by name (``monitors:``).

Each is an object with ``qp_on_*`` hook methods; those that keep history have
``state_dict``/``load_state_dict`` so a resumed run continues it. Definitions
and outputs are in ``docs/monitors.md``.
"""

from __future__ import annotations

from qp_monitors.anomaly import Anomaly, AnomalyParams
from qp_monitors.logs import Csv, CsvParams, Jsonl, JsonlParams
from qp_monitors.plots import Plots, PlotsParams
from qp_monitors.progress import Progress, ProgressParams
from qp_monitors.summary import Summary, SummaryParams
from qp_monitors.system import System, SystemParams
from qp_monitors.tensorboard import Tensorboard, TensorboardParams
from qp_monitors.timing import Timing, TimingParams
from qpcore import MonitorSpec, hookimpl


@hookimpl
def qp_register_monitors() -> list[MonitorSpec]:
    return [
        MonitorSpec(
            "progress", Progress, ProgressParams, "A bar per epoch and one line per epoch."
        ),
        MonitorSpec(
            "anomaly",
            Anomaly,
            AnomalyParams,
            "NaN/inf losses or gradients and loss explosions: warn, stop or roll back.",
        ),
        MonitorSpec(
            "system", System, SystemParams, "CPU, memory and threads sampled in the background."
        ),
        MonitorSpec(
            "jsonl", Jsonl, JsonlParams, "Every training event as a JSON line, rotated and gzipped."
        ),
        MonitorSpec("csv", Csv, CsvParams, "Epoch metrics as a CSV table."),
        MonitorSpec(
            "timing",
            Timing,
            TimingParams,
            "Per-batch phase times, throughput, bottleneck and thread count.",
        ),
        MonitorSpec("plots", Plots, PlotsParams, "Loss, LR, batch time and CPU/memory as PNG."),
        MonitorSpec(
            "summary", Summary, SummaryParams, "Session report, compared with earlier runs."
        ),
        MonitorSpec(
            "tensorboard",
            Tensorboard,
            TensorboardParams,
            "Scalars for TensorBoard (extra: qpcore[tensorboard]).",
        ),
    ]
