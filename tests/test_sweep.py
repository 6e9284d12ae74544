"""``qp sweep``: the param grammar, real (tiny) sweeps on the packaged random
config, resuming, refusing a different sweep, pruning and parallel workers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from click.testing import CliRunner

import qpcore
from qpcore import sweep as sweep_module
from qpcore.cli import cli
from qpcore.config_io import load_run_config
from qpcore.errors import QPError
from qpcore.registry import default_registry
from qpcore.sweep import ParamSpec, parse_param, parse_params, run_sweep

#: The packaged random-track run, shrunk to seconds: 30 small images, 3 epochs,
#: one thread, no size head, no monitors or evaluators.
TINY = [
    "data.count=30",
    "data.size=64",
    "data.workers=1",
    "trainer.epochs=3",
    "trainer.num_threads=1",
    "model.targets=[ssim]",
    "monitors=[]",
    "evaluators=[]",
]
PARAMS = [
    "optimizer.lr=log:1e-4:1e-2",
    "loss.ranking_weight=0:0.5",
    "model.head.dropout=choice:0.1,0.3,0.5",
]


def sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def params_args(params: list[str]) -> list[str]:
    return [arg for p in params for arg in ("--param", p)]


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "sweep.json").read_text())


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 3-trial sweep, made once; tests that change it work on a copy."""
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    with pytest.MonkeyPatch.context() as patch:  # module scope: _private_cache is not active
        patch.setenv("QP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qp-cache"))
        run_sweep("random", PARAMS, 3, out, overrides=TINY)
        yield out


def copy_of(swept: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "sweep"
    shutil.copytree(swept, copy)
    return copy


# --- grammar ----------------------------------------------------------------------


def test_param_grammar_reads_each_form() -> None:
    assert parse_param("loss.ranking_weight=0:0.5") == ParamSpec(
        "loss.ranking_weight", "float", 0.0, 0.5, text="loss.ranking_weight=0:0.5"
    )
    lr = parse_param("optimizer.lr=log:1e-4:1e-2")
    assert (lr.kind, lr.low, lr.high) == ("log", 1e-4, 1e-2)
    size = parse_param("trainer.batch_size=int:8:64")
    assert (size.kind, size.low, size.high) == ("int", 8, 64)
    assert isinstance(size.low, int)
    # Choices are YAML scalars: numbers stay numbers (1e-4 too, which YAML 1.1
    # reads as text), names stay names.
    assert parse_param("model.head.dropout=choice:0.1,0.3,0.5").choices == (0.1, 0.3, 0.5)
    assert parse_param("optimizer.lr=choice:1e-4, 1e-3").choices == (1e-4, 1e-3)
    assert parse_param("optimizer=choice:adam,sgd").choices == ("adam", "sgd")
    assert parse_param("model.head.batch_norm=choice:true,false").choices == (True, False)
    assert parse_param("trainer.batch_size=choice:16,32").choices == (16, 32)
    # What a trial sets reads back as the value drawn.
    assert lr.override(1e-05) == "optimizer.lr=1.0e-05"
    assert yaml.safe_load(lr.override(1e-05).partition("=")[2]) == 1e-05
    assert [s.path for s in parse_params(PARAMS)] == [p.partition("=")[0] for p in PARAMS]


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("optimizer.lr", "expected PATH=low:high"),
        ("optimizer.lr=", "expected PATH=low:high"),
        ("=0:1", "expected PATH=low:high"),
        ("optimizer..lr=0:1", "not a dotted config path"),
        ("optimizer.lr=uniform:0:1", "unknown kind 'uniform'"),
        ("optimizer.lr=0.1", "unknown kind"),
        ("optimizer.lr=log:1e-4", "log takes low:high"),
        ("optimizer.lr=0.5:0.1", "must be below high"),
        ("optimizer.lr=0.1:0.1", "must be below high"),
        ("optimizer.lr=log:0:0.1", "a log range needs low > 0"),
        ("optimizer.lr=log:-1:0.1", "a log range needs low > 0"),
        ("trainer.batch_size=int:8:6.5", "is not a whole number"),
        ("optimizer.lr=a:b", "'a' is not a number"),
        ("optimizer.lr=0:inf", "not a finite number"),
        ("model.head.dropout=choice:", "choice needs values"),
        ("model.head.dropout=choice:0.1,,0.3", "a choice is empty"),
        ("model.head.dropout=choice:0.1", "at least two values"),
        ("model.head.dropout=choice:0.1,0.1", "listed twice"),
        ("model.head.dropout=choice:0.1,{a: 1}", "choices are single values"),
    ],
)
def test_a_malformed_param_exits_2_naming_it(tmp_path: Path, param: str, message: str) -> None:
    with pytest.raises(QPError, match="--param"):
        parse_param(param)
    args = ["sweep", "random", "--param", param, "--trials", "2", "--out", str(tmp_path / "s")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"--param {param}" in result.stderr or f"--param {param!r}" in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("params", "extra", "message"),
    [
        # A path the config does not have, checked before any trial.
        (["optimizer.lrr=log:1e-4:1e-2"], [], "optimizer.lrr"),
        (["model.head.dropoutt=0:0.5"], [], "model.head.dropoutt"),
        # A range end the config refuses (dropout is at most 1).
        (["model.head.dropout=0.1:1.5"], [], "model.head.dropout=1.5 gives a config"),
        (["model.head.dropout=choice:0.1,2"], [], "model.head.dropout=2 gives a config"),
        # The same path twice, or also set by --set.
        (["optimizer.lr=0.1:0.2", "optimizer.lr=log:1e-4:1e-2"], [], "already swept by"),
        (["optimizer.lr=0.1:0.2"], ["--set", "optimizer.lr=0.1"], "--set optimizer.lr sets it"),
        # A path inside another: the one applied last would silently win.
        (["optimizer.lr=log:1e-4:1e-2", "optimizer=choice:adam,sgd"], [], "overlapping"),
        (["optimizer=choice:adam,adamw"], ["--set", "optimizer.lr=0.05"], "--set optimizer.lr"),
        # Both ends of a float range pass on an integer setting; a value between does not.
        (["trainer.batch_size=8:32"], [], "sweep it as trainer.batch_size=int:LOW:HIGH"),
        # A middle choice is checked too.
        (["optimizer=choice:adam,adamx,sgd"], [], "optimizer=adamx gives a config"),
        # A list index past the end names the --param, not a --set.
        (["model.head.hidden.5=int:8:16"], [], "model.head.hidden.5=8 gives a config"),
        # A path the config lacks: shown at its path, with no integer hint.
        (["loss.nope=0:1"], [], "\n  loss.nope: Extra inputs are not permitted"),
    ],
)
def test_a_param_the_config_refuses_exits_2_before_training(
    tmp_path: Path, params: list[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "s"
    args = ["sweep", "random", *params_args(params), "--trials", "2", "--out", str(out), *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert f"--param {params[-1]}" in result.stderr
    # The trial's values are set as overrides, but they are not the user's --set.
    assert ("--set" in result.stderr) == ("--set" in extra)
    assert ("int:LOW:HIGH" in result.stderr) == ("int:LOW:HIGH" in message)
    assert not out.exists()


# --- sweeps -----------------------------------------------------------------------


def test_a_sweep_writes_its_report_best_config_and_importances(swept: Path) -> None:
    found = report(swept)
    assert found["counts"] == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 0}
    assert found["objective"] == {"metric": "val_loss", "direction": "minimize"}
    trials = found["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    for trial in trials:
        params = trial["params"]
        assert 1e-4 <= params["optimizer.lr"] <= 1e-2
        assert 0 <= params["loss.ranking_weight"] <= 0.5
        assert params["model.head.dropout"] in (0.1, 0.3, 0.5)
        assert trial["epochs"] == 3 and trial["state"] == "COMPLETE"
        # Each trial is a normal run folder, its config the base with the trial's values.
        run = swept / trial["run_dir"]
        assert run == swept / "trials" / f"trial-{trial['number']}"
        history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert trial["value"] == min(row["val_loss"] for row in history)
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["optimizer"]["lr"] == params["optimizer.lr"]
        assert saved["model"]["head"]["dropout"] == params["model.head.dropout"]
        assert saved["output"]["name"] == run.name
        assert (run / "best.pt").is_file() and (run / "results.json").is_file()
    best = min(trials, key=lambda t: t["value"])
    assert found["best"]["number"] == best["number"]
    assert found["best"]["value"] == best["value"]
    values = found["importance"]["values"]
    assert set(values) == {p.partition("=")[0] for p in PARAMS}
    assert sum(values.values()) == pytest.approx(1.0)
    page = (swept / "report.html").read_text()
    for heading in ("Best trial", "Parameter importance", "Slices", "Contours", "Trials"):
        assert f"<h2>{heading}</h2>" in page
    assert "model.head.dropout" in page and "<script>" in page
    plots = sorted(p.name for p in (swept / "plots").iterdir())
    assert plots == [
        *(f"contour-{i}.png" for i in range(3)),
        "importance.png",
        *(f"slice-{i}.png" for i in range(3)),
    ]
    assert (swept / "study.db").is_file()


def test_best_yaml_trains_as_it_is(
    swept: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """best.yaml is the best trial's resolved config; it trains into a new
    run of the base output folder, not into the trial's folder."""
    monkeypatch.chdir(tmp_path)
    best = report(swept)["best"]
    cfg = load_run_config(swept / "best.yaml")
    assert cfg.output.name is None and str(cfg.output.dir) == "runs"
    assert cfg.optimizer.params.lr == best["params"]["optimizer.lr"]
    result = qpcore.train(swept / "best.yaml")
    assert result.run_dir.parent == Path("runs")
    trial_cfg = yaml.safe_load((swept / best["run_dir"] / "config.yaml").read_text())
    again_cfg = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert {k: v for k, v in again_cfg.items() if k != "output"} == {
        k: v for k, v in trial_cfg.items() if k != "output"
    }
    # Same config, same seed, same data: the best trial's score again.
    rows = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    assert min(json.loads(r)["val_loss"] for r in rows) == pytest.approx(best["value"], rel=1e-5)


def test_a_rerun_with_more_trials_continues_the_study(swept: Path, tmp_path: Path) -> None:
    out = copy_of(swept, tmp_path)
    before = report(out)["trials"]
    args = ["sweep", "random", *params_args(PARAMS), "--out", str(out), *sets(TINY), "--quiet"]
    result = CliRunner().invoke(cli, [*args, "--trials", "4"])
    assert result.exit_code == 0, result.output
    after = report(out)["trials"]
    assert [t["number"] for t in after] == [0, 1, 2, 3]
    assert [(t["params"], t["value"]) for t in after[:3]] == [
        (t["params"], t["value"]) for t in before
    ]
    assert "| param" in result.stdout and "importance" in result.stdout
    # The same N again: nothing new. No --param: the stored sweep, continued.
    result = CliRunner().invoke(cli, [*args, "--trials", "4"])
    assert result.exit_code == 0, result.output
    assert len(report(out)["trials"]) == 4
    result = CliRunner().invoke(cli, ["sweep", "--out", str(out), "--trials", "5", "-q"])
    assert result.exit_code == 0, result.output
    assert [t["state"] for t in report(out)["trials"]] == ["COMPLETE"] * 5
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"trial-{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("params", "extra", "message"),
    [
        (["optimizer.lr=log:1e-5:1e-2", *PARAMS[1:]], [], "params: stored"),
        (PARAMS[:2], [], "params: stored"),
        (PARAMS, ["trainer.early_stopping.monitor=val_pearson"], "objective: stored val_loss"),
        (PARAMS, ["trainer.batch_size=32"], "base config: trainer.batch_size differ"),
    ],
)
def test_a_rerun_that_defines_another_sweep_is_refused(
    swept: Path, tmp_path: Path, params: list[str], extra: list[str], message: str
) -> None:
    out = copy_of(swept, tmp_path)
    args = ["sweep", "random", *params_args(params), "--out", str(out), "--trials", "4"]
    result = CliRunner().invoke(cli, [*args, *sets([*TINY, *extra])])
    assert result.exit_code == 2, result.output
    assert "holds a different sweep" in result.stderr and message in result.stderr
    assert len(report(out)["trials"]) == 3


def test_a_trial_left_running_is_failed_and_the_sweep_goes_on(swept: Path, tmp_path: Path) -> None:
    out = copy_of(swept, tmp_path)
    # A crash: a trial asked for and never told, its folder half made.
    storage = sweep_module.open_storage(out)
    study = optuna.load_study(study_name=sweep_module.STUDY_NAME, storage=storage)
    study.ask()
    (out / "trials" / "trial-3").mkdir()
    result = run_sweep("random", PARAMS, 4, out, overrides=TINY)
    states = [(t["number"], t["state"]) for t in result.trials]
    assert states == [
        (0, "COMPLETE"),
        (1, "COMPLETE"),
        (2, "COMPLETE"),
        (3, "FAIL"),
        (4, "COMPLETE"),
    ]
    assert "left running" in result.trials[3]["error"]
    assert (out / "trials" / "trial-4" / "best.pt").is_file()


def test_ctrl_c_stops_cleanly_and_the_sweep_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "sweep"
    calls = []
    real = sweep_module.best_value

    def interrupted_second(history: Any, metric: str) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(history, metric)

    monkeypatch.setattr(sweep_module, "best_value", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        run_sweep("random", PARAMS[:1], 3, out, overrides=TINY)
    found = report(out)  # written on the way out
    assert [(t["state"], t.get("error")) for t in found["trials"]] == [
        ("COMPLETE", None),
        ("FAIL", "interrupted (Ctrl-C)"),
    ]
    monkeypatch.setattr(sweep_module, "best_value", real)
    result = run_sweep("random", PARAMS[:1], 3, out, overrides=TINY)
    assert result.counts == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 1}
    # One param: all the variance is its own.
    assert result.importances == {"optimizer.lr": 1.0}


def test_a_pruned_trial_is_a_valid_stopped_run(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    # val_loss is always above 0: every trial is pruned at its first epoch past warmup.
    pruner = optuna.pruners.ThresholdPruner(upper=0.0, n_warmup_steps=2)
    result = run_sweep("random", PARAMS[:2], 2, out, overrides=TINY, pruner=pruner)
    assert result.counts == {"COMPLETE": 0, "PRUNED": 2, "FAIL": 0}
    for trial in result.trials:
        assert trial["epochs"] == 2 and list(trial["curve"]) == ["1", "2"]
        run = out / trial["run_dir"]
        results = json.loads((run / "results.json").read_text())
        assert results["epochs"] == 2
        assert results["stop_reason"].startswith("stopped after epoch 2: pruned by the sweep")
        assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    # Nothing completed: no best, and the report says why there is no importance.
    assert result.best is None and not (out / "best.yaml").exists()
    assert result.importances is None
    assert "needs at least 2 complete trials" in result.report["importance"]["note"]
    assert "Not measured" in (out / "report.html").read_text()


def test_a_trial_is_never_pruned_at_its_last_epoch(tmp_path: Path) -> None:
    """Stopping there saves nothing, and a pruned trial leaves best and the
    importances: the pruner that would stop epoch 3 of 3 lets the trial complete."""
    pruner = optuna.pruners.ThresholdPruner(upper=0.0, n_warmup_steps=3)
    result = run_sweep("random", PARAMS[:1], 1, tmp_path / "s", overrides=TINY, pruner=pruner)
    assert result.counts == {"COMPLETE": 1, "PRUNED": 0, "FAIL": 0}
    assert result.trials[0]["epochs"] == 3


def test_sweeping_the_loss_on_its_own_value_warns(capsys: pytest.CaptureFixture[str]) -> None:
    registry = default_registry()
    sweep_module.define("random", parse_params(PARAMS[1:2]), TINY, registry)
    assert "loss.ranking_weight changes the loss that val_loss measures" in capsys.readouterr().err
    shared = [*TINY, "trainer.early_stopping.monitor=val_mae"]
    definition = sweep_module.define("random", parse_params(PARAMS[1:2]), shared, registry)
    assert definition.metric == "val_mae" and capsys.readouterr().err == ""


def test_parallel_workers_refuse_a_registry_they_cannot_rebuild() -> None:
    from test_study import code_registry

    with pytest.raises(QPError, match="lack loss 'code_mse' of the registry given"):
        sweep_module._check_workers_registry(code_registry())
    sweep_module._check_workers_registry(default_registry())


def test_the_pruners_by_name() -> None:
    assert isinstance(sweep_module.make_pruner("median", 100), optuna.pruners.MedianPruner)
    assert isinstance(sweep_module.make_pruner("hyperband", 100), optuna.pruners.HyperbandPruner)
    assert isinstance(sweep_module.make_pruner("none", 100), optuna.pruners.NopPruner)


def test_parallel_workers_finish_exactly_the_trials_asked(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = run_sweep("random", PARAMS[:2], 3, out, overrides=TINY, jobs=2)
    assert result.counts == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 0}
    assert sorted(t["number"] for t in result.trials) == [0, 1, 2]
    # Two workers, two seeds: their first draws differ.
    assert len({json.dumps(t["params"]) for t in result.trials}) == 3


def test_continuing_needs_a_stored_sweep(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sweep", "--out", str(tmp_path / "none"), "--trials", "2"])
    assert result.exit_code == 2 and "holds no sweep to continue" in result.stderr
    result = CliRunner().invoke(cli, ["sweep", "--trials", "2"])
    assert result.exit_code == 2 and "needs its --out" in result.output


def test_parallel_workers_end_with_a_killed_sweep(tmp_path: Path) -> None:
    """kill -9 of the sweep (nothing of it runs to stop them) ends its workers:
    one left training would hold trials the next sweep, finding the folder's
    lock free, marks failed under it."""
    import psutil

    args = ["sweep", "random", "--param", PARAMS[0], "--trials", "4", "--jobs", "2"]
    endless = ["trainer.epochs=100000", "trainer.early_stopping.patience=100000"]
    args += ["--out", str(tmp_path / "s"), *sets([*TINY, *endless])]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "qpcore", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        trials = tmp_path / "s" / "trials"
        while not (trials.is_dir() and len(list(trials.glob("*/metrics.jsonl"))) == 2):
            assert sweep.poll() is None and time.monotonic() < deadline, "no 2 trials training"
            time.sleep(0.5)
        children = psutil.Process(sweep.pid).children()
        workers = [p for p in children if "resource_tracker" not in p.cmdline()[-1]]
        assert len(workers) == 2
        sweep.kill()
        sweep.wait(30)
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert alive == []
    finally:
        if sweep.poll() is None:
            sweep.kill()
