"""The Python API that mirrors the CLI: ``qpcore.train`` and ``qpcore.create``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_trainer import run_config

import qpcore
from qpcore import ConfigError


def test_train_runs_a_config_mapping_with_overrides_into_a_chosen_folder(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    cfg = run_config(tiny_manifest, tmp_path)
    out = tmp_path / "chosen"
    result = qpcore.train(cfg, ["trainer.epochs=2"], out=out)
    assert result.run_dir == out
    assert result.results["epochs"] == 2
    assert (
        json.loads((out / "results.json").read_text())["best_epoch"]
        == (result.results["best_epoch"])
    )
    assert result.best == out / "best.pt"
    predictor = result.predictor()
    first = sorted((tiny_manifest.parent / "images").glob("*.png"))[0]
    assert 0.0 <= float(predictor.predict([first])[0]) <= 1.0


def test_train_reports_a_bad_override_with_its_path(tiny_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.epochs"):
        qpcore.train(run_config(tiny_manifest, tmp_path), ["trainer.epochs=0"])


def test_create_builds_components_a_plain_torch_loop_can_use() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    loss_fn = qpcore.create("loss", "huber", delta=0.05)
    optimizer = qpcore.create("optimizer", "adamw", model.parameters(), lr=0.05)
    scheduler = qpcore.create("scheduler", "cosine", optimizer, epochs=20, steps_per_epoch=1)
    x = torch.randn(64, 4)
    y = torch.sigmoid(x @ torch.tensor([0.5, -0.3, 0.2, 0.1]))
    first = last = None
    for _ in range(20):
        optimizer.zero_grad()
        loss = loss_fn(model(x).squeeze(1), y)
        loss.backward()
        optimizer.step()
        scheduler.step_epoch({})
        value = float(loss.detach())
        first = value if first is None else first
        last = value
    assert first is not None and last is not None and last < first / 2
    assert optimizer.param_groups[0]["lr"] < 0.05  # the schedule moved it


def test_create_validates_params_as_a_config_entry_is() -> None:
    with pytest.raises(ConfigError, match=r"loss\.delta"):
        qpcore.create("loss", "huber", delta="wide")
    with pytest.raises(ConfigError, match=r"loss\.nope"):
        qpcore.create("loss", "huber", nope=1)
    with pytest.raises(ConfigError, match="Unknown loss 'hubber'"):
        qpcore.create("loss", "hubber")
    with pytest.raises(qpcore.QPError, match="unknown kind"):
        qpcore.create("lossy", "huber")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parameters to optimise"):
        qpcore.create("optimizer", "adamw", lr=0.1)
