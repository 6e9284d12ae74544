"""Serving: a checkpoint predicts with only what prediction uses installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from test_trainer import run_config

from qpcore.checkpoint import load_checkpoint
from qpcore.cli import cli

from conftest import make_distribution

QP = str(Path(sys.executable).parent / "qp")

# A third-party distribution: a loss (training only) and a backbone (prediction too).
EXTRAS = """
import torch
from qpcore import BackboneSpec, LossSpec, hookimpl
from qp_backbones.computed import build_stats
from qp_backbones.params import StatsParams

class Pinball(torch.nn.Module):
    def forward(self, pred, target):
        error = target - pred
        return torch.maximum(0.5 * error, -0.5 * error).mean()

@hookimpl
def qp_register_losses():
    return [LossSpec("tp_pinball", lambda p: Pinball(), summary="Pinball loss.")]

@hookimpl
def qp_register_backbones():
    return [BackboneSpec("tp_stats", build_stats, StatsParams, "image_stats, renamed.")]
"""


@pytest.fixture
def extras(tmp_path: Path, on_path: Callable[[Path], None]) -> Path:
    root = make_distribution(
        tmp_path / "site", "qp-tp-extras", "2.3", {"qp_tp_extras": EXTRAS}, {"tp": "qp_tp_extras"}
    )
    on_path(root)
    return root


def train(manifest: Path, out: Path, **sections: object) -> Path:
    cfg = run_config(manifest, out, loss="tp_pinball", **sections)
    (out / "run.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(cli, ["train", str(out / "run.yaml"), "-q"])
    assert result.exit_code == 0, result.output
    return out / "run" / "best.pt"


def without_plugin(*args: str) -> subprocess.CompletedProcess[str]:
    """``qp ARGS`` in a process that cannot see the third-party distribution."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([QP, *args], capture_output=True, text=True, env=env)


def test_a_model_trained_with_a_plugin_loss_predicts_without_it(
    extras: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    best = train(tiny_manifest, tmp_path)
    meta, _ = load_checkpoint(best)
    loss = meta.components["loss"]
    assert (loss.name, loss.distribution, loss.version) == ("tp_pinball", "qp-tp-extras", "2.3")
    assert meta.components["model.backbone"].distribution == "qpcore"
    images = sorted(str(p) for p in (tiny_manifest.parent / "images").glob("*.png"))[:5]
    here = CliRunner().invoke(cli, ["predict", str(best), *images, "--format", "json"])
    assert here.exit_code == 0, here.output
    there = without_plugin("predict", str(best), *images, "--format", "json")
    assert there.returncode == 0, there.stderr
    assert json.loads(there.stdout) == json.loads(here.stdout)
    evaluated = without_plugin(
        "evaluate", str(best), "--data", str(tiny_manifest), "--out", str(tmp_path / "e")
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert (tmp_path / "e" / "report.html").is_file()


def test_a_missing_backbone_names_the_distribution_to_install(
    extras: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    best = train(tiny_manifest, tmp_path, model={"features": [{"name": "tp_stats", "size": 64}]})
    image = next((tiny_manifest.parent / "images").glob("*.png"))
    result = without_plugin("predict", str(best), str(image))
    assert result.returncode == 2, result.stderr
    assert "needs backbone 'tp_stats' (model.features.0), which is not installed" in result.stderr
    assert "pip install 'qp-tp-extras==2.3'" in result.stderr
    assert "Traceback" not in result.stderr


# --- exported models -----------------------------------------------------------


def export(best: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["export", str(best), "--format", "onnx", *args])
    return result.exit_code, result.output


def images_of(manifest: Path) -> list[Path]:
    return sorted((manifest.parent / "images").glob("*.png"))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained on 300 generated images: int8's error is judged on a
    network that has learnt something, as a served one has (random weights
    amplify rounding far more, see docs/serving.md)."""
    out = tmp_path_factory.mktemp("fitted")
    cfg = {
        "data": {"name": "synthetic", "count": 300, "size": 96, "workers": 2},
        "model": {
            "backbone": {"name": "small_cnn", "input_size": 64},
            "head": {"hidden": [64], "dropout": 0.1},
        },
        "trainer": {"epochs": 20, "batch_size": 32},
        "output": {"dir": str(out), "name": "run"},
    }
    (out / "run.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QP_CACHE_DIR", str(out / "cache"))
        result = CliRunner().invoke(cli, ["train", str(out / "run.yaml"), "-q"])
    assert result.exit_code == 0, result.output
    return out / "run" / "best.pt"


def test_an_int8_export_predicts_like_its_checkpoint(
    fitted: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    """The issue's accuracy guard, on images it was not calibrated on:
    max |int8 - fp32| <= 0.01 and Pearson >= 0.999."""
    import numpy as np

    from qpcore import load_predictor

    best = fitted
    out = tmp_path / "model.int8.onnx"
    code, said = export(best, "--quantize", "int8", "--out", str(out))  # its training images
    assert code == 0, said
    assert said.startswith(f"wrote {out} (")
    paths = images_of(tiny_manifest)
    reference = load_predictor(best).predict(paths)
    served = load_predictor(out)
    assert served.meta.config == load_checkpoint(best)[0].config
    got = served.predict(paths)
    assert float(np.abs(got - reference).max()) <= 0.01
    assert float(np.corrcoef(got, reference)[0, 1]) >= 0.999
    assert not np.array_equal(got, reference)  # really quantized: not the float model
    plain = tmp_path / "model.onnx"
    assert export(best, "--out", str(plain))[0] == 0
    np.testing.assert_allclose(load_predictor(plain).predict(paths), reference, atol=1e-5)
    cli_rows = CliRunner().invoke(
        cli, ["predict", str(out), *map(str, paths[:3]), "--format", "json"]
    )
    assert cli_rows.exit_code == 0, cli_rows.output
    assert [r["predicted_ssim"] for r in json.loads(cli_rows.stdout)] == [
        round(float(v), 6) for v in got[:3]
    ]
    evaluated = CliRunner().invoke(
        cli, ["evaluate", str(out), "--data", str(tiny_manifest), "--out", str(tmp_path / "e")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"]
    assert metrics["rows"] == len(paths)


def test_an_export_past_the_tolerance_is_not_written(
    fitted: Path, tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qpcore import cli_train

    monkeypatch.setattr(cli_train, "INT8_TOLERANCE", 0.0)  # any quantization error exceeds it
    out = tmp_path / "model.int8.onnx"
    code, said = export(
        fitted, "--quantize", "int8", "--calibration", str(tiny_manifest), "--out", str(out)
    )
    assert code == 2 and "not written: the export differs from the model by" in said
    assert not out.exists()


def test_int8_of_a_model_without_a_cnn_is_refused(best: Path, tmp_path: Path) -> None:
    """The default model's cost is its numpy features; its head stays float."""
    code, said = export(best, "--quantize", "int8", "--out", str(tmp_path / "m.onnx"))
    assert code == 2 and "nothing to quantize" in said
    assert not (tmp_path / "m.onnx").exists()


def test_an_onnx_file_not_made_by_qp_export_is_refused(
    best: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    import onnx

    out = tmp_path / "model.onnx"
    assert export(best, "--out", str(out))[0] == 0
    code, said = export(out)
    assert code == 2 and "already an export; qp export reads a checkpoint" in said
    model = onnx.load(str(out))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    for name, message in (
        ("bare.onnx", "without qpcore's metadata"),
        ("junk.onnx", "not a readable ONNX model"),
    ):
        image = str(images_of(tiny_manifest)[0])
        result = CliRunner().invoke(cli, ["predict", str(tmp_path / name), image])
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("tolerance", [1e-3, 0.0])
def test_embedded_backbone_weights_are_stored_in_half_precision_when_harmless(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tolerance: float
) -> None:
    import numpy as np
    import torch

    from qpcore import compact, load_predictor

    monkeypatch.setattr(compact, "TOLERANCE", tolerance)  # 0: no rounding is harmless
    cnn = {"name": "small_cnn", "input_size": 64}
    cfg = run_config(tiny_manifest, tmp_path, model={"backbone": cnn, "features": []})
    cfg["trainer"]["epochs"] = 1  # best.pt and last.pt hold the same weights
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "run.yaml"), "-q"])
    assert result.exit_code == 0, result.output
    _, served = load_checkpoint(tmp_path / "run" / "best.pt")
    _, resumable = load_checkpoint(tmp_path / "run" / "last.pt")
    dtypes = {v.dtype for k, v in served["model"].items() if k.startswith("backbones.0.")}
    assert dtypes == ({torch.float16, torch.int64} if tolerance else {torch.float32, torch.int64})
    head = {v.dtype for k, v in served["model"].items() if k.startswith("head.")}
    assert torch.float16 not in head
    assert all(v.dtype != torch.float16 for v in resumable["model"].values())
    paths = images_of(tiny_manifest)
    half = load_predictor(tmp_path / "run" / "best.pt").predict(paths)
    full = load_predictor(tmp_path / "run" / "last.pt").predict(paths)
    assert float(np.abs(half - full).max()) <= 1e-3


# --- SVG size and qp suggest ---------------------------------------------------


@pytest.fixture(scope="module")
def sized(random_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-track model that predicts SSIM and SVG bytes, on real labels."""
    out = tmp_path_factory.mktemp("sized")
    cfg = run_config(
        random_manifest,
        out,
        model={
            "backbone": {"name": "vectorizer_response", "size": 64},
            "features": [{"name": "image_stats", "size": 64}],
            "head": {"hidden": [32], "dropout": 0.0, "params_input": True},
            "targets": ["ssim", "svg_bytes"],
        },
    )
    (out / "run.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QP_CACHE_DIR", str(out / "cache"))
        result = CliRunner().invoke(cli, ["train", str(out / "run.yaml")])
    assert result.exit_code == 0, result.output
    assert "size head: val Pearson on log bytes" in result.output
    results = json.loads((out / "run" / "results.json").read_text())
    assert set(results["size"]) == {"size_pearson_log", "size_median_rel_error"}
    return out / "run" / "best.pt"


def test_the_size_head_is_evaluated_on_recorded_sizes(sized: Path, random_manifest: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(sized), "--data", str(random_manifest)])
    assert result.exit_code == 0, result.output
    pearson = float(result.output.split("size_pearson_log: ")[1].split()[0])
    assert pearson > 0.5  # sizes span orders of magnitude: even a tiny model orders them


def test_suggest_picks_the_smallest_setting_that_clears_the_bar(
    sized: Path, random_manifest: Path
) -> None:
    import numpy as np

    from qpcore import load_predictor
    from qpcore.data.protocol import encode_params, label_pixels, load_image
    from qpcore.suggest import candidate_settings

    images = sorted((random_manifest.parent / "images").glob("*.png"))[:3]
    args = ["suggest", str(sized), *map(str, images), "--format", "json", "--margin", "0"]
    result = CliRunner().invoke(cli, [*args, "--min-ssim", "0.8", "--verify"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    predictor = load_predictor(sized)
    settings = candidate_settings(1000)
    for row, image in zip(rows, images, strict=True):
        assert row["image"] == str(image) and len(row["params"]) == 11
        assert row["candidates"] == 1000
        ssim, size = predictor.score_encoded(
            load_image(image), np.stack([encode_params(s) for s in settings])
        )
        clears = ssim >= 0.8
        if clears.any():
            assert row["cleared"] is True
            assert row["predicted_svg_bytes"] == round(float(size[clears].min()))
        chosen = next(s for s in settings if s.as_dict() == row["params"])
        truth = label_pixels(load_image(image), chosen)
        assert row["true_ssim"] == round(truth.ssim, 6)
        assert row["true_svg_bytes"] == truth.svg_bytes
    best = json.loads(
        CliRunner().invoke(cli, [*args, "--objective", "best", "--min-ssim", "1"]).stdout
    )
    for row, image in zip(best, images, strict=True):
        ssim, _ = predictor.score_settings(image, settings)
        assert row["predicted_ssim"] == pytest.approx(float(ssim.max()), abs=1e-4)
        assert row["cleared"] is False  # nothing predicts an SSIM of 1 plus a margin


def test_suggest_needs_a_model_that_scores_settings(best: Path, tiny_manifest: Path) -> None:
    image = str(images_of(tiny_manifest)[0])
    result = CliRunner().invoke(cli, ["suggest", str(best), image])
    assert result.exit_code == 2
    assert "needs a random-track model with model.targets: [ssim, svg_bytes]" in result.output
    bad = CliRunner().invoke(cli, ["suggest", str(best), "missing.png"])
    assert bad.exit_code == 2 and "no image could be read" in bad.output
