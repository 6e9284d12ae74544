"""The trainer on real (tiny) labelled data: metrics, checkpoints, resume, stops."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from qpcore import QPError, hookimpl
from qpcore.build import build_model
from qpcore.checkpoint import load_checkpoint
from qpcore.data.manifest import read_manifest
from qpcore.data.protocol import load_image
from qpcore.epoch_metrics import EPOCH_METRICS
from qpcore.feature_cache import cached_features
from qpcore.predictor import load_predictor
from qpcore.registry import Registry, default_registry
from qpcore.run import Run
from qpcore.testing import RecordingMonitor
from qpcore.trainer import Trainer
from qpcore.validate import resolve_config

from conftest import make_distribution


def run_config(manifest: Path, out: Path, **sections: Any) -> dict[str, Any]:
    """A small run of the default model's components on ``manifest``."""
    cfg: dict[str, Any] = {
        "data": {
            "name": "manifest",
            "path": str(manifest),
            "val_fraction": 0.25,
            "test_fraction": 0.25,
        },
        "model": {
            "backbone": {"name": "vectorizer", "size": 64},
            "features": [{"name": "image_stats", "size": 64}],
            "head": {"hidden": [32, 16], "dropout": 0.1},
        },
        "loss": "mse",
        "optimizer": {"name": "adam", "lr": 1e-2},
        "scheduler": None,
        "trainer": {"epochs": 3, "batch_size": 8, "num_threads": 1},
        "output": {"dir": str(out), "name": "run"},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def fit(cfg: dict[str, Any], registry: Registry | None = None, **kwargs: Any) -> Trainer:
    registry = registry or default_registry()
    resolved = resolve_config(cfg, registry)
    trainer = Trainer(resolved, registry, Path(cfg["output"]["dir"]) / "run", quiet=True, **kwargs)
    trainer.results = trainer.fit()
    return trainer


def history(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_day14_integration(tiny_manifest: Path, tmp_path: Path) -> None:
    """The seed's end-to-end check: 5 epochs with the default components, then
    predictions from the saved checkpoint that match the trainer's own scores."""
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        loss={"name": "combined", "ranking_weight": 0.1, "correlation_weight": 0.1},
        scheduler={"name": "reduce_on_plateau", "monitor": "val_loss", "patience": 2},
        trainer={"epochs": 5, "batch_size": 8, "num_threads": 1},
        evaluators=["regression", {"name": "bands", "edges": [0.9]}],
    )
    monitor = RecordingMonitor()
    trainer = fit(cfg, monitors=[monitor])
    run = trainer.run_dir
    rows = history(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    for row in rows:
        assert set(EPOCH_METRICS) | {"epoch", "lr", "time_s", "timestamp"} <= set(row)
        assert all(row[k] is None or np.isfinite(row[k]) for k in EPOCH_METRICS)
        # The combined loss's terms and weights are logged for both splits; with
        # weights fixed within an epoch, the total is their weighted sum.
        for split in ("train", "val"):
            terms = ("ssim", "ranking", "correlation")
            parts = [row[f"{split}_loss_weight_{t}"] * row[f"{split}_loss_{t}"] for t in terms]
            assert row[f"{split}_loss"] == pytest.approx(sum(parts), rel=1e-5)
    assert {p.name for p in run.iterdir()} >= {
        "last.pt",
        "best.pt",
        "metrics.jsonl",
        "results.json",
        "config.yaml",
    }
    again = resolve_config(yaml.safe_load((run / "config.yaml").read_text()), default_registry())
    assert again.to_dict() == trainer.cfg.to_dict()
    results = json.loads((run / "results.json").read_text())
    assert results["feature_cache"] is True and results["epochs"] == 5
    assert results["val"]["rows"] == len(trainer.splits["val"])
    # The config's evaluators ran on the test split, with the best weights.
    report = json.loads((run / "eval" / "metrics.json").read_text())
    assert results["evaluation"] == str(run / "eval" / "metrics.json")
    assert report["split"] == "test" and report["metrics"]["rows"] == results["test"]["rows"]
    assert report["metrics"]["mae"] == pytest.approx(results["test"]["mae"], abs=1e-6)
    assert "band_0_0.9_count" in report["metrics"]
    # ... and the HTML report beside it shows this run's 5 epochs and bands.
    page = (run / "eval" / "report.html").read_text()
    assert "5 epochs, from the run" in page and "band_0_0.9" in page
    assert (run / "eval" / "plots" / "training_curves.png").stat().st_size > 1000
    # The predictor (uncached path: images decoded, features computed) agrees with
    # the trainer's scores of the best weights (cached path).
    predictor = load_predictor(run / "best.pt")
    val = trainer.splits["val"].samples
    pred = predictor.predict([s.image for s in val])
    assert ((pred >= 0) & (pred <= 1)).all()
    mae = float(np.abs(pred - np.array([s.ssim for s in val])).mean())
    assert mae == pytest.approx(results["val"]["mae"], abs=1e-6)
    assert predictor.meta.label_protocol == "vtracer-resvg-ssim/v1"
    names = [e[0] for e in monitor.events]
    assert names[0] == "fit_start" and names[-1] == "fit_end"
    assert names.count("epoch_end") == 5 and "batch_end" in names
    assert monitor.results is not None and monitor.results["best_epoch"] == results["best_epoch"]
    # The trainer is the Run that monitors are promised.
    promised = set(Run.__annotations__) | {
        n for n in vars(Run) if not n.startswith("_") and callable(vars(Run)[n])
    }
    assert {n for n in promised if not hasattr(trainer, n)} == set()


class EventOrder:
    """Records the order of every training event; fails on request in one."""

    def __init__(self, fail_at_batch: int | None = None) -> None:
        self.seen: list[str] = []
        self.fail_at_batch = fail_at_batch
        self.error: BaseException | None = None

    @hookimpl
    def qp_on_fit_start(self, run: Run) -> None:
        self.seen.append(f"fit_start@{run.state.epoch}")

    @hookimpl
    def qp_on_epoch_start(self, run: Run, epoch: int) -> None:
        self.seen.append(f"epoch_start {epoch}")

    @hookimpl
    def qp_on_batch_end(self, run: Run, epoch: int, batch: int, metrics: Any) -> None:
        if batch == 0:
            self.seen.append(f"batch_end {epoch}")
        if self.fail_at_batch is not None and epoch == 2 and batch == self.fail_at_batch:
            raise RuntimeError("a monitor broke")

    @hookimpl
    def qp_on_epoch_end(self, run: Run, epoch: int, metrics: Any) -> None:
        self.seen.append(f"epoch_end {epoch}")

    @hookimpl
    def qp_on_fit_end(self, run: Run, results: Any) -> None:
        self.seen.append(f"fit_end {results['epochs']}")

    @hookimpl
    def qp_on_exception(self, run: Run, error: BaseException) -> None:
        self.seen.append("exception")
        self.error = error


def test_event_hooks_fire_in_order_and_an_error_reaches_qp_on_exception(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    cfg = run_config(tiny_manifest, tmp_path, trainer={"epochs": 2, "batch_size": 8})
    order = EventOrder()
    fit(cfg, monitors=[order])
    expected = ["fit_start@0"] + [
        f"{event} {epoch}"
        for epoch in (1, 2)
        for event in ("epoch_start", "batch_end", "epoch_end")
    ]
    assert order.seen == [*expected, "fit_end 2"] and order.error is None

    broken = EventOrder(fail_at_batch=1)
    cfg["output"]["dir"] = str(tmp_path / "again")
    with pytest.raises(RuntimeError, match="a monitor broke"):
        fit(cfg, monitors=[broken])
    assert broken.seen[-1] == "exception" and "fit_end 2" not in broken.seen
    assert isinstance(broken.error, RuntimeError)


def test_built_in_monitors_use_only_what_the_run_protocol_promises() -> None:
    """``qpcore.Run`` is the plugin API of ``run``: a built-in monitor that
    reaches past it would teach plugin authors to do the same."""
    import re

    promised = set(Run.__annotations__) | set(vars(Run))
    used: dict[str, set[str]] = {}
    for path in (Path(__file__).parents[1] / "plugins" / "qp_monitors").glob("*.py"):
        for name in re.findall(r"\brun\.(\w+)", path.read_text()):
            used.setdefault(name, set()).add(path.name)
    assert used, "no monitor reads the run: the pattern is wrong"
    assert {n: f for n, f in used.items() if n not in promised} == {}


def test_cached_features_equal_the_uncached_path(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QP_CACHE_DIR", str(tmp_path / "cache"))
    registry = default_registry()
    cfg = resolve_config(run_config(tiny_manifest, tmp_path), registry)
    model = build_model(cfg).eval()
    paths = [s.image for s in read_manifest(tiny_manifest).samples][:12]
    root = tmp_path / "cache"
    for backbone in model.backbones:
        cached, hit = cached_features(backbone, paths, root)
        assert not hit
        direct = torch.stack([backbone(backbone.preprocess(load_image(p))[None])[0] for p in paths])
        np.testing.assert_allclose(cached, direct.numpy(), rtol=1e-6, atol=1e-6)
        # Rows repeating an image (random track) share its features: still a hit.
        again, hit = cached_features(backbone, [*paths, paths[0]], root)
        assert hit and np.array_equal(again[-1], again[0])
    # A changed image is never served stale features.
    image = paths[0].read_bytes()
    copy = tmp_path / "copy.png"
    copy.write_bytes(image)
    first, _ = cached_features(model.backbones[1], [copy], root)
    from PIL import Image

    Image.new("RGB", (64, 64), (0, 0, 0)).save(copy)
    second, hit = cached_features(model.backbones[1], [copy], root)
    assert not hit and not np.array_equal(first, second)


def test_overlapping_image_sets_compute_each_image_once(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qpcore.feature_cache as feature_cache

    registry = default_registry()
    backbone = build_model(resolve_config(run_config(tiny_manifest, tmp_path), registry))
    backbone = backbone.backbones[1]
    paths = [s.image for s in read_manifest(tiny_manifest).samples][:12]
    root = tmp_path / "cache"
    computed: list[int] = []
    real = feature_cache.compute_features

    def counting(backbone: Any, sources: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        computed.append(len(sources))
        return real(backbone, sources, *args, **kwargs)

    monkeypatch.setattr(feature_cache, "compute_features", counting)
    first, _ = cached_features(backbone, paths[:8], root)
    both, hit = cached_features(backbone, paths[4:], root)  # 4 shared, 4 new
    assert computed == [8, 4] and not hit
    np.testing.assert_array_equal(both[:4], first[4:])
    subset, hit = cached_features(backbone, paths[2:6], root)  # all known: nothing computed
    assert computed == [8, 4] and hit
    np.testing.assert_array_equal(subset, first[2:6])
    # A damaged stored table is recomputed, never read.
    for table in root.rglob("*.npy"):
        table.write_bytes(b"junk")
    again, hit = cached_features(backbone, paths[1:3], root)
    assert computed == [8, 4, 2] and not hit
    np.testing.assert_allclose(again, first[1:3], rtol=1e-6)


def test_resume_after_a_kill_ends_with_the_same_weights(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        model={
            "backbone": {"name": "small_cnn", "width": 8, "blocks": 3, "input_size": 96},
            "features": [],
            "head": {"hidden": [16], "dropout": 0.2},
        },
        trainer={"epochs": 30, "batch_size": 4, "num_threads": 1, "checkpoint": {"every": 0}},
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(name: str, *extra: str) -> subprocess.Popen[bytes]:
        cfg["output"]["name"] = name
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        args = extra or (str(path),)
        return subprocess.Popen(
            [sys.executable, "-m", "qpcore", "train", *args, "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    killed_dir = tmp_path / "killed"
    proc = start("killed")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        metrics = killed_dir / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = len(history(killed_dir))
    assert 3 <= done < 30
    resumed = start("killed", "--resume", str(killed_dir))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    straight = start("straight")
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()

    _, a = load_checkpoint(killed_dir / "last.pt")
    _, b = load_checkpoint(tmp_path / "straight" / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    strip = lambda rows: [  # noqa: E731
        {k: v for k, v in r.items() if k not in ("time_s", "timestamp")} for r in rows
    ]
    assert strip(history(killed_dir)) == strip(history(tmp_path / "straight"))


def test_early_stopping_and_periodic_checkpoints(tiny_manifest: Path, tmp_path: Path) -> None:
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        trainer={
            "epochs": 10,
            "batch_size": 8,
            # Nothing after the first epoch is a big enough improvement.
            "early_stopping": {"patience": 2, "min_delta": 10.0},
            "checkpoint": {"every": 1, "keep_last": 2},
        },
    )
    trainer = fit(cfg)
    assert trainer.results["epochs"] == 4  # best at 1, then 3 epochs without improvement
    assert trainer.results["stop_reason"].startswith("early stop")
    assert sorted(p.name for p in trainer.run_dir.glob("epoch-*.pt")) == [
        "epoch-0003.pt",
        "epoch-0004.pt",
    ]


def test_accumulation_takes_one_step_per_group(tiny_manifest: Path, tmp_path: Path) -> None:
    # Batches of 4 grouped by 2: ceil(ceil(rows / 4) / 2) optimizer steps each epoch
    # (a lone last row is left out under BatchNorm).
    cfg = run_config(
        tiny_manifest, tmp_path, trainer={"epochs": 2, "batch_size": 4, "accumulate": 2}
    )
    trainer = fit(cfg)
    rows = len(trainer.splits["train"])
    usable = rows - 1 if rows % 4 == 1 else rows
    assert rows >= 17
    state = trainer.optimizer.state_dict()["state"]
    steps_per_epoch = math.ceil(math.ceil(usable / 4) / 2)
    assert {int(s["step"]) for s in state.values()} == {2 * steps_per_epoch}


NAN_LOSS = """
import torch
from pydantic import Field
from qpcore import LossSpec, Params, hookimpl

class NanParams(Params):
    from_epoch: int = Field(2, ge=1)

class NanAfter(torch.nn.Module):
    def __init__(self, params):
        super().__init__()
        self.from_epoch, self.epoch = params.from_epoch, 1
    def set_epoch(self, epoch):
        self.epoch = epoch
    def forward(self, pred, target):
        loss = ((pred - target) ** 2).mean()
        return loss * float("nan") if self.epoch >= self.from_epoch else loss

@hookimpl
def qp_register_losses():
    return [LossSpec("nan_after", NanAfter, NanParams, "NaN from an epoch on.")]
"""


@pytest.fixture
def nan_loss(tmp_path: Path, on_path: Callable[[Path], None]) -> None:
    """Installs the ``nan_after`` loss plugin for one test."""
    dist = {"qp_nan": NAN_LOSS}
    on_path(make_distribution(tmp_path / "nan", "qp-nan", "1.0", dist, {"qp_nan": "qp_nan"}))


def test_non_finite_loss_stops_and_keeps_the_last_good_weights(
    tiny_manifest: Path, tmp_path: Path, nan_loss: None
) -> None:
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        loss={"name": "nan_after", "from_epoch": 3},
        trainer={"epochs": 6, "batch_size": 8},
    )
    trainer = fit(cfg)
    assert trainer.results["epochs"] == 2
    assert "non-finite" in trainer.results["stop_reason"]
    meta, payload = load_checkpoint(trainer.run_dir / "last.pt")
    assert meta.epoch == 2
    assert all(torch.isfinite(t).all() for t in payload["model"].values())
    assert len(history(trainer.run_dir)) == 3  # the bad epoch is logged, not saved
    assert history(trainer.run_dir)[-1]["train_loss"] is None  # JSON null, not NaN


def test_non_finite_first_epoch_keeps_nothing_and_scores_nothing(
    tiny_manifest: Path, tmp_path: Path, nan_loss: None
) -> None:
    cfg = run_config(tiny_manifest, tmp_path, loss={"name": "nan_after", "from_epoch": 1})
    trainer = fit(cfg)
    assert "no weights kept" in trainer.results["stop_reason"]
    results = json.loads((trainer.run_dir / "results.json").read_text())
    assert "val" not in results and not (trainer.run_dir / "last.pt").exists()


def write_manifest(source: Path, out: Path, rows: int, ssim: float | None = None) -> Path:
    out.mkdir()
    with open(source, newline="") as handle:
        records = list(csv.DictReader(handle))[:rows]
    for record in records:
        record["image"] = str(source.parent / record["image"])
        if ssim is not None:
            record["ssim"] = str(ssim)
    path = out / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


def test_degenerate_datasets_are_refused_clearly(tiny_manifest: Path, tmp_path: Path) -> None:
    constant = write_manifest(tiny_manifest, tmp_path / "constant", 12, ssim=0.9)
    with pytest.raises(QPError, match="constant labels"):
        fit(run_config(constant, tmp_path))
    single = write_manifest(tiny_manifest, tmp_path / "single", 1)
    with pytest.raises(QPError, match="1 row; BatchNorm"):
        fit(
            run_config(
                single,
                tmp_path,
                data={
                    "name": "manifest",
                    "path": str(single),
                    "val_fraction": 0.0,
                    "test_fraction": 0.0,
                },
            )
        )
    with pytest.raises(QPError, match="validation split is empty"):
        fit(
            run_config(
                tiny_manifest,
                tmp_path,
                data={"name": "manifest", "path": str(tiny_manifest), "val_fraction": 0.0},
            )
        )


def test_fewer_rows_than_a_batch_still_train(tiny_manifest: Path, tmp_path: Path) -> None:
    cfg = run_config(tiny_manifest, tmp_path, trainer={"epochs": 2, "batch_size": 64})
    trainer = fit(cfg)
    assert all(
        r["train_pearson"] is None or np.isfinite(r["train_pearson"])
        for r in history(trainer.run_dir)
    )


def test_trainable_backbone_with_augmentation_skips_the_cache(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        model={
            "backbone": {"name": "image_stats", "size": 32},
            "features": [],
            "head": {"hidden": [8]},
        },
        trainer={"epochs": 1, "batch_size": 8, "augment": ["hflip", "vflip"]},
    )
    registry = default_registry()
    trainer = Trainer(resolve_config(cfg, registry), registry, tmp_path / "aug")
    results = trainer.fit()
    assert results["feature_cache"] is False
    assert "feature cache is off" in capsys.readouterr().out


def test_random_track_model_takes_params(random_manifest: Path, tmp_path: Path) -> None:
    cfg = run_config(
        random_manifest,
        tmp_path,
        model={
            "backbone": {"name": "vectorizer", "size": 64, "precisions": [1, 3, 6, 8]},
            "features": [],
            "head": {"hidden": [32], "params_input": True},
        },
        trainer={"epochs": 3, "batch_size": 8},
    )
    trainer = fit(cfg)
    predictor = load_predictor(trainer.run_dir / "last.pt")
    assert predictor.takes_params
    image = trainer.splits["train"].samples[0].image
    values = predictor.predict_settings(image, [{"color_precision": c} for c in (1, 8)])
    assert values.shape == (2,) and values[0] != values[1]
    one = predictor.predict([image], {"color_precision": 8})
    assert one[0] == pytest.approx(values[1], abs=1e-6)


def test_an_early_stopped_run_stays_stopped_when_resumed(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        trainer={
            "epochs": 10,
            "batch_size": 8,
            "early_stopping": {"patience": 1, "min_delta": 10.0},
        },
    )
    first = fit(cfg)
    _, before = load_checkpoint(first.run_dir / "last.pt")
    again = Trainer.resume(first.run_dir, default_registry(), quiet=True)
    results = again.fit()
    _, after = load_checkpoint(first.run_dir / "last.pt")
    assert results["epochs"] == first.results["epochs"] == 3
    assert results["val"] == first.results["val"]
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])


def test_a_cold_and_a_warm_feature_cache_train_the_same_weights(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QP_CACHE_DIR", str(tmp_path / "cold-cache"))
    cold = fit(run_config(tiny_manifest, tmp_path / "a"))  # computes the features
    warm = fit(run_config(tiny_manifest, tmp_path / "b"))  # reads them
    a, b = cold.model.state_dict(), warm.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_weights_that_do_not_fit(tiny_manifest: Path, tmp_path: Path) -> None:
    trainer = fit(run_config(tiny_manifest, tmp_path, trainer={"epochs": 4, "batch_size": 8}))
    last = trainer.run_dir / "last.pt"
    _, payload = load_checkpoint(last)
    del payload["model"]["head.layers.0.weight"]
    torch.save(payload, last)
    with pytest.raises(QPError, match=r"missing \['head\.layers\.0\.weight'\]"):
        Trainer.resume(trainer.run_dir, default_registry(), quiet=True).fit()
    payload["training"] = "nonsense"
    torch.save(payload, last)
    with pytest.raises(QPError, match="damaged training state"):
        Trainer.resume(trainer.run_dir, default_registry(), quiet=True)


def test_batch_of_one_with_batchnorm_is_a_config_error(tiny_manifest: Path, tmp_path: Path) -> None:
    from qpcore import ConfigError

    with pytest.raises(ConfigError, match=r"trainer\.batch_size"):
        resolve_config(
            run_config(tiny_manifest, tmp_path, trainer={"batch_size": 1}), default_registry()
        )


def test_augmented_runs_still_standardise_their_features(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    cfg = run_config(
        tiny_manifest, tmp_path, trainer={"epochs": 1, "batch_size": 8, "augment": ["hflip"]}
    )
    trainer = fit(cfg)
    assert trainer.results["feature_cache"] is False
    assert not torch.equal(trainer.model.feature_std, torch.ones_like(trainer.model.feature_std))


def test_weights_by_reference_are_found_from_any_directory(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    monkeypatch.chdir(tmp_path)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), "w.pth")
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        model={
            "backbone": {"name": "resnet18", "weights": "w.pth", "input_size": 32},
            "features": [],
            "head": {"hidden": [8]},
        },
        trainer={"epochs": 1, "batch_size": 8},
    )
    trainer = fit(cfg)
    _, payload = load_checkpoint(trainer.run_dir / "best.pt")
    assert not any(k.startswith("backbones.0.") for k in payload["model"])  # by reference
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    predictor = load_predictor(trainer.run_dir / "best.pt")
    assert predictor.meta.backbones[0].reference["file"] == str(tmp_path / "w.pth")
    # Other weights at that path: refused, never silently used.
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "w.pth")
    with pytest.raises(QPError, match="have changed"):
        load_predictor(trainer.run_dir / "best.pt")


def test_cache_hits_whatever_the_order_of_the_same_images(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    registry = default_registry()
    model = build_model(resolve_config(run_config(tiny_manifest, tmp_path), registry))
    paths = [s.image for s in read_manifest(tiny_manifest).samples][:10]
    first, hit = cached_features(model.backbones[1], paths, tmp_path / "c")
    again, hit = cached_features(model.backbones[1], paths[::-1], tmp_path / "c")
    assert hit and np.array_equal(again, first[::-1])
