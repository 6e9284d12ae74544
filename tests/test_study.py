"""`qp study losses`: one run per loss and seed on shared data, compared."""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from test_monitors import GLITCH_LOSS
from test_report import HOSTILE
from test_trainer import run_config

from qpcore import LossSpec, hookimpl
from qpcore.cli import cli
from qpcore.config_io import load_run_config
from qpcore.errors import ConfigError, QPError
from qpcore.manager import PluginInfo, PluginManager
from qpcore.registry import Registry, default_registry
from qpcore.study import RUN_RECORD, epochs_to_converge, parse_losses, run_study
from qpcore.study import run_config as study_run_config
from qpcore.validate import resolve_config

from conftest import make_distribution


def test_convergence_is_the_first_epoch_within_one_percent_of_the_best() -> None:
    assert epochs_to_converge([1.0, 0.5, 0.3025, 0.31, 0.3]) == 3
    assert epochs_to_converge([1.0, 0.5, 0.304, 0.31, 0.3]) == 5
    assert epochs_to_converge([None, 2.0, math.nan, 1.0]) == 4
    assert epochs_to_converge([None, math.nan]) is None
    # Negative losses (uncertainty weighting adds log-variances) use |best|.
    assert epochs_to_converge([-1.0, -1.995, -2.0]) == 2


def test_study_runs_keep_the_config_s_anomaly_settings_and_no_other_monitor() -> None:
    registry = default_registry()
    monitors = "monitors=[progress, {name: anomaly, action: stop}, csv]"
    base = load_run_config(None, [monitors], registry)
    cfg = study_run_config(base, "mse", 3, registry)
    assert [(m["name"], m["action"]) for m in cfg.to_dict()["monitors"]] == [("anomaly", "stop")]
    assert cfg.trainer.seed == 3 and cfg.evaluators == []
    plain_base = load_run_config(None, ["monitors=[csv]"], registry)
    plain = study_run_config(plain_base, "mse", 0, registry)
    assert [m["name"] for m in plain.to_dict()["monitors"]] == ["anomaly"]


def test_losses_are_checked_before_anything_trains() -> None:
    registry = default_registry()
    assert parse_losses(" mse, focal ,", registry) == ["mse", "focal"]
    with pytest.raises(ConfigError, match="--losses") as error:
        parse_losses("mse,msee", registry)
    assert "msee" in str(error.value)
    with pytest.raises(QPError, match="mse given twice"):
        parse_losses("mse,focal,mse", registry)
    with pytest.raises(QPError, match="at least one"):
        parse_losses(" , ", registry)


@pytest.fixture(scope="module")
def study(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-loss, 2-seed study through the CLI, and its config file."""
    folder = tmp_path_factory.mktemp("study")
    cfg = folder / "run.yaml"
    sections = run_config(tiny_manifest, folder, loss={"name": "combined", "ranking_weight": 0.3})
    sections["output"]["name"] = HOSTILE  # the report must escape what the config says
    cfg.write_text(yaml.safe_dump(sections))
    out = folder / "out"
    with pytest.MonkeyPatch.context() as patch:  # module scope: _private_cache is not active
        patch.setenv("QP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qp-cache"))
        args = ["study", "losses", str(cfg), "--losses", "mse,combined", "--seeds", "2"]
        result = CliRunner().invoke(cli, [*args, "--out", str(out), "--no-landscape"])
    assert result.exit_code == 0, result.output
    assert "combined seed 1:" in result.output and "| mse |" in result.output
    return cfg, out


def test_study_trains_each_loss_and_seed_and_summarises_them(study: tuple[Path, Path]) -> None:
    _, out = study
    result = json.loads((out / "study.json").read_text())
    assert result["losses"] == ["mse", "combined"] and result["baseline"] == "mse"
    assert result["seeds"] == [0, 1]
    assert sorted((r["loss"], r["seed"]) for r in result["runs"]) == [
        ("combined", 0),
        ("combined", 1),
        ("mse", 0),
        ("mse", 1),
    ]
    # Every run trained on the same rows: the same test split, scored by the study.
    records = {
        (r["loss"], r["seed"]): json.loads((Path(r["folder"]) / RUN_RECORD).read_text())
        for r in result["runs"]
    }
    sizes = {len(r["test_predictions"]) for r in records.values()}
    assert sizes == {result["test_rows"]} and result["test_rows"] > 0
    # The config's own loss kept its params; the seed is the only other change.
    saved = yaml.safe_load((out / "runs" / "combined-seed1" / "config.yaml").read_text())
    assert saved["loss"]["ranking_weight"] == 0.3 and saved["trainer"]["seed"] == 1
    other = yaml.safe_load((out / "runs" / "mse-seed0" / "config.yaml").read_text())
    assert other["loss"] == {"name": "mse"}
    assert [m["name"] for m in other["monitors"]] == ["anomaly"] and other["evaluators"] == []
    for loss in ("mse", "combined"):
        summary = result["summary"][loss]
        pearsons = [records[(loss, s)]["test"]["pearson"] for s in (0, 1)]
        assert summary["test"]["pearson"]["mean"] == pytest.approx(np.mean(pearsons))
        low, high = summary["test"]["pearson"]["ci95"]
        assert low < np.mean(pearsons) < high
        assert summary["pearson_std"] == pytest.approx(np.std(pearsons, ddof=1))
        assert summary["diverged"] == 0 and 1 <= summary["epochs_to_1pct_val_loss"] <= 3
    # Paired tests, seed by seed, as qp compare makes them.
    pair = result["paired"]["combined"]
    assert [s["seed"] for s in pair["seeds"]] == [0, 1]
    for seed in pair["seeds"]:
        a = records[("combined", seed["seed"])]["test"]["pearson"]
        b = records[("mse", seed["seed"])]["test"]["pearson"]
        assert seed["pearson"]["difference"] == pytest.approx(a - b, abs=1e-6)
        assert seed["verdict"]
    assert pair["t_test_pearson"]["seeds"] == 2
    table = (out / "study.md").read_text()
    assert len(table.splitlines()) == 4 and "| combined |" in table and "baseline" in table


def test_study_report_shows_every_part_escaped(study: tuple[Path, Path]) -> None:
    _, out = study
    text = (out / "report.html").read_text(encoding="utf-8")
    for title in ("Losses compared", "Against mse", "Curves", "Runs", "Base config"):
        assert f"<h2>{title}</h2>" in text
    assert HOSTILE not in text and html.escape(HOSTILE) in text
    sources = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")
    assert (out / "plots" / "study_curves.png").stat().st_size > 5000


def test_landscapes_join_the_report_and_are_kept_in_the_run_folders(
    study: tuple[Path, Path],
) -> None:
    cfg, out = study
    registry = default_registry()
    base = load_run_config(cfg, (), registry)
    result = run_study(base, ["mse", "combined"], 2, out, registry, landscape=True)
    assert set(result["landscape"]) == {"mse", "combined"}
    for loss, found in result["landscape"].items():
        saved = json.loads(
            (out / "runs" / f"{loss}-seed0" / "study-landscape" / "landscape.json").read_text()
        )
        assert found["line"] == saved["summary_1d"] and found["split"] == "val"
        # At the trained weights the line gives the val loss the trainer recorded.
        assert saved["recorded_loss"] == pytest.approx(found["line"]["centre_loss"], rel=1e-4)
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Loss landscape</h2>" in text and text.count("<img ") == 1 + 1 + 2
    kept = out / "runs" / "mse-seed0" / "study-landscape" / "landscape.json"
    before = kept.stat().st_mtime_ns
    run_study(base, ["mse", "combined"], 2, out, registry, landscape=True)
    assert kept.stat().st_mtime_ns == before  # read back, not recomputed
    kept.write_text("{damaged")  # not ours to trust: computed again
    again = run_study(base, ["mse", "combined"], 2, out, registry, landscape=True)
    assert set(again["landscape"]) == {"mse", "combined"} and json.loads(kept.read_text())


def test_a_rerun_reuses_finished_runs_and_continues_a_stopped_one(
    study: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg, out = study
    kept = out / "runs" / "mse-seed0" / RUN_RECORD
    before = kept.stat().st_mtime_ns
    # A run stopped after its last checkpoint: no record yet, last.pt on disk.
    stopped = out / "runs" / "combined-seed1"
    (stopped / RUN_RECORD).unlink()
    registry = default_registry()
    base = load_run_config(cfg, (), registry)
    result = run_study(base, ["mse", "combined"], 2, out, registry, landscape=False)
    assert kept.stat().st_mtime_ns == before
    assert (stopped / RUN_RECORD).is_file()
    resumed = next(r for r in result["runs"] if (r["loss"], r["seed"]) == ("combined", 1))
    assert resumed["epochs"] == 3
    # Other params of the config's own loss: its runs are not reused but refused.
    other_loss = load_run_config(cfg, ["loss.ranking_weight=0.5"], registry)
    with pytest.raises(QPError, match="combined-seed0: trained with loss"):
        run_study(other_loss, ["mse", "combined"], 2, out, registry, landscape=False)
    # Another config (here: other data fractions) is another study: refused.
    changed = load_run_config(cfg, ["data.val_fraction=0.3"], registry)
    with pytest.raises(QPError, match="another config"):
        run_study(changed, ["mse"], 1, out, registry, landscape=False)
    # The same after an interruption, before study.json was written: each run's
    # own config refuses it, and a record scored on other rows is refused too.
    definition = out / "study.json"
    saved = definition.read_text()
    record = json.loads(kept.read_text())
    definition.unlink()
    try:
        with pytest.raises(QPError, match=r"mse-seed0: trained with other settings \(data\.val"):
            run_study(changed, ["mse"], 1, out, registry, landscape=False)
        kept.write_text(json.dumps({**record, "data_digest": "0" * 64}))
        with pytest.raises(QPError, match="scored on other data"):
            run_study(base, ["mse"], 1, out, registry, landscape=False)
    finally:
        definition.write_text(saved)
        kept.write_text(json.dumps(record))


def test_a_diverging_loss_is_counted_not_fatal(
    tiny_manifest: Path,
    tmp_path: Path,
    on_path: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    dist = {"qp_glitch": GLITCH_LOSS}
    on_path(make_distribution(tmp_path / "glitch", "qp-glitch", "1.0", dist, {"g": "qp_glitch"}))
    registry = default_registry()
    base = resolve_config(run_config(tiny_manifest, tmp_path), registry)
    result = run_study(base, ["mse", "glitch"], 1, tmp_path / "out", registry, landscape=False)
    glitch = result["summary"]["glitch"]
    assert glitch["diverged"] == 1 and glitch["runs"] == 1
    (run,) = [r for r in result["runs"] if r["loss"] == "glitch"]
    assert run["diverged"] and "non-finite" in (run["stop_reason"] or run["error"])
    assert result["paired"]["glitch"]["seeds"] == []  # nothing to pair a diverged run with
    # The anomaly monitor's warnings went to the run's log, not the terminal.
    log = (tmp_path / "out" / "runs" / "glitch-seed0.log").read_text()
    assert run["warnings"] >= 1 and "non-finite loss" in log
    assert "warning:" not in capsys.readouterr().err
    assert "| glitch |" in (tmp_path / "out" / "study.md").read_text()


def test_a_study_without_test_rows_is_refused_before_training(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    registry = default_registry()
    cfg = run_config(tiny_manifest, tmp_path)
    cfg["data"]["test_fraction"] = 0.0
    with pytest.raises(QPError, match="no test rows"):
        run_study(resolve_config(cfg, registry), ["mse"], 1, tmp_path / "out", registry)
    assert not (tmp_path / "out" / "runs").exists()


def test_a_study_without_validation_rows_reports_without_landscapes(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    """A landscape is evaluated on the val rows: none there leaves the study's
    tables whole and says why each landscape is missing."""
    registry = default_registry()
    cfg = run_config(tiny_manifest, tmp_path, trainer={"epochs": 2})
    cfg["data"]["val_fraction"] = 0.0
    cfg["trainer"]["early_stopping"] = {"monitor": "train_loss"}
    cfg["trainer"]["checkpoint"] = {"monitor": "train_loss"}
    out = tmp_path / "out"
    # A log left by an attempt that died before its first checkpoint: not counted.
    stale = out / "runs" / "mse-seed0.log"
    stale.parent.mkdir(parents=True)
    stale.write_text("warning: from an attempt that left no checkpoint\n" * 3)
    result = run_study(resolve_config(cfg, registry), ["mse"], 1, out, registry, landscape=True)
    assert "attempt" not in stale.read_text()
    assert result["runs"][0]["warnings"] == stale.read_text().count("warning:")
    assert result["landscape_skipped"] == {"mse": "no validation rows to evaluate the loss on"}
    assert "landscape" not in result and (out / "study.md").is_file()
    page = (out / "report.html").read_text()
    assert "No landscape for mse: no validation rows" in page


class _CodeMSE(torch.nn.Module):
    def __init__(self, params: Any = None) -> None:
        super().__init__()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred.reshape(-1) - target.reshape(-1)) ** 2).mean()


class _CodePlugin:
    @hookimpl
    def qp_register_losses(self) -> list[LossSpec]:
        return [LossSpec("code_mse", _CodeMSE, summary="mse, registered in code")]


def code_registry() -> Registry:
    """The installed plugins plus a loss ``code_mse`` registered in code only."""
    manager = PluginManager(disabled=set())
    manager.load_entrypoints()
    manager.register(_CodePlugin(), PluginInfo("code", "code", "code", "1"))
    return Registry(manager)


def test_a_study_uses_its_registry_for_the_landscapes_too(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    """A loss only the given registry knows (registered in code, not through an
    entry point) trains and gets its landscape."""
    registry = code_registry()
    base = resolve_config(run_config(tiny_manifest, tmp_path, trainer={"epochs": 2}), registry)
    result = run_study(base, ["code_mse"], 1, tmp_path / "out", registry, landscape=True)
    assert "landscape_skipped" not in result and set(result["landscape"]) == {"code_mse"}


def test_cli_refuses_an_unknown_loss_or_baseline_with_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["study", "losses", "--losses", "mse,nope", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "nope" in result.output
    args = ["study", "losses", "--losses", "mse", "--baseline", "focal", "--out", str(tmp_path)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and "--baseline" in result.output
    assert not (tmp_path / "runs").exists()
