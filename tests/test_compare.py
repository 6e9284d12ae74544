"""Paired model comparison: detects a real difference, none between equals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from qpcore.cli import cli
from qpcore.compare import compare_predictions, williams_test

RNG = np.random.default_rng(5)
TARGET = RNG.uniform(0.4, 1.0, 300)


def test_a_real_difference_is_detected() -> None:
    good = TARGET + RNG.normal(0, 0.02, 300)
    poor = TARGET + RNG.normal(0, 0.08, 300)
    result = compare_predictions(good, poor, TARGET, boots=500)
    assert result["pearson"]["difference"] > 0 and result["pearson"]["ci95"][0] > 0
    assert result["mae"]["ci95"][1] < 0
    assert result["williams"]["p_value"] < 1e-6 and result["wilcoxon"]["p_value"] < 1e-6
    assert result["verdict"].startswith("A correlates better")
    swapped = compare_predictions(poor, good, TARGET, boots=500)
    assert swapped["verdict"].startswith("B correlates better")


def test_identical_models_show_no_difference() -> None:
    pred = TARGET + RNG.normal(0, 0.05, 300)
    result = compare_predictions(pred, pred.copy(), TARGET, boots=200)
    assert result["pearson"]["ci95"] == [0.0, 0.0]
    assert result["wilcoxon"] is None and "identical" in result["undefined"]["wilcoxon"]
    assert result["verdict"].startswith("No detectable difference")
    json.dumps(result, allow_nan=False)


def test_two_similar_models_are_not_called_different() -> None:
    # Same noise level, independent draws: a difference only by chance.
    a = TARGET + RNG.normal(0, 0.05, 300)
    b = TARGET + RNG.normal(0, 0.05, 300)
    assert compare_predictions(a, b, TARGET, boots=500)["williams"]["p_value"] > 0.01


def test_williams_test_holds_its_level_and_has_power() -> None:
    rng = np.random.default_rng(0)
    null_p, alt_p = [], []
    for _ in range(400):
        target = rng.normal(size=100)
        shared = rng.normal(size=100)  # a and b correlate beyond the target
        a = target + 0.8 * shared + rng.normal(size=100)
        b = target + 0.8 * shared + rng.normal(size=100)
        c = 0.6 * target + 0.8 * shared + rng.normal(size=100)  # truly weaker
        r = lambda x, y: float(np.corrcoef(x, y)[0, 1])  # noqa: E731
        null_p.append(williams_test(r(target, a), r(target, b), r(a, b), 100)[1])
        alt_p.append(williams_test(r(target, a), r(target, c), r(a, c), 100)[1])
    # Under H0 about 5 % of p-values fall under 0.05 (binomial sd ~1.1 %).
    assert 0.02 <= np.mean(np.array(null_p) < 0.05) <= 0.085
    assert np.mean(np.array(alt_p) < 0.05) > 0.5


def test_qp_compare_of_a_model_with_itself(tiny_manifest: Path, tmp_path: Path) -> None:
    from test_trainer import run_config

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(run_config(tiny_manifest, tmp_path)))
    assert CliRunner().invoke(cli, ["train", str(cfg), "--quiet"]).exit_code == 0
    best = str(tmp_path / "run" / "best.pt")
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        cli,
        ["compare", best, best, "--data", str(tiny_manifest), "--out", str(out), "--boots", "200"],
    )
    assert result.exit_code == 0, result.output
    assert "No detectable difference" in result.output
    assert json.loads((out / "compare.json").read_text())["pairs"][0]["rows"] == 40
    one = CliRunner().invoke(cli, ["compare", best, "--data", str(tiny_manifest)])
    assert one.exit_code == 2 and "at least two" in one.output


def test_cross_validation_folds_are_disjoint_and_summarised(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_trainer import run_config

    from qpcore import crossval, trainer, training_data
    from qpcore.data.manifest import read_manifest
    from qpcore.data.splits import fold_samples

    built: list[str] = []

    def counted(where: str) -> Any:
        def build(cfg: Any) -> Any:
            built.append(where)
            return training_data.build_dataset(cfg)

        return build

    monkeypatch.setattr(crossval, "build_dataset", counted("cv"))
    monkeypatch.setattr(trainer, "build_dataset", counted("fold"))

    rows = read_manifest(tiny_manifest).samples
    parts = fold_samples(rows, 4, 0)
    assert sorted(s.line for p in parts for s in p) == sorted(s.line for s in rows)
    assert all(8 <= len(p) <= 12 for p in parts)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(run_config(tiny_manifest, tmp_path)))
    result = CliRunner().invoke(cli, ["cv", str(cfg), "--folds", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "cv.json").read_text())
    assert [f["fold"] for f in report["folds"]] == [1, 2, 3, 4]
    assert sum(f["rows"] for f in report["folds"]) == 40
    maes = [f["mae"] for f in report["folds"]]
    assert report["summary"]["mae"]["mean"] == pytest.approx(np.mean(maes))
    low, high = report["summary"]["mae"]["ci95"]
    assert low < np.mean(maes) < high
    assert (tmp_path / "run" / "fold-4" / "best.pt").is_file()
    assert "mae: mean" in result.output
    assert built == ["cv"]  # the dataset is built once, not once per fold
    too_few = CliRunner().invoke(cli, ["cv", str(cfg), "--folds", "2"])
    assert too_few.exit_code == 2
