"""The built-in monitors, each driven through a real short training run."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_trainer import fit, history, run_config

from qpcore import hookimpl
from qpcore.checkpoint import load_checkpoint
from qpcore.registry import default_registry
from qpcore.trainer import Trainer
from qpcore.validate import resolve_config

from conftest import make_distribution

#: A loss that misbehaves on chosen training batches: NaN or a 10^4 blow-up.
GLITCH_LOSS = """
import os
from typing import Literal
import torch
from pydantic import Field
from qpcore import LossSpec, Params, hookimpl

class GlitchParams(Params):
    epoch: int = Field(2, ge=1)
    batch: int = Field(1, ge=0)
    kind: Literal["nan", "explode"] = "nan"
    times: int = Field(1, ge=0)
    fixed_by: str | None = None  # a file whose existence ends the glitch


class Glitch(torch.nn.Module):
    def __init__(self, params):
        super().__init__()
        self.p, self.epoch, self.batch, self.done = params, 1, 0, 0
    def set_epoch(self, epoch):
        self.epoch, self.batch = epoch, 0
    def forward(self, pred, target):
        loss = ((pred - target) ** 2).mean()
        if not self.training:
            return loss
        hit = (self.epoch, self.batch) == (self.p.epoch, self.p.batch) and self.done < self.p.times
        hit = hit and not (self.p.fixed_by and os.path.exists(self.p.fixed_by))
        self.batch += 1
        if hit:
            self.done += 1
            return loss * (float("nan") if self.p.kind == "nan" else 1e4)
        return loss

@hookimpl
def qp_register_losses():
    return [LossSpec("glitch", Glitch, GlitchParams, "Misbehaves on chosen batches.")]
"""


@pytest.fixture
def glitch(tmp_path: Path, on_path: Callable[[Path], None]) -> None:
    dist = {"qp_glitch": GLITCH_LOSS}
    on_path(make_distribution(tmp_path / "glitch", "qp-glitch", "1.0", dist, {"g": "qp_glitch"}))


def monitored(manifest: Path, out: Path, monitors: list[Any], **sections: Any) -> dict[str, Any]:
    """A 3-batch-per-epoch run with a constant LR (so LR changes are the monitor's)."""
    return run_config(manifest, out, monitors=monitors, **sections)


def glitched(manifest: Path, out: Path, anomaly: dict[str, Any], glitch: dict[str, Any]) -> Trainer:
    """A run watched by ``anomaly`` (its params) whose ``glitch`` loss misbehaves."""
    cfg = monitored(
        manifest, out, [{"name": "anomaly", **anomaly}], loss={"name": "glitch", **glitch}
    )
    return fit(cfg)


# --- progress -------------------------------------------------------------


def test_progress_prints_a_line_per_epoch_and_no_bar_off_a_terminal(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = monitored(tiny_manifest, tmp_path, ["progress"])
    registry = default_registry()
    from qpcore.validate import resolve_config

    trainer = Trainer(resolve_config(cfg, registry), registry, tmp_path / "run")
    trainer.fit()
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "val_pearson" in lines[0] and "batch/s" not in err and "it/s" not in err


def test_progress_draws_a_bar_on_a_terminal(tiny_manifest: Path, tmp_path: Path) -> None:
    cfg = monitored(
        tiny_manifest,
        tmp_path,
        [{"name": "progress", "refresh_s": 0}],
        trainer={"epochs": 2, "batch_size": 8},
    )
    cfg["model"] = {"backbone": {"name": "image_stats", "size": 64}, "head": {"hidden": [8]}}
    cfg["trainer"]["augment"] = ["hflip"]  # no feature cache: real batches, a visible bar
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    leader, follower = pty.openpty()
    # A new pty is 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ)
    qp = Path(sys.executable).with_name("qp")
    process = subprocess.Popen(
        [str(qp), "train", str(path)], stdout=subprocess.PIPE, stderr=follower, env=env
    )
    os.close(follower)
    chunks: list[bytes] = []

    def read() -> None:  # drained while it runs: Linux drops a closed pty's buffer
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    stdout = process.communicate(timeout=300)[0].decode()
    reader.join(timeout=10)
    os.close(leader)
    screen = b"".join(chunks)
    assert process.returncode == 0, stdout[-2000:]
    text = screen.decode(errors="replace")
    assert "epoch 1/2" in text and "loss=" in text and "mae=" in text and "lr=" in text
    assert stdout.count("\nepoch ") == 2  # the summary lines go to stdout


# --- system ---------------------------------------------------------------


def system_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "qp-system-monitor"]


def test_system_samples_and_leaves_no_thread_behind(tiny_manifest: Path, tmp_path: Path) -> None:
    before = threading.active_count()
    cfg = monitored(
        tiny_manifest,
        tmp_path,
        [{"name": "system", "interval_s": 0.05}],
        trainer={"epochs": 30, "batch_size": 8},
    )
    trainer = fit(cfg)
    system = trainer.monitors["system"]
    summary = system.summary()
    assert summary["rss_mb"]["max"] > 50 and summary["threads"]["mean"] >= 1
    assert len(system.samples) > 0 and system.totals["rss_mb"][2] == len(system.samples)
    assert system_threads() == [] and threading.active_count() == before


class Boom:
    """Raises in the second epoch, as a crash in the middle of training would."""

    from qpcore import hookimpl

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Any) -> None:
        if epoch == 2:
            raise RuntimeError("boom")


def test_system_thread_stops_when_training_raises(tiny_manifest: Path, tmp_path: Path) -> None:
    cfg = monitored(tiny_manifest, tmp_path, [{"name": "system", "interval_s": 0.05}])
    with pytest.raises(RuntimeError, match="boom"):
        fit(cfg, monitors=[Boom()])
    assert system_threads() == []


# --- anomaly --------------------------------------------------------------


def anomalies(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "anomalies.jsonl").read_text().splitlines()]


def test_anomaly_warns_and_logs(
    tiny_manifest: Path, tmp_path: Path, glitch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = glitched(
        tiny_manifest,
        tmp_path,
        {"action": "warn", "warmup_batches": 3},
        {"epoch": 3, "batch": 1, "kind": "explode"},
    )
    assert trainer.results["epochs"] == 3  # a warning changes nothing
    [record] = anomalies(trainer.run_dir)
    assert record["epoch"] == 3 and record["batch"] == 1 and record["action"] == "warn"
    assert record["anomaly"].startswith("loss explosion")
    assert "warning: loss explosion" in capsys.readouterr().err


def test_anomaly_stop_leaves_a_diagnostic_and_a_checkpoint_that_resumes(
    tiny_manifest: Path, tmp_path: Path, glitch: None
) -> None:
    trainer = glitched(
        tiny_manifest,
        tmp_path,
        {"action": "stop"},
        {"epoch": 2, "batch": 1, "fixed_by": str(tmp_path / "fixed")},
    )
    run = trainer.run_dir
    assert "non-finite loss" in trainer.results["stop_reason"]
    assert trainer.results["epochs"] == 1 and len(history(run)) == 1
    diagnostic = json.loads((run / "anomaly.json").read_text())
    assert diagnostic["epoch"] == 2 and diagnostic["batch"] == 1 and diagnostic["loss"] == "nan"
    assert len(diagnostic["recent_losses"]) == 4  # epoch 1's 3 batches and batch 0 of epoch 2
    meta, _ = load_checkpoint(run / "last.pt")
    assert meta.epoch == 1
    # Once the cause is gone, the run resumes from epoch 1 and ends.
    (tmp_path / "fixed").touch()
    resumed = Trainer.resume(run, default_registry(), quiet=True)
    assert resumed.fit()["epochs"] == 3


def test_anomaly_rollback_restores_and_lowers_the_lr(
    tiny_manifest: Path, tmp_path: Path, glitch: None
) -> None:
    trainer = glitched(
        tiny_manifest,
        tmp_path,
        {"action": "rollback", "lr_factor": 0.25},
        {"epoch": 2, "batch": 2, "kind": "nan"},
    )
    rows = history(trainer.run_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and trainer.results["stop_reason"] is None
    assert rows[1]["lr"] == pytest.approx(rows[0]["lr"] * 0.25)
    assert all(r["train_loss"] is not None for r in rows)
    [record] = anomalies(trainer.run_dir)
    assert record["action"] == "rollback" and record["epoch"] == 2


def test_anomaly_rollback_gives_up_after_max_rollbacks(
    tiny_manifest: Path, tmp_path: Path, glitch: None
) -> None:
    trainer = glitched(
        tiny_manifest,
        tmp_path,
        {"action": "rollback", "max_rollbacks": 2},
        {"epoch": 2, "batch": 0, "kind": "nan", "times": 10},
    )
    assert [r["action"] for r in anomalies(trainer.run_dir)] == ["rollback", "rollback", "stop"]
    assert "after 2 rollbacks" in trainer.results["stop_reason"]
    assert trainer.results["epochs"] == 1


def test_anomaly_before_any_checkpoint_stops_instead_of_rolling_back(
    tiny_manifest: Path, tmp_path: Path, glitch: None
) -> None:
    trainer = glitched(
        tiny_manifest, tmp_path, {"action": "rollback"}, {"epoch": 1, "batch": 1, "kind": "nan"}
    )
    assert "no finished epoch to roll back to" in trainer.results["stop_reason"]
    assert not (trainer.run_dir / "last.pt").exists()
    # Recorded as the stop it became, with its diagnostic.
    assert [r["action"] for r in anomalies(trainer.run_dir)] == ["stop"]
    assert (trainer.run_dir / "anomaly.json").exists()


# --- logs -----------------------------------------------------------------


def test_jsonl_logs_every_event_and_rotates_into_gzip(tiny_manifest: Path, tmp_path: Path) -> None:
    cfg = monitored(
        tiny_manifest,
        tmp_path,
        [{"name": "jsonl", "max_bytes": 2048, "backups": 2}],
        trainer={"epochs": 6, "batch_size": 8},
    )
    run = fit(cfg).run_dir
    current = (run / "events.jsonl").read_text().splitlines()
    rotated = [gzip.decompress((run / f"events.jsonl.{i}.gz").read_bytes()) for i in (1, 2)]
    assert not (run / "events.jsonl.3.gz").exists()  # only `backups` are kept
    assert (run / "events.jsonl").stat().st_size <= 2048
    events = [json.loads(line) for line in current]
    for blob in rotated:
        events += [json.loads(line) for line in blob.decode().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"batch_end", "epoch_end", "fit_end"} <= kinds
    assert json.loads(current[-1])["event"] == "fit_end"
    batch = next(e for e in events if e["event"] == "batch_end")
    assert {"loss", "lr", "data_s", "forward_s", "backward_s", "step_s"} <= set(batch["values"])
    # metrics.jsonl stays one JSON object per epoch line, as pandas reads it.
    import pandas

    table = pandas.read_json(run / "metrics.jsonl", lines=True)
    assert table["epoch"].tolist() == list(range(1, 7)) and "val_pearson" in table


def test_csv_matches_the_history_also_after_a_resume(tiny_manifest: Path, tmp_path: Path) -> None:
    import csv

    cfg = monitored(tiny_manifest, tmp_path, ["csv"])
    run = fit(cfg).run_dir
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[2]["train_loss"]) == pytest.approx(history(run)[2]["train_loss"])


# --- state in checkpoints ---------------------------------------------------


class SlowEpochs:
    """Makes each epoch last a few sampling intervals: on warm features a tiny
    run can end before the system monitor's first sample."""

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Any) -> None:
        time.sleep(0.15)


def test_monitor_state_survives_a_resume(tiny_manifest: Path, tmp_path: Path) -> None:
    cfg = monitored(
        tiny_manifest,
        tmp_path,
        [
            "anomaly",
            {"name": "system", "interval_s": 0.05},
            {"name": "timing", "probe_threads": False},
            "plots",
        ],
    )
    trainer = fit(cfg, monitors=[SlowEpochs()])  # the sampler gets its turns
    saved = list(trainer.monitors["anomaly"].losses)
    assert len(saved) == 9
    _, payload = load_checkpoint(trainer.run_dir / "last.pt")
    states = json.loads(payload["training"]["monitors"])
    assert set(states) == {"anomaly", "system", "timing", "plots"}
    # Saved after the epoch's end hooks: the last epoch is in every monitor's state.
    assert states["timing"]["throughput"][0] == 3
    assert [e for e, _ in states["plots"]["batch_times"]] == [1, 2, 3]
    resumed = Trainer.resume(trainer.run_dir, default_registry(), quiet=True)
    resumed.fit()
    assert list(resumed.monitors["anomaly"].losses) == saved
    # Sampling goes on from the checkpoint's totals, not from zero.
    counted = states["system"]["totals"]["rss_mb"][2]
    assert resumed.monitors["system"].totals["rss_mb"][2] >= counted > 0


# --- timing, plots, summary, tensorboard ------------------------------------


def test_timing_reports_phases_bottleneck_and_a_measured_thread_count(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    cfg = monitored(tiny_manifest, tmp_path, [{"name": "timing", "probe_repeats": 1}])
    trainer = fit(cfg)
    report = json.loads((trainer.run_dir / "timing.json").read_text())
    per_batch = report["per_batch"]
    assert per_batch["forward_s"]["count"] == 9 and per_batch["forward_s"]["mean"] > 0
    assert per_batch["batch_s"]["mean"] >= per_batch["forward_s"]["mean"]
    assert report["images_per_s"]["count"] == 3 and report["images_per_s"]["mean"] > 0
    assert report["bottleneck"].startswith(("compute", "data loading"))
    threads = report["threads"]
    counted = {int(c) for c in threads["seconds_per_batch"]}
    assert 1 in counted and threads["recommended"] in counted
    assert threads["current"] == 1  # the run's trainer.num_threads, restored after the probe


def test_timing_names_data_loading_when_it_dominates(tiny_manifest: Path, tmp_path: Path) -> None:
    from qp_monitors.timing import Timing, TimingParams

    timing = Timing(TimingParams())
    for _ in range(5):
        timing.qp_on_batch_end(
            None, 1, 0, {"data_s": 0.8, "forward_s": 0.1, "backward_s": 0.1, "step_s": 0.0}
        )

    class Run:
        class cfg:
            class trainer:
                num_workers = 0

    assert timing.bottleneck(Run).startswith("data loading: 80%")


def test_plots_draws_pngs_during_and_after_the_run(tiny_manifest: Path, tmp_path: Path) -> None:
    from PIL import Image

    cfg = monitored(
        tiny_manifest,
        tmp_path,
        [
            {"name": "system", "interval_s": 0.05},
            {"name": "plots", "every": 2, "min_interval_s": 0},
        ],
        trainer={"epochs": 4, "batch_size": 8},
        loss={"name": "combined", "weighting": "uncertainty"},
    )
    trainer = fit(cfg)
    folder = trainer.run_dir / "plots"
    assert {p.name for p in folder.iterdir()} == {
        "loss.png",
        "lr.png",
        "batch_time.png",
        "system.png",
        "loss_components.png",
    }
    # Three terms, the weights, the learned log-variances, the shares: 3 + 3 panels.
    with Image.open(folder / "loss_components.png") as image:
        assert image.size[0] > 1.2 * image.size[1]
    for png in folder.iterdir():
        with Image.open(png) as image:
            assert image.size[0] > 200
    assert [e for e, _ in trainer.monitors["plots"].batch_times] == [1, 2, 3, 4]


def test_summary_writes_the_session_and_flags_a_slowdown(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    from qp_monitors.summary import FILE

    evaluators = ["regression"]
    cfg = monitored(tiny_manifest, tmp_path, ["timing", "summary"], evaluators=evaluators)
    first = fit(cfg)
    summary = json.loads((first.run_dir / FILE).read_text())
    assert summary["epochs"] == 3 and summary["best_metrics"]["epoch"] == summary["best_epoch"]
    assert summary["time_per_epoch_s"]["mean"] > 0 and summary["timing"]["per_batch"]
    assert summary["comparison"]["verdict"].startswith("no earlier run")
    assert any(note.startswith("bottleneck") for note in summary["notes"])
    page = (first.run_dir / "eval" / "report.html").read_text()
    assert "<h2>Training session</h2>" in page and "Seconds per batch" in page
    # Two earlier runs of the same settings, 100 times faster: flagged. (Two, so
    # that the median baseline is theirs: the first run's own epochs include
    # one-time costs a second run in this process no longer pays.)
    fast = {**summary, "time_per_epoch_s": {"mean": summary["time_per_epoch_s"]["mean"] / 100}}
    for name in ("earlier", "earliest"):
        (tmp_path / name).mkdir()
        (tmp_path / name / FILE).write_text(json.dumps(fast))
    registry = default_registry()
    Trainer(resolve_config(cfg, registry), registry, tmp_path / "again", quiet=True).fit()
    comparison = json.loads((tmp_path / "again" / FILE).read_text())["comparison"]
    assert comparison["slowdown"] is True and comparison["verdict"].startswith("SLOWDOWN")
    assert sorted(r["run"] for r in comparison["runs"]) == ["earlier", "earliest", "run"]


def test_tensorboard_writes_scalars(tiny_manifest: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = monitored(tiny_manifest, tmp_path, [{"name": "tensorboard", "every_batches": 1}])
    run = fit(cfg).run_dir
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"epoch/train_loss", "epoch/val_pearson", "batch/loss"} <= set(tags)
    assert [e.step for e in events.Scalars("epoch/train_loss")] == [1, 2, 3]
    assert len(events.Scalars("batch/loss")) == 9


def test_anomaly_sees_a_non_finite_gradient_behind_a_finite_loss() -> None:
    from qp_monitors.anomaly import Anomaly, AnomalyParams

    monitor = Anomaly(AnomalyParams())
    assert monitor.wants_grad_norm is True  # so the trainer computes the norm
    assert monitor._what({"loss": 0.1, "grad_norm": float("inf")}).startswith(
        "non-finite gradient norm"
    )
    assert (
        Anomaly(AnomalyParams(gradients=False))._what({"loss": 0.1, "grad_norm": float("nan")})
        is None
    )


# --- review fixes -----------------------------------------------------------


def test_repeated_rollbacks_keep_lowering_the_lr(
    tiny_manifest: Path, tmp_path: Path, glitch: None
) -> None:
    trainer = glitched(
        tiny_manifest,
        tmp_path,
        {"action": "rollback", "lr_factor": 0.5},
        {"epoch": 2, "batch": 0, "kind": "nan", "times": 2},
    )
    rows = history(trainer.run_dir)
    assert [r["action"] for r in anomalies(trainer.run_dir)] == ["rollback", "rollback"]
    assert rows[1]["lr"] == pytest.approx(rows[0]["lr"] * 0.25)  # x0.5, then x0.5 again
    assert rows[2]["lr"] == pytest.approx(rows[1]["lr"])  # and it stays lowered


class StopAt:
    """Asks the run to stop from an epoch's end, as a monitor may."""

    from qpcore import hookimpl

    def __init__(self, hook: str) -> None:
        self.hook = hook

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Any) -> None:
        if self.hook == "epoch_end" and epoch == 2:
            run.request_stop("enough")

    @hookimpl
    def qp_on_fit_end(self, run: Any, results: Any) -> None:
        if self.hook == "fit_end":
            raise RuntimeError("fit_end failed")


def test_a_stop_asked_for_at_an_epoch_end_stops_there(tiny_manifest: Path, tmp_path: Path) -> None:
    trainer = fit(monitored(tiny_manifest, tmp_path, []), monitors=[StopAt("epoch_end")])
    assert trainer.results["epochs"] == 2
    assert trainer.results["stop_reason"] == "stopped after epoch 2: enough"


def test_a_failing_fit_end_hook_still_stops_the_sampler(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    cfg = monitored(tiny_manifest, tmp_path, [{"name": "system", "interval_s": 0.05}])
    with pytest.raises(RuntimeError, match="fit_end failed"):
        fit(cfg, monitors=[StopAt("fit_end")])
    assert system_threads() == []


def test_a_window_shorter_than_the_warmup_still_finds_explosions() -> None:
    from qp_monitors.anomaly import Anomaly, AnomalyParams

    monitor = Anomaly(AnomalyParams(window=10))
    for _ in range(30):
        monitor._remember(1.0)
    assert monitor._what({"loss": 1e6, "lr": 0.1}).startswith("loss explosion")
