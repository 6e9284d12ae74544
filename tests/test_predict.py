"""``qp train`` / ``qp predict`` from the command line, and untrusted checkpoints."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from test_trainer import run_config

from qpcore.checkpoint import FORMAT, load_checkpoint
from qpcore.cli import cli
from qpcore.errors import CheckpointError
from qpcore.predictor import load_predictor


@pytest.fixture(scope="module")
def trained(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained through ``qp train``; returns its folder."""
    out = tmp_path_factory.mktemp("cli-run")
    config = out / "run.yaml"
    config.write_text(yaml.safe_dump(run_config(tiny_manifest, out)))
    result = CliRunner().invoke(cli, ["train", str(config), "--quiet", "--set", "trainer.epochs=2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == f"run folder: {out / 'run'}"
    assert re.fullmatch(
        r"val \(\d+ rows, best epoch \d\): Pearson -?[\d.]+  Spearman -?[\d.]+  MAE [\d.]+",
        lines[-2],
    )
    return out / "run"


def test_train_refuses_to_overwrite_a_run(trained: Path) -> None:
    config = trained.parent / "run.yaml"
    result = CliRunner().invoke(cli, ["train", str(config)])
    assert result.exit_code == 2 and "--resume" in result.output


def test_train_out_picks_the_run_folder(trained: Path, tmp_path: Path) -> None:
    config = trained.parent / "run.yaml"
    out = tmp_path / "elsewhere"
    args = ["train", str(config), "--quiet", "--set", "trainer.epochs=1", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"run folder: {out}"
    assert (out / "best.pt").is_file() and (out / "config.yaml").is_file()
    again = CliRunner().invoke(cli, ["train", "--resume", str(out), "--out", str(tmp_path)])
    assert again.exit_code == 2 and "give no FILE, --set or --out" in again.output


def test_train_reports_config_errors_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  backbone: {name: resnet50, weights: imagenet, freez: true}\n")
    result = CliRunner().invoke(cli, ["train", str(bad)])
    assert result.exit_code == 2
    assert "model.backbone.freez" in result.output and "line 2" in result.output


def test_predict_rows_and_formats(trained: Path, tiny_manifest: Path, tmp_path: Path) -> None:
    images = sorted(tiny_manifest.parent.glob("images/*.png"))[:3]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    args = ["predict", str(trained / "best.pt"), str(images[0]), str(broken), str(images[1])]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()
    assert rows[0] == "image,predicted_ssim,error"
    assert rows[2].startswith(f"{broken},,") and "not a readable image" in rows[2]
    expected = load_predictor(trained / "best.pt").predict([images[0], images[1]])
    assert float(rows[1].split(",")[1]) == pytest.approx(expected[0], abs=1e-6)
    as_json = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).output)
    assert [r["predicted_ssim"] is None for r in as_json] == [False, True, False]
    only_broken = CliRunner().invoke(cli, ["predict", str(trained / "best.pt"), str(broken)])
    assert only_broken.exit_code == 2


def test_predict_refuses_params_for_a_default_track_model(trained: Path) -> None:
    result = CliRunner().invoke(
        cli, ["predict", str(trained / "best.pt"), "x.png", "--params", '{"mode": "polygon"}']
    )
    assert result.exit_code == 2 and "takes no --params" in result.output


def test_predictor_accepts_paths_pil_and_arrays(trained: Path, tiny_manifest: Path) -> None:
    import qpcore

    path = sorted(tiny_manifest.parent.glob("images/*.png"))[0]
    predictor = qpcore.load_predictor(trained / "best.pt")
    image = Image.open(path)
    rgba = np.asarray(image.convert("RGBA"))
    values = predictor.predict([path, image, np.asarray(image.convert("RGB")), rgba])
    assert np.allclose(values, values[0], atol=1e-6)


def test_resume_continues_through_the_cli(trained: Path) -> None:
    # The run asked for 2 epochs; a resume of a finished run has nothing left to do.
    result = CliRunner().invoke(cli, ["train", "--resume", str(trained), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len((trained / "metrics.jsonl").read_text().splitlines()) == 2


def hostile(path: Path) -> Path:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("unpickled arbitrary code",))

    path.write_bytes(pickle.dumps({"format": FORMAT, "model": Evil()}))
    return path


def test_checkpoints_that_are_not_ours_are_refused(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (trained / "best.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    _, payload = load_checkpoint(trained / "best.pt")
    newer = tmp_path / "newer.pt"
    torch.save({**payload, "format_version": 99}, newer)
    cases = {
        truncated: "not a readable qpcore checkpoint",
        foreign: "not a qpcore checkpoint",
        newer: "newer than this qpcore reads",
        hostile(tmp_path / "evil.pt"): "refused as unsafe",
        tmp_path / "missing.pt": "no such checkpoint",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message):
            load_predictor(path)
        result = CliRunner().invoke(cli, ["predict", str(path), "x.png"])
        assert result.exit_code == 2 and message in result.output
    assert "unpickled arbitrary code" not in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_reproduces_the_predictions(trained: Path, tiny_manifest: Path, fmt: str) -> None:
    result = CliRunner().invoke(cli, ["export", str(trained / "best.pt"), "--format", fmt])
    assert result.exit_code == 0, result.output
    out = trained / ("best.ts.pt" if fmt == "torchscript" else "best.onnx")
    assert result.output.startswith(f"wrote {out} ")
    assert json.loads((trained / f"{out.name}.json").read_text())["params_input"] is False
    predictor = load_predictor(trained / "best.pt")
    paths = sorted(tiny_manifest.parent.glob("images/*.png"))[:5]
    from qpcore.data.protocol import load_image

    columns = zip(*(predictor.model.preprocess(load_image(p)) for p in paths), strict=True)
    inputs = [torch.stack(c).numpy() for c in columns]
    if fmt == "torchscript":
        exported = torch.jit.load(str(out))(*map(torch.from_numpy, inputs)).detach().numpy()
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        exported = session.run(None, dict(zip(names, inputs, strict=True)))[0]
    np.testing.assert_allclose(exported, predictor.predict(paths), atol=1e-5)


def test_best_checkpoint_serves_but_does_not_resume(trained: Path) -> None:
    _, best = load_checkpoint(trained / "best.pt")
    _, last = load_checkpoint(trained / "last.pt")
    assert "training" not in best and "optimizer" in last["training"]
    result = CliRunner().invoke(cli, ["train", "--resume", str(trained / "best.pt")])
    assert result.exit_code == 2 and "weights only" in result.output


def test_train_with_no_config_runs_the_packaged_default(tmp_path: Path) -> None:
    # The main job, shrunk: the packaged config with a tiny synthetic dataset.
    overrides = [
        "data.count=30",
        "data.size=64",
        "data.workers=1",
        "trainer.epochs=2",
        f"output.dir={tmp_path}",
        "output.name=default",
    ]
    args = ["train", "--quiet"] + [a for o in overrides for a in ("--set", o)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"run folder: {tmp_path / 'default'}"
    saved = yaml.safe_load((tmp_path / "default" / "config.yaml").read_text())
    assert saved["model"]["backbone"]["name"] == "vectorizer"
    assert saved["model"]["features"][0]["name"] == "image_stats"
    assert load_predictor(tmp_path / "default" / "best.pt").meta.epoch in (1, 2)
