"""Executors: ``local`` processes and ``ray`` give the same datasets, byte for byte.

The Ray tests start a private local Ray (2 CPUs) themselves; no cluster is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_labeler import make_inputs

from qpcore.cli import cli
from qpcore.data.pool import CRASHED, TimeLimit
from qpcore.executor import build_executor

from imaging import flat_logo, save


def label(inputs: Path, out: Path, *extra: str) -> str:
    args = ["data", "label", str(inputs), "--out", str(out), "--track", "random"]
    args += ["--per-image", "2", "--workers", "2", "--timeout", "1", "-q", *extra]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stderr


def test_ray_and_local_write_the_same_dataset(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "in", 24)
    (inputs / "broken.png").write_bytes(b"not an image")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    Image.fromarray(noise).save(inputs / "slow.png")  # seconds in vtracer: past 1 s
    label(inputs, tmp_path / "local")
    said = label(inputs, tmp_path / "ray", "--executor", "ray")
    assert "2 failed" in said
    for name in ("manifest.csv", "errors.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    errors = (tmp_path / "ray" / "errors.csv").read_text()
    assert "broken.png,not a readable image" in errors
    assert "slow.png,timed out: still running after its limit of 1.0 s" in errors
    local_images = sorted(p.name for p in (tmp_path / "local" / "images").iterdir())
    assert sorted(p.name for p in (tmp_path / "ray" / "images").iterdir()) == local_images


@dataclass(frozen=True)
class Job:
    index: int
    marker: str


def dies_once_or_always(job: Job) -> str:
    """Kills its own worker: job 1 on its first attempt only, job 2 every time."""
    marker = Path(job.marker)
    if job.index == 2 or (job.index == 1 and not marker.exists()):
        marker.touch()
        os._exit(1)
    return f"done {job.index}"


@pytest.mark.parametrize("name", ["local", "ray"])
def test_a_killed_worker_is_retried_once(name: str, tmp_path: Path) -> None:
    if name == "ray":
        import ray.cloudpickle

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = build_executor(name, workers=2)
    jobs = [Job(i, str(tmp_path / f"marker-{i}")) for i in range(4)]
    results: dict[int, str] = {}
    failed = lambda job, error: (job.index, error)  # noqa: E731
    for result in executor.run(jobs, dies_once_or_always, failed, TimeLimit()):
        index, text = result if isinstance(result, tuple) else (int(result.split()[1]), result)
        results[index] = text
    assert results == {0: "done 0", 1: "done 1", 2: CRASHED, 3: "done 3"}


def sleeps_beside_a_crash(job: Job) -> str:
    """Job 0 runs for a second; job 1 kills its worker every time, while job 0 runs."""
    if job.index == 1:
        time.sleep(0.2)
        os._exit(1)
    time.sleep(1.0)
    return f"done {job.index}"


@pytest.mark.parametrize("name", ["local", "ray"])
def test_a_job_beside_a_crashing_one_is_not_blamed(name: str, tmp_path: Path) -> None:
    """A dying worker breaks the whole local pool; only the job that killed it
    is reported (blaming every job in flight reported job 0 as crashed too)."""
    if name == "ray":
        import ray.cloudpickle

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = build_executor(name, workers=2)
    jobs = [Job(i, "") for i in range(2)]
    failed = lambda job, error: (job.index, error)  # noqa: E731
    results = dict(
        result if isinstance(result, tuple) else (0, result)
        for result in executor.run(jobs, sleeps_beside_a_crash, failed, TimeLimit())
    )
    assert results == {0: "done 0", 1: CRASHED}


def test_a_missing_ray_extra_says_how_to_install_it(tmp_path: Path) -> None:
    save(flat_logo(64), tmp_path / "a.png")
    script = (
        "import sys; sys.modules['ray'] = None\n"  # what a machine without Ray sees
        "from qpcore.cli import main; sys.argv = ['qp'] + sys.argv[1:]; main()\n"
    )
    args = [
        "data",
        "label",
        str(tmp_path / "a.png"),
        "--out",
        str(tmp_path / "o"),
        "--executor",
        "ray",
    ]
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "pip install 'qpcore[ray]'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["local", "ray"])
def test_an_executor_computes_the_cached_features_of_one_process(
    name: str, tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qpcore import feature_cache
    from qpcore.build import build_backbone
    from qpcore.registry import default_registry
    from qpcore.validate import resolve_config

    monkeypatch.setattr(feature_cache, "CHUNK", 16)  # 40 images: three tasks
    registry = default_registry()
    ref = resolve_config({"model": {"backbone": {"name": "vectorizer", "size": 64}}}, registry)
    backbone = build_backbone(ref.model.backbone)
    paths = sorted((tiny_manifest.parent / "images").glob("*.png"))
    expected = feature_cache.compute_features(backbone, paths, progress=False)
    executor = build_executor(name, workers=2)
    got, hit = feature_cache.cached_features(
        backbone, paths, tmp_path, progress=False, executor=executor
    )
    assert not hit
    np.testing.assert_array_equal(got, expected)


def test_training_computes_its_feature_cache_on_an_executor(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    import yaml
    from test_trainer import run_config

    cfg = run_config(tiny_manifest, tmp_path, trainer={"epochs": 2, "executor": "local"})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "c.yaml"), "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "best.pt").is_file()


@pytest.mark.parametrize("name", ["local", "ray"])
def test_predict_and_evaluate_on_an_executor_give_the_same_numbers(
    name: str, best: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    import json

    images = sorted(str(p) for p in (tiny_manifest.parent / "images").glob("*.png"))[:20]
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    plain = json.loads(run("predict", str(best), *images, "--format", "json"))
    spread = json.loads(run("predict", str(best), *images, "--format", "json", "--executor", name))
    assert [r["predicted_ssim"] for r in spread] == [r["predicted_ssim"] for r in plain]
    run("evaluate", str(best), "--data", str(tiny_manifest), "--out", str(tmp_path / "a"))
    cache = tmp_path / "cold-cache"  # the features are not cached yet: the executor computes them
    result = runner.invoke(
        cli,
        [
            "evaluate",
            str(best),
            "--data",
            str(tiny_manifest),
            "--out",
            str(tmp_path / "b"),
            "--executor",
            name,
        ],
        env={"QP_CACHE_DIR": str(cache)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())["metrics"]
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())["metrics"]
    assert a["mae"] == pytest.approx(b["mae"], abs=1e-7) and a["rows"] == b["rows"]
    assert any(cache.rglob("*.npy"))


def test_a_killed_ray_driver_resumes_to_the_local_dataset(tmp_path: Path) -> None:
    """kill -9 of the driver mid-run loses nothing: the rerun finishes the same manifest."""
    import signal
    import time

    import psutil
    from test_labeler import QP

    make_inputs(tmp_path / "in", 120)
    base = [QP, "data", "label", str(tmp_path / "in"), "--track", "random", "--workers", "2", "-q"]
    reference = subprocess.run([*base, "--out", str(tmp_path / "ref")], capture_output=True)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "out"
    manifest = out / "manifest.csv"
    driver = subprocess.Popen(
        [*base, "--out", str(out), "--executor", "ray"], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if manifest.exists() and len(manifest.read_text().splitlines()) > 20:
            break
        time.sleep(0.05)
    tree = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    partial = len(manifest.read_text().splitlines()) - 1
    assert 20 <= partial < 120, "the run finished before it could be killed"
    resumed = subprocess.run(
        [*base, "--out", str(out), "--executor", "ray"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert manifest.read_bytes() == (tmp_path / "ref" / "manifest.csv").read_bytes()
    # The private Ray's workers, raylet and GCS go with their driver. Its two agents
    # notice a minute later (Ray's own watcher): end them here rather than wait.
    _, alive = psutil.wait_procs(tree, timeout=15)
    assert {p.name() for p in alive} <= {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}
    for process in alive:
        process.kill()
