"""Loss landscapes (qpcore.landscape, ``qp landscape``) of a tiny run trained on
real labelled data: filter-normalised directions, the centre as the trainer
scored it, reproducibility, the files and the refusals."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_trainer import run_config

import qpcore
from qpcore.build import build_loss
from qpcore.checkpoint import load_checkpoint
from qpcore.cli import cli
from qpcore.errors import QPError
from qpcore.feature_cache import model_features
from qpcore.landscape import (
    Landscape,
    contour_levels,
    draw_1d,
    draw_2d,
    filter_normalized_direction,
    head_directions,
    loss_landscape,
    read_landscape,
    summarise,
)
from qpcore.loss_output import split_loss_output
from qpcore.predictor import Predictor, load_predictor
from qpcore.registry import default_registry
from qpcore.restore import rebuild_config
from qpcore.training_data import build_dataset, load_splits
from qpcore.validate import resolve_config

#: Small enough to keep the file fast, odd as the module requires.
STEPS, GRID = 7, 5


@pytest.fixture(scope="module")
def run(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the combined loss (a mapping output, batch-wise terms) with a
    batch-norm head, trained long enough to sit in a basin."""
    folder = tmp_path_factory.mktemp("landscape-run")
    cfg = run_config(
        tiny_manifest,
        folder,
        loss="combined",
        model={
            "backbone": {"name": "vectorizer", "size": 64},
            "features": [{"name": "image_stats", "size": 64}],
            "head": {"hidden": [16, 8], "dropout": 0.1, "batch_norm": True},
        },
        trainer={"epochs": 12, "batch_size": 8, "num_threads": 1},
    )
    with pytest.MonkeyPatch.context() as patch:  # module scope: _private_cache is not active
        patch.setenv("QP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qp-cache"))
        result = qpcore.train(cfg, out=folder / "run")
    assert result.best is not None
    return result.run_dir


@pytest.fixture(scope="module")
def landscape(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Landscape:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qp-cache"))
        return loss_landscape(run, steps=STEPS, grid=STEPS, seed=0)


def trained_head(run: Path) -> torch.nn.Module:
    predictor = load_predictor(run / "best.pt")
    assert isinstance(predictor, Predictor)
    return predictor.model.head


def test_directions_are_filter_normalised_and_leave_1d_parameters_alone(run: Path) -> None:
    head = trained_head(run)
    first, second = head_directions(head, seed=3, count=2)
    matrices = 0
    for name, theta in head.named_parameters():
        d = first[name]
        assert d.shape == theta.shape
        if theta.dim() < 2:  # biases and batch-norm weights: not moved
            assert torch.count_nonzero(d) == 0, name
            continue
        matrices += 1
        want = theta.detach().reshape(len(theta), -1).norm(dim=1)
        got = d.reshape(len(d), -1).norm(dim=1)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        assert not torch.allclose(first[name], second[name])
    assert matrices == 3  # two hidden Linear layers and the output one
    # The first direction does not depend on how many are drawn after it.
    (alone,) = head_directions(head, seed=3, count=1)
    assert all(torch.equal(alone[n], first[n]) for n in first)


def test_filter_normalisation_treats_every_leading_index_as_one_filter() -> None:
    """A conv-shaped tensor [out, in, k, k]: each output filter gets its norm."""
    theta = torch.arange(1.0, 1.0 + 2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    d = filter_normalized_direction({"w": theta, "b": torch.ones(2)}, torch.Generator())
    norms = d["w"].reshape(2, -1).norm(dim=1)
    torch.testing.assert_close(norms, theta.reshape(2, -1).norm(dim=1))
    assert torch.equal(d["b"], torch.zeros(2))


def rows_of(run: Path) -> dict[str, int]:
    """Rows per split as the run recorded them (val and test in results.json)."""
    results = json.loads((run / "results.json").read_text())
    val, test = results["val"]["rows"], results["test"]["rows"]
    return {"train": 40 - val - test, "val": val, "test": test}


def direct_loss(run: Path, split: str) -> float:
    """The run's loss of its best weights on ``split``, computed the plain way:
    the model's own prediction path, the trainer's batches in row order."""
    file = run / "best.pt"
    meta, _ = load_checkpoint(file)
    registry = default_registry()
    cfg = resolve_config(rebuild_config(meta, file), registry)
    rows = load_splits(cfg, build_dataset(cfg))[split]
    predictor = load_predictor(file)
    assert isinstance(predictor, Predictor)
    model = predictor.model.eval()
    features, _ = model_features(model.backbones, [s.image for s in rows.samples], progress=False)
    loss = build_loss(cfg).eval()
    loss.set_epoch(meta.epoch)
    total, count = 0.0, 0
    with torch.no_grad():
        for index in torch.arange(len(rows)).split(cfg.trainer.batch_size):
            pred = model.predict_features(features[index], rows.params[index])
            value, _ = split_loss_output(loss(pred, rows.labels[index]))
            total += float(value) * len(index)
            count += len(index)
    return total / count


def test_the_centre_is_the_trained_model_s_own_loss(run: Path, landscape: Landscape) -> None:
    centre = landscape.losses[STEPS // 2]
    assert landscape.alphas[STEPS // 2] == 0.0
    assert centre == pytest.approx(direct_loss(run, "val"), abs=1e-5)
    # ... and the val_loss the trainer recorded for the checkpoint's epoch.
    assert landscape.recorded_loss is not None
    assert centre == pytest.approx(landscape.recorded_loss, abs=1e-5)
    assert landscape.summary_1d["centre_loss"] == centre
    assert landscape.data_matches_run is True and landscape.notes == []
    assert landscape.loss == "combined" and landscape.split == "val"
    assert landscape.rows == rows_of(run)["val"] and landscape.batch_size == 8
    assert {"layers.0.bias", "layers.1.weight", "layers.1.bias"} <= set(landscape.ignored)


def test_the_2d_grid_shares_the_centre_and_the_first_direction(landscape: Landscape) -> None:
    grid = np.array(landscape.grid)
    c = STEPS // 2
    assert grid.shape == (STEPS, STEPS)
    assert grid[c, c] == landscape.losses[c]
    assert landscape.summary_2d["centre_loss"] == landscape.summary_1d["centre_loss"]
    # beta = 0 is the 1-D line: d1 is the same direction in both.
    np.testing.assert_allclose(grid[:, c], landscape.losses, rtol=1e-6, atol=1e-7)
    assert np.isfinite(grid).all()


def test_a_trained_model_sits_low_on_its_training_rows(run: Path) -> None:
    """A full filter-norm step either way costs the model it trained; the
    rows it fitted make this reliable (the few val rows would be noise)."""
    found = loss_landscape(run, split="train", steps=STEPS, grid=3)
    line = found.summary_1d
    assert found.split == "train" and found.rows == rows_of(run)["train"]
    assert found.losses[0] > line["centre_loss"] and found.losses[-1] > line["centre_loss"]
    assert line["max_rise_span"] > 0
    assert line["centre_loss"] == pytest.approx(direct_loss(run, "train"), abs=1e-5)


def test_same_seed_same_landscape_other_seed_another(run: Path, landscape: Landscape) -> None:
    again = loss_landscape(run, steps=STEPS, grid=STEPS, seed=0)
    assert again.losses == landscape.losses and again.grid == landscape.grid
    other = loss_landscape(run, steps=STEPS, grid=STEPS, seed=1)
    assert other.losses[STEPS // 2] == landscape.losses[STEPS // 2]
    assert other.losses != landscape.losses and other.grid != landscape.grid


def test_a_loss_that_learns_weights_gets_them_from_the_run(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    """best.pt holds the model only: uncertainty weighting's learned log
    variances come from last.pt, and a note says so."""
    cfg = run_config(
        tiny_manifest,
        tmp_path,
        loss={"name": "combined", "weighting": "uncertainty"},
        trainer={"epochs": 2, "batch_size": 8, "num_threads": 1},
    )
    result = qpcore.train(cfg, out=tmp_path / "run")
    found = loss_landscape(result.run_dir, steps=3, grid=3)
    assert any("last.pt" in note for note in found.notes), found.notes
    _, payload = load_checkpoint(result.run_dir / "last.pt")
    learned = payload["training"]["loss"]
    assert learned and any(float(v) != 0 for v in learned.values())
    from_last = loss_landscape(result.run_dir / "last.pt", steps=3, grid=3)
    assert from_last.notes == [] and from_last.recorded_loss is not None
    assert from_last.losses[1] == pytest.approx(from_last.recorded_loss, abs=1e-5)


def test_summaries_quantify_sharpness() -> None:
    alphas = np.linspace(-1, 1, 9)  # step 0.25
    line = summarise(alphas, np.array([5.0, 3.0, 2.0, 1.5, 1.0, 0.9, 2.0, 4.0, math.nan]))
    assert line["centre_loss"] == 1.0 and line["min_loss"] == 0.9
    assert line["argmin"] == 5 and line["argmin_alpha"] == 0.25
    assert line["centre_is_minimum"] is False and line["non_finite"] == 1
    assert line["max_rise_near"] == pytest.approx(0.5)  # 1.5 at alpha -0.25
    assert line["max_rise_span"] == pytest.approx(4.0)
    assert line["relative_rise_span"] == pytest.approx(4.0)
    bowl = summarise(alphas, np.add.outer(alphas**2, alphas**2))
    assert bowl["argmin"] == [4, 4] and bowl["centre_is_minimum"] is True
    assert bowl["max_rise_near"] == pytest.approx(0.125) and bowl["max_rise_span"] == 2.0


def test_json_is_strict_and_reads_back(landscape: Landscape, tmp_path: Path) -> None:
    broken = Landscape(**{**landscape.__dict__, "losses": [math.nan, *landscape.losses[1:]]})
    text = broken.to_json()
    assert "NaN" not in text and json.loads(text)["losses"][0] is None
    (tmp_path / "landscape.json").write_text(text)
    back = read_landscape(tmp_path / "landscape.json")
    assert math.isnan(back.losses[0]) and back.losses[1:] == landscape.losses[1:]
    assert back.grid == landscape.grid and back.summary_1d == landscape.summary_1d
    with pytest.raises(QPError, match="missing"):
        Landscape.from_dict({"losses": []})


def test_figures_are_pngs_even_with_holes_or_a_flat_surface(landscape: Landscape) -> None:
    holes = [[math.nan, *row[1:]] for row in landscape.grid]
    flat = [[1.0] * len(row) for row in landscape.grid]
    for drawn in (
        draw_1d(landscape),
        draw_2d(landscape),
        draw_2d(Landscape(**{**landscape.__dict__, "grid": holes})),
        draw_2d(Landscape(**{**landscape.__dict__, "grid": flat})),
    ):
        with Image.open(io.BytesIO(drawn)) as image:
            assert image.format == "PNG" and image.size[0] > 200


def test_contour_levels_keep_detail_on_a_basin_floor() -> None:
    x = np.linspace(-1, 1, 21)
    steep = np.exp(4 * np.add.outer(x**2, x**2))  # most of it near the floor
    levels = contour_levels(steep)
    assert levels[0] == steep.min() and levels[-1] == pytest.approx(steep.max())
    gaps = np.diff(levels)
    assert (gaps > 0).all() and gaps[0] < gaps[-1] / 10
    even = np.diff(contour_levels(np.add.outer(x, x)))
    np.testing.assert_allclose(even, even[0])
    assert np.diff(contour_levels(np.ones((3, 3)))).item() > 0


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_command_writes_json_and_two_figures(run: Path) -> None:
    code, out, err = invoke("landscape", str(run), "--grid", "5", "--quiet")
    assert code == 0, out + err
    folder = run / "landscape"
    assert f"wrote {folder / 'landscape.json'}" in out
    assert "combined loss at the trained weights" in out and "max rise along d1" in out
    found = json.loads((folder / "landscape.json").read_text())
    assert len(found["alphas"]) == 41 and len(found["grid"]) == 5
    assert found["seed"] == 0 and found["split"] == "val" and found["span"] == 1.0
    for name in ("landscape_1d.png", "landscape_2d.png"):
        with Image.open(folder / name) as image:
            image.verify()
    other = run / "elsewhere"
    code, out, err = invoke(
        "landscape", str(run / "last.pt"), "--steps", "5", "--grid", "3", "--split", "test",
        "--span", "0.5", "--seed", "2", "--out", str(other), "--quiet",
    )  # fmt: skip
    assert code == 0, out + err
    found = json.loads((other / "landscape.json").read_text())
    assert found["checkpoint"].endswith("last.pt") and found["split"] == "test"
    assert found["alphas"] == [-0.5, -0.25, 0.0, 0.25, 0.5] and found["seed"] == 2


def test_the_command_refuses_what_it_cannot_use(run: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-run"
    code, _, err = invoke("landscape", str(missing))
    assert code == 2 and f"{missing}: no such run folder or checkpoint" in err
    code, _, err = invoke("landscape", str(tmp_path))
    assert code == 2 and f"{tmp_path}: no best.pt" in err
    for flag, value in (("--steps", "2"), ("--steps", "4"), ("--grid", "1")):
        code, _, err = invoke("landscape", str(run), flag, value, "--quiet")
        assert code == 2 and f"{flag[2:]} must be an odd number >= 3" in err, err
    code, _, err = invoke("landscape", str(run), "--span", "0", "--quiet")
    assert code == 2 and "span must be a positive number" in err
    code, _, err = invoke("landscape", str(run), "--split", "holdout")
    assert code == 2 and "holdout" in err
    with pytest.raises(QPError, match="split must be one of"):
        loss_landscape(run, split="holdout")
    assert not (tmp_path / "landscape").exists()
