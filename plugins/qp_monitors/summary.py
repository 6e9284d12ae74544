"""``summary``: the session report of a run, and how it compares with earlier ones."""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from qpcore import Params, hookimpl, jsontext
from qpcore.html import Section, join, table, tag
from qpcore.monitoring import warn

FILE = "summary.json"


class SummaryParams(Params):
    slowdown: float = Field(
        0.2, gt=0, description="Epoch-time increase over earlier runs that is flagged."
    )


def speed_fingerprint(cfg: Any) -> str:
    """What decides a run's speed: model, data, batch size, threads, device.
    Runs are only compared when these agree."""
    full = cfg.to_dict()
    trainer = full["trainer"]
    keys = {
        "model": full["model"],
        "data": full["data"],
        **{
            k: trainer.get(k)
            for k in ("batch_size", "accumulate", "num_threads", "num_workers", "augment", "device")
        },
    }
    text = json.dumps(keys, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


class Summary:
    """At the end of a run, ``RUN/summary.json`` and a section of the HTML
    report: the best epoch and its metrics, time per epoch, the ``timing`` and
    ``system`` monitors' statistics when they ran, efficiency notes, and the
    mean epoch time against earlier runs with the same speed fingerprint in the
    same runs folder, flagging a slowdown above ``slowdown``."""

    def __init__(self, params: SummaryParams) -> None:
        self.params = params
        self.last: dict[str, Any] | None = None

    def build(self, run: Any, results: Mapping[str, Any] | None = None) -> dict[str, Any]:
        history = run.state.history
        times = [r["time_s"] for r in history if isinstance(r.get("time_s"), int | float)]
        best = next((r for r in history if r["epoch"] == run.state.best_epoch), None)
        timing = run.monitors.get("timing")
        system = run.monitors.get("system")
        summary: dict[str, Any] = {
            "run_dir": str(run.run_dir),
            "fingerprint": speed_fingerprint(run.cfg),
            "epochs": run.state.epoch,
            "best_epoch": run.state.best_epoch,
            "best_metrics": {k: v for k, v in (best or {}).items() if k != "timestamp"},
            "stop_reason": run.state.stop_reason,
            "feature_cache": getattr(run, "cached", None),
            "time_per_epoch_s": _stats(times),
            "timing": timing.summary(run) if hasattr(timing, "summary") else None,
            "system": system.summary() if hasattr(system, "summary") else None,
        }
        if results is not None:
            summary["results"] = {k: results.get(k) for k in ("val", "test") if k in results}
        summary["notes"] = self.notes(run, summary)
        summary["comparison"] = self.compare(run, summary)
        return summary

    def notes(self, run: Any, summary: Mapping[str, Any]) -> list[str]:
        notes = []
        timing = summary["timing"]
        if timing:
            notes.append(f"bottleneck: {timing['bottleneck']}")
            threads = timing.get("threads")
            if threads and threads["recommended"] != threads["current"]:
                notes.append(
                    f"threads: a batch ran fastest with {threads['recommended']} threads "
                    f"(this run used {threads['current']}); set trainer.num_threads"
                )
        if summary["feature_cache"] is False and not run.model.backbones_trainable:
            notes.append(
                "the feature cache was off (augmentation): frozen backbones ran on every batch"
            )
        system = summary["system"]
        if system and system["memory_percent"]["max"] is not None:
            peak = system["memory_percent"]["max"]
            if peak > 85:
                notes.append(f"system memory peaked at {peak:.0f} %")
        return notes

    def compare(self, run: Any, summary: Mapping[str, Any]) -> dict[str, Any]:
        """Mean epoch time against the earlier runs of the same fingerprint."""
        mine = summary["time_per_epoch_s"]["mean"]
        earlier = []
        for path in sorted(Path(run.run_dir).parent.glob(f"*/{FILE}")):
            if path.parent == Path(run.run_dir):
                continue
            try:
                other = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            mean = (other.get("time_per_epoch_s") or {}).get("mean")
            if other.get("fingerprint") == summary["fingerprint"] and mean:
                earlier.append((path.parent.name, float(mean)))
        if not earlier or not mine:
            return {"runs": [], "verdict": "no earlier run with the same speed fingerprint"}
        baseline = statistics.median(m for _, m in earlier)
        change = mine / baseline - 1
        slower = change > self.params.slowdown
        verdict = (
            f"{'SLOWDOWN: ' if slower else ''}mean epoch {mine:.3f} s vs {baseline:.3f} s "
            f"(median of {len(earlier)} earlier runs): {change:+.0%}"
        )
        return {
            "runs": [{"run": n, "mean_epoch_s": m} for n, m in earlier],
            "baseline_s": baseline,
            "change": change,
            "slowdown": slower,
            "verdict": verdict,
        }

    @hookimpl(trylast=True)
    def qp_on_fit_end(self, run: Any, results: Mapping[str, Any]) -> None:
        self.last = self.build(run, results)
        path = run.run_dir / FILE
        text = jsontext.dumps(self.last, nonfinite="text", indent=2)
        path.write_text(text + "\n", encoding="utf-8")
        if self.last["comparison"].get("slowdown"):
            warn(self.last["comparison"]["verdict"])

    def report(self, run: Any) -> list[Section]:
        summary = self.last or self.build(run)
        epoch = summary["time_per_epoch_s"]
        rows: list[tuple[Any, ...]] = [
            ("epochs", summary["epochs"]),
            ("best epoch", summary["best_epoch"]),
            ("stop reason", summary["stop_reason"] or "-"),
            ("feature cache", str(summary["feature_cache"])),
            ("seconds per epoch, mean", epoch["mean"]),
            ("seconds per epoch, min / max", f"{epoch['min']} / {epoch['max']}"),
        ]
        parts = [table(["what", "value"], rows, sortable=False)]
        timing = summary["timing"]
        if timing:
            phases = [
                (name, s["mean"], s["std"], s["min"], s["max"])
                for name, s in timing["per_batch"].items()
            ]
            parts += [
                tag("h3", "Seconds per batch"),
                table(["phase", "mean", "std", "min", "max"], phases),
            ]
        system = summary["system"]
        if system:
            usage = [(name, s["mean"], s["max"]) for name, s in system.items()]
            parts += [tag("h3", "System"), table(["measure", "mean", "max"], usage)]
        notes = [*summary["notes"], summary["comparison"]["verdict"]]
        parts += [tag("h3", "Notes"), tag("ul", *(tag("li", n) for n in notes))]
        return [Section("Training session", join(parts))]
