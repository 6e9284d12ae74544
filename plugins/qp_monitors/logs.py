"""``jsonl`` and ``csv``: the run as files other tools read."""

from __future__ import annotations

import csv
import gzip
import io
import os
import shutil
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from qpcore import Params, hookimpl, jsontext


class JsonlParams(Params):
    file: str = Field("events.jsonl", description="File name inside the run folder.")
    batches: bool = Field(True, description="Log every training batch, not only epochs.")
    max_bytes: int = Field(10_000_000, ge=1024, description="Size at which the file is rotated.")
    backups: int = Field(5, ge=0, le=1000, description="Rotated, gzipped files kept.")


class RotatingJsonl:
    """Appends JSON lines to ``path``; past ``max_bytes`` the file becomes
    ``path.1.gz`` (older ones shift to ``.2.gz`` ..., the oldest beyond
    ``backups`` is deleted) and a new file starts. Lines reach the disk at
    least every ``flush_s`` seconds and on :meth:`flush`/:meth:`close` (a
    flush per line would cost more than the rest of the monitoring)."""

    def __init__(self, path: Path, max_bytes: int, backups: int, flush_s: float = 1.0) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self.flush_s = flush_s
        self._handle: io.TextIOWrapper | None = None
        self._size = 0
        self._flushed = time.monotonic()

    def rotated(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}.gz")

    def write(self, record: Mapping[str, Any]) -> None:
        line = jsontext.dumps(record, nonfinite="text") + "\n"
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open
            self._size = self.path.stat().st_size  # counted from here on: tell() is slow
        size = len(line.encode("utf-8"))
        if self._size and self._size + size > self.max_bytes:
            self._rotate()
            self._size = 0
        self._handle.write(line)
        self._size += size
        if time.monotonic() - self._flushed >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()
        self._flushed = time.monotonic()

    def _rotate(self) -> None:
        assert self._handle is not None
        self._handle.close()
        if self.backups == 0:
            self.path.unlink()
        else:
            self.rotated(self.backups).unlink(missing_ok=True)
            for index in range(self.backups - 1, 0, -1):
                if self.rotated(index).exists():
                    os.replace(self.rotated(index), self.rotated(index + 1))
            tmp = self.rotated(1).with_suffix(".tmp")
            with open(self.path, "rb") as source, gzip.open(tmp, "wb") as target:
                shutil.copyfileobj(source, target)
            os.replace(tmp, self.rotated(1))
            self.path.unlink()
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class Jsonl:
    """Every training event as one JSON object per line: ``time``, ``event``,
    ``epoch``, ``batch`` (batch events) and ``values``."""

    def __init__(self, params: JsonlParams) -> None:
        self.params = params
        self.log: RotatingJsonl | None = None
        self.zone = datetime.now().astimezone().tzinfo  # looked up once, not per line

    def _write(self, run: Any, event: str, **fields: Any) -> None:
        if self.log is None:
            self.log = RotatingJsonl(
                run.run_dir / self.params.file, self.params.max_bytes, self.params.backups
            )
        now = datetime.now(self.zone).isoformat(timespec="milliseconds")
        self.log.write({"time": now, "event": event, **fields})

    @hookimpl
    def qp_on_fit_start(self, run: Any) -> None:
        self._write(run, "fit_start", epoch=run.state.epoch, values={"run_dir": run.run_dir})

    @hookimpl
    def qp_on_epoch_start(self, run: Any, epoch: int) -> None:
        self._write(run, "epoch_start", epoch=epoch, values={"batches": run.batches_per_epoch})

    @hookimpl
    def qp_on_batch_end(
        self, run: Any, epoch: int, batch: int, metrics: Mapping[str, float]
    ) -> None:
        if self.params.batches:
            self._write(run, "batch_end", epoch=epoch, batch=batch, values=dict(metrics))

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        self._write(run, "epoch_end", epoch=epoch, values=dict(metrics))
        if self.log is not None:
            self.log.flush()

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Mapping[str, Any]) -> None:
        self._write(run, "fit_end", epoch=run.state.epoch, values=dict(results))
        self._close()

    @hookimpl
    def qp_on_exception(self, run: Any, error: BaseException) -> None:
        values = {"error": f"{type(error).__name__}: {error}"}
        self._write(run, "exception", epoch=run.state.epoch, values=values)
        self._close()

    def _close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


class CsvParams(Params):
    file: str = Field("metrics.csv", description="File name inside the run folder.")


class Csv:
    """The epoch metrics as a CSV table, rewritten (atomically) after every
    epoch from the run's history, so a resumed run's file matches its
    ``metrics.jsonl`` and a column that appears later gets a header."""

    def __init__(self, params: CsvParams) -> None:
        self.params = params

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        rows = run.state.history
        columns = list(dict.fromkeys(key for row in rows for key in row))
        path = run.run_dir / self.params.file
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns, restval="")
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        os.replace(tmp, path)
