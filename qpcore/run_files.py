"""The files of a run folder other than checkpoints, and who may write them.

Under torchrun every rank trains but only rank 0 writes: each writer here is a
no-op elsewhere, so the loop never asks which rank it is on. Every file is
written atomically or appended by whole lines, so a crash leaves nothing
half-written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from qpcore import jsontext
from qpcore.config import RunConfig
from qpcore.config_io import dump_yaml
from qpcore.errors import QPError
from qpcore.fileio import disk_full_as_error, write_atomic

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
LAST, BEST = "last.pt", "best.pt"


def new_run_dir(base: Path, name: str | None) -> Path:
    """``base/name``, or a timestamp that does not exist yet."""
    if name:
        return base / name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    return folder


class RunFiles:
    """The run folder's config, run record, metrics log and results.

    Args:
        folder: The run folder.
        writes: Whether this process writes (rank 0).
    """

    def __init__(self, folder: Path, writes: bool) -> None:
        self.folder, self.writes = folder, writes

    def refuse_existing_run(self) -> None:
        """A new run never trains into a folder that holds one."""
        if (self.folder / LAST).exists():
            raise QPError(
                f"{self.folder} already holds a run; continue it with "
                f"--resume {self.folder}, or pick another output.name"
            )

    def start(self, cfg: RunConfig, run_id: str, data_digest: str) -> None:
        """The config as resolved and the record a resume checks against."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.writes:
            return
        write_atomic(self.folder / "config.yaml", dump_yaml(cfg), "the run's config")
        record = {"run_id": run_id, "data_digest": data_digest}
        write_atomic(self.folder / RUN_FILE, json.dumps(record) + "\n", "the run record")

    def recorded_run_id(self) -> str | None:
        """The ``run_id`` of the folder's record; ``None`` when unreadable."""
        try:
            found = json.loads((self.folder / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        run_id = found.get("run_id") if isinstance(found, dict) else None
        return run_id if isinstance(run_id, str) else None

    def write_history(self, history: Sequence[Mapping[str, Any]]) -> None:
        """``metrics.jsonl`` anew: a resume drops lines of epochs its checkpoint
        does not know (written after it, before the crash)."""
        if self.writes:
            lines = "".join(jsontext.dumps(m) + "\n" for m in history)
            write_atomic(self.folder / METRICS_FILE, lines, "the metrics")

    def append_metrics(self, metrics: Mapping[str, Any]) -> None:
        if not self.writes:
            return
        path = self.folder / METRICS_FILE
        with disk_full_as_error(path, "the metrics"), open(path, "a") as handle:
            handle.write(jsontext.dumps(metrics) + "\n")

    def write_results(self, results: Mapping[str, Any]) -> None:
        if self.writes:
            write_atomic(self.folder / RESULTS_FILE, jsontext.dumps(results, indent=2) + "\n")

    def write_evaluation(self, report: Mapping[str, Any]) -> Path:
        """``eval/metrics.json``: the evaluators' findings on the test split."""
        folder = self.folder / "eval"
        path = folder / "metrics.json"
        if self.writes:
            folder.mkdir(exist_ok=True)
            text = json.dumps(report, indent=2, allow_nan=False) + "\n"
            write_atomic(path, text, "the metrics")
        return path

    def prune_periodic(self, keep: int) -> None:
        """Keep the newest ``keep`` of the ``epoch-NNNN.pt`` checkpoints."""
        if not self.writes:
            return
        for old in sorted(self.folder.glob("epoch-*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
