"""DDP training launched by torchrun: 2 CPU processes on gloo, tiny data.

The comparison with one process uses MSE, no dropout and no BatchNorm: then a
2-process run with ``batch_size`` b per process is the same computation as one
process with batch 2b, and the weights agree to float rounding (1e-5: the
all-reduce sums the two halves in another order). Dropout masks and per-rank
BatchNorm statistics would make the runs differ by design (docs/config.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
import yaml
from test_trainer import run_config

from conftest import make_distribution

TORCHRUN = str(Path(sys.executable).parent / "torchrun")


def ddp_config(manifest: Path, out: Path, name: str, **trainer: Any) -> Path:
    cfg = run_config(
        manifest,
        out,
        model={
            "backbone": {"name": "vectorizer", "size": 64},
            "features": [{"name": "image_stats", "size": 64}],
            "head": {"hidden": [32, 16], "dropout": 0.0, "batch_norm": False},
        },
        trainer={
            "epochs": 4,
            "batch_size": 4,
            "num_threads": 1,
            "early_stopping": {"enabled": False},
            **trainer,
        },
    )
    cfg["output"]["name"] = name
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def torchrun(*args: str, procs: int = 2, **kwargs: Any) -> subprocess.Popen[str]:
    # --standalone: a free port per job, so jobs that follow each other never collide.
    command = [TORCHRUN, "--standalone", "--nproc_per_node", str(procs), "-m", "qpcore", "train"]
    command += [*args, "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "QP_DDP_TIMEOUT": "60"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kwargs
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def weights(run: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return torch.load(run / name, weights_only=True)["model"]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def history(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_like_one_with_the_global_batch(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    proc = torchrun(str(ddp_config(tiny_manifest, tmp_path, "ddp")))
    out = finish(proc)
    assert proc.returncode == 0, out
    assert out.count("run folder:") == 1  # rank 0 speaks, once
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "qpcore",
            "train",
            str(ddp_config(tiny_manifest, tmp_path, "one", batch_size=8)),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert single.returncode == 0, single.stderr
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    assert max_difference(weights(ddp), weights(one)) < 1e-5
    assert [h["epoch"] for h in history(ddp)] == [1, 2, 3, 4]  # one history, no duplicates
    for a, b in zip(history(ddp), history(one), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    results = json.loads((ddp / "results.json").read_text())
    expected = json.loads((one / "results.json").read_text())
    for split in ("val", "test"):  # gathered without padding: every row once
        assert results[split]["rows"] == expected[split]["rows"]
        assert results[split]["mae"] == pytest.approx(expected[split]["mae"], rel=1e-4)
    assert not list(ddp.glob(".*.tmp")) and sorted(
        p.name for p in tmp_path.iterdir() if p.is_dir()
    ) == ["ddp", "one"]


def test_killed_ranks_resume_exactly_and_refuse_another_world_size(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    config = ddp_config(tiny_manifest, tmp_path, "killed", epochs=40, checkpoint={"every": 0})
    reference = torchrun(
        str(ddp_config(tiny_manifest, tmp_path, "whole", epochs=40, checkpoint={"every": 0}))
    )
    out = finish(reference)
    assert reference.returncode == 0, out
    proc = torchrun(str(config))
    run = tmp_path / "killed"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").exists() and len(history(run)) >= 5:
            break
        time.sleep(0.05)
    # Every rank and the agent at once (torchrun starts ranks in their own sessions).
    everyone = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for process in everyone:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(everyone, timeout=30)
    proc.wait()
    done = len(history(run))
    assert 5 <= done < 40, "the run finished before it could be killed"
    single = subprocess.run(
        [sys.executable, "-m", "qpcore", "train", "--resume", str(run), "-q"],
        capture_output=True,
        text=True,
    )
    assert single.returncode == 2 and "trained on 2 process(es)" in single.stderr
    resumed = torchrun("--resume", str(run))
    out = finish(resumed)
    assert resumed.returncode == 0, out
    assert [h["epoch"] for h in history(run)] == list(range(1, 41))
    assert max_difference(weights(run), weights(tmp_path / "whole")) < 1e-6


DYING_LOSS = """
import os
import torch
from qpcore import LossSpec, hookimpl

class DiesOnRank1(torch.nn.Module):
    epoch = 1
    def set_epoch(self, epoch):
        self.epoch = epoch
    def forward(self, pred, target):
        if self.epoch >= 3 and os.environ.get("RANK") == "1":
            os._exit(7)
        return ((pred - target) ** 2).mean()

@hookimpl
def qp_register_losses():
    return [LossSpec("dies_on_rank1", lambda params: DiesOnRank1(), summary="Rank 1 dies.")]
"""


def test_a_dead_rank_ends_the_job(
    tiny_manifest: Path, tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    on_path(
        make_distribution(
            tmp_path / "dist", "qp-dies", "1.0", {"qp_dies": DYING_LOSS}, {"qp_dies": "qp_dies"}
        )
    )
    config = ddp_config(tiny_manifest, tmp_path, "dies", epochs=40)
    data = yaml.safe_load(config.read_text())
    data["loss"] = "dies_on_rank1"
    config.write_text(yaml.safe_dump(data))
    start = time.monotonic()
    proc = torchrun(str(config))
    out = finish(proc, timeout=180)
    assert proc.returncode != 0
    assert time.monotonic() - start < 120
    assert "exitcode  : 7" in out or "exitcode: 7" in out, out[-2000:]
    assert len(history(tmp_path / "dies")) == 2  # the epochs before the death are kept
