"""Loss studies: the same model trained once per loss and seed, then compared.

A loss is judged by what it buys on held-out rows, so every run of a study
shares one dataset, one split and (through the feature cache) one set of
backbone features; only the loss and the seed change. Per loss the study
reports how fast it converges, how much it varies across seeds, whether any
run diverged, and its test scores with t-intervals over seeds; each loss is
then compared with the baseline on the same test rows and seed with
:func:`qpcore.compare.compare_predictions`, the test ``qp compare`` runs.

A study folder is resumable: a finished run (``study_run.json`` in its folder)
is read back instead of retrained, a run stopped mid-way continues from its
``last.pt``, so Ctrl-C or a crash costs at most the epoch in progress.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats
from tqdm import tqdm

from qpcore.compare import ALPHA, compare_predictions
from qpcore.config import RunConfig
from qpcore.crossval import summarise
from qpcore.errors import ConfigError, QPError
from qpcore.hookspecs import hookimpl
from qpcore.jsontext import json_safe
from qpcore.registry import Registry
from qpcore.run_files import LAST
from qpcore.validate import resolve_component, resolve_config

#: The file a finished study run leaves in its folder; its presence means "done".
RUN_RECORD = "study_run.json"
#: Relative distance from a run's best val loss that counts as converged.
CONVERGED_WITHIN = 0.01
#: Test measures summarised per loss.
MEASURES = ("pearson", "spearman", "mae")


@dataclass(frozen=True)
class StudyRun:
    """One trained (loss, seed) pair, as the study reads it back."""

    loss: str
    seed: int
    folder: Path
    record: dict[str, Any]

    @property
    def test_predictions(self) -> np.ndarray:
        return np.asarray(self.record["test_predictions"], dtype=float)

    @property
    def diverged(self) -> bool:
        return bool(self.record["diverged"])


def parse_losses(text: str, registry: Registry) -> list[str]:
    """``"mse,ssim,combined"`` as registered loss names, in order, checked
    before any run trains (a typo found after an hour of training is an hour lost)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise QPError("--losses: name at least one loss")
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise QPError(f"--losses: {', '.join(doubled)} given twice")
    for name in names:
        ref, issues = resolve_component(name, {}, ("loss",), "loss", registry)
        if ref is None:
            raise ConfigError(issues, "--losses")
    return names


def run_config(base: RunConfig, loss: str, seed: int, registry: Registry) -> RunConfig:
    """``base`` with ``loss`` and ``seed``: the base config's own loss keeps its
    params, another loss gets its defaults. Monitors shrink to ``anomaly``
    (the base config's entry, params included, when it has one: its warnings
    go to the run's log and count per run) and evaluators to none: the
    study scores the test rows itself, and plots or reports per run would
    cost more than the training of a small head."""
    data = copy.deepcopy(base.to_dict())
    if data["loss"]["name"] != loss:
        data["loss"] = {"name": loss}
    data["trainer"]["seed"] = seed
    anomaly = [m for m in data["monitors"] if m.get("name") == "anomaly"]
    data["monitors"] = anomaly[:1] or [{"name": "anomaly"}]
    data["evaluators"] = []
    return resolve_config(data, registry, f"the loss study's run {loss}, seed {seed}")


def config_digest(base: RunConfig) -> str:
    """What makes two studies comparable: everything but the loss, the seed and
    the monitors, which the study sets itself."""
    data = base.to_dict()
    for key in ("loss", "monitors", "evaluators", "output"):
        data.pop(key, None)
    data["trainer"].pop("seed", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def epochs_to_converge(values: Sequence[float | None]) -> int | None:
    """First epoch (1-based) whose value is within 1 % of the run's best
    (lowest); ``None`` without a finite value."""
    finite = [(i, v) for i, v in enumerate(values, 1) if v is not None and math.isfinite(v)]
    if not finite:
        return None
    best = min(v for _, v in finite)
    bound = best + CONVERGED_WITHIN * abs(best)
    return next(i for i, v in finite if v <= bound)


def _history(folder: Path) -> list[dict[str, Any]]:
    from qpcore.report import read_history

    return read_history(folder / "metrics.jsonl")


def _check_same_config(folder: Path, cfg: RunConfig) -> None:
    """Refuse to reuse or continue a run trained with other settings. The
    study's own digest leaves the loss out (it is what a study varies), and
    ``study.json`` is written only when a study ends: a rerun after an
    interruption with ``--set loss.ranking_weight=...`` or other data would
    otherwise report, or continue, the old runs."""
    saved = folder / "config.yaml"
    if not saved.is_file():
        return
    try:
        before = yaml.safe_load(saved.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        before = {}
    before = before if isinstance(before, dict) else {}
    wanted = cfg.to_dict()
    if before.get("loss") != wanted["loss"]:
        raise QPError(
            f"{folder}: trained with loss {json.dumps(before.get('loss'))}, this study asks "
            f"for {json.dumps(wanted['loss'])}; give another --out (or the settings it was "
            "made with)"
        )
    differ = _differences(before, wanted)
    if differ:
        shown = ", ".join(differ[:5]) + (", ..." if len(differ) > 5 else "")
        raise QPError(
            f"{folder}: trained with other settings ({shown}) than this study asks for; "
            "give another --out (or the settings it was made with)"
        )


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """The dotted paths at which two plain configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            found += _differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        return found
    return [] if a == b else [path or "(top level)"]


def _train(
    cfg: RunConfig, registry: Registry, folder: Path, data: Any, monitors: Sequence[object]
) -> tuple[dict[str, Any], np.ndarray, str | None]:
    """Train (or continue) one run; returns its results, its test predictions
    and, when it raised, the error (a diverged run is a finding, not a crash)."""

    # Monitor warnings (a scale-free loss such as ranking trips the explosion
    # check all run long) go to the run's own log, not between the study's lines.
    # A run trained from the start (none, or one that died before its first
    # checkpoint) starts its log afresh: counts are of the run the record keeps.
    fresh = not (folder / LAST).is_file()
    with _warnings_to(warnings_log(folder), fresh):
        return _fit(cfg, registry, folder, data, monitors)


def warnings_log(folder: Path) -> Path:
    """Where a study run's warnings go: beside its folder, which a run that
    died before its first checkpoint has removed and recreated."""
    return folder.parent / f"{folder.name}.log"


@contextlib.contextmanager
def _warnings_to(path: Path, fresh: bool) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w" if fresh else "a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
        yield


def _fit(
    cfg: RunConfig, registry: Registry, folder: Path, data: Any, monitors: Sequence[object]
) -> tuple[dict[str, Any], np.ndarray, str | None]:
    from qpcore.trainer import Trainer

    if (folder / LAST).is_file():
        trainer = Trainer.resume(folder, registry, monitors, quiet=True)
    else:
        if folder.exists():  # died before its first checkpoint: nothing to keep
            shutil.rmtree(folder)
        trainer = Trainer(cfg, registry, folder, monitors, quiet=True, data=data)
    try:
        results = trainer.fit()
        error = None
        predictions = trainer.predict_split("test")
    except FloatingPointError as exc:  # anything else is not a finding: let it stop the study
        results, error = {"epochs": trainer.state.epoch, "best_epoch": None}, str(exc)
        predictions = np.full(len(trainer.splits["test"]), np.nan)
    finally:
        trainer.dist.close()
    return results, predictions, error


def train_run(
    base: RunConfig,
    loss: str,
    seed: int,
    folder: Path,
    registry: Registry,
    data: Any,
    monitors: Sequence[object],
    data_digest: str,
) -> StudyRun:
    """One (loss, seed) run, read back when a previous invocation finished it
    on the same rows (``data_digest``: :func:`qpcore.training_data.data_fingerprint`
    of the study's splits)."""
    cfg = run_config(base, loss, seed, registry)
    _check_same_config(folder, cfg)
    record_file = folder / RUN_RECORD
    if record_file.is_file():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        if record.get("data_digest", data_digest) != data_digest:
            raise QPError(
                f"{record_file}: scored on other data than this study's (its images or "
                "labels changed); give another --out"
            )
        return StudyRun(loss, seed, folder, record)
    results, predictions, error = _train(cfg, registry, folder, data, monitors)
    history = _history(folder)
    stop = results.get("stop_reason") or ""
    test = results.get("test", {})
    diverged = error is not None or stop.startswith("non-finite") or test.get("pearson") is None
    record = {
        "loss": loss,
        "seed": seed,
        "data_digest": data_digest,
        "epochs": results.get("epochs"),
        "best_epoch": results.get("best_epoch"),
        "stop_reason": results.get("stop_reason"),
        "error": error,
        "diverged": diverged,
        # Summed over epochs, so a run continued from last.pt counts every session.
        "seconds": sum(float(r.get("time_s") or 0.0) for r in history),
        "warnings": _count_warnings(warnings_log(folder)),
        "epochs_to_1pct_val_loss": epochs_to_converge([r.get("val_loss") for r in history]),
        "epochs_to_1pct_val_mae": epochs_to_converge([r.get("val_mae") for r in history]),
        "val": results.get("val", {}),
        "test": test,
        "test_predictions": [float(p) for p in predictions],
    }
    text = json.dumps(json_safe(record, nonfinite="null"), indent=1, allow_nan=False)
    tmp = record_file.with_suffix(".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(record_file)
    return StudyRun(loss, seed, folder, json.loads(text))


class _EpochShown:
    """Shows the epoch a study run has reached beside the study's bar: a run
    takes minutes, and a bar that only moves between runs looks stuck."""

    def __init__(self, bar: tqdm, name: str) -> None:
        self.bar, self.name = bar, name

    @hookimpl
    def qp_on_epoch_end(self, run: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
        self.bar.set_postfix_str(f"{self.name}, epoch {epoch}", refresh=True)


def _count_warnings(log: Path) -> int:
    try:
        return sum(line.startswith("warning:") for line in log.read_text("utf-8").splitlines())
    except OSError:
        return 0


def _mean(values: Sequence[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return float(np.mean(found)) if found else None


def summarise_loss(runs: Sequence[StudyRun]) -> dict[str, Any]:
    """One loss across its seeds: convergence, stability and test scores."""
    good = [r for r in runs if not r.diverged]
    pearson = [r.record["test"].get("pearson") for r in good]
    mae = [r.record["test"].get("mae") for r in good]
    return {
        "runs": len(runs),
        "diverged": len(runs) - len(good),
        "epochs_to_1pct_val_loss": _mean([r.record["epochs_to_1pct_val_loss"] for r in good]),
        "epochs_to_1pct_val_mae": _mean([r.record["epochs_to_1pct_val_mae"] for r in good]),
        "best_epoch": _mean([r.record["best_epoch"] for r in good]),
        "seconds": _mean([r.record["seconds"] for r in runs]),
        "pearson_std": float(np.std(pearson, ddof=1)) if len(pearson) > 1 else None,
        "mae_std": float(np.std(mae, ddof=1)) if len(mae) > 1 else None,
        "test": {m: summarise([r.record["test"].get(m) for r in good]) for m in MEASURES},
    }


def paired_against(
    baseline: Sequence[StudyRun], other: Sequence[StudyRun], target: np.ndarray, boots: int
) -> dict[str, Any]:
    """``other`` against ``baseline`` on the same test rows, seed by seed
    (same data, same initialisation seed: only the loss differs), plus a paired
    t-test of the test Pearson across seeds."""
    by_seed = {r.seed: r for r in baseline}
    seeds: list[dict[str, Any]] = []
    for run in other:
        base = by_seed.get(run.seed)
        if base is None or base.diverged or run.diverged:
            continue
        # A is the loss under study, B the baseline: positive Pearson gaps favour it.
        result = compare_predictions(run.test_predictions, base.test_predictions, target, boots)
        seeds.append({"seed": run.seed, **result})
    pairs = [
        (s["pearson"]["a"], s["pearson"]["b"]) for s in seeds if isinstance(s.get("pearson"), dict)
    ]
    t_test = None
    if len(pairs) >= 2 and len({round(a - b, 12) for a, b in pairs}) > 1:
        test = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs])
        t_test = {"t": float(test.statistic), "p_value": float(test.pvalue), "seeds": len(pairs)}
    significant = [
        s["pearson"]["difference"]
        for s in seeds
        if s.get("williams") and s["williams"]["p_value"] < ALPHA
    ]
    return {
        "seeds": seeds,
        "pearson_difference": _mean([a - b for a, b in pairs]),
        "mae_difference": _mean([s["mae"]["difference"] for s in seeds]),
        "seeds_better": sum(d > 0 for d in significant),
        "seeds_worse": sum(d < 0 for d in significant),
        "t_test_pearson": t_test,
    }


def run_study(
    base: RunConfig,
    losses: Sequence[str],
    seeds: int,
    out: Path,
    registry: Registry,
    *,
    baseline: str | None = None,
    landscape: bool = True,
    quiet: bool = True,
    boots: int = 1000,
    on_run: Callable[[StudyRun], None] | None = None,
) -> dict[str, Any]:
    """Train every (loss, seed) into ``out/runs/<loss>-seed<k>``, then write
    ``out/study.json``, ``out/study.md`` and ``out/report.html``; returns the
    study's JSON content.

    Seeds are ``trainer.seed``, ``trainer.seed + 1``, ... of ``base``. The
    baseline (default: the first loss) is what every other loss is tested
    against. Unless ``quiet``, a progress bar counts the runs and shows the
    epoch the current one has reached.
    """
    from qpcore.training_data import build_dataset, data_fingerprint, load_splits

    if seeds < 1:
        raise QPError("--seeds: at least 1")
    baseline = baseline or losses[0]
    if baseline not in losses:
        raise QPError(f"--baseline {baseline!r} is not one of --losses ({', '.join(losses)})")
    digest = config_digest(base)
    out.mkdir(parents=True, exist_ok=True)
    definition = out / "study.json"
    if definition.is_file():
        try:
            before = json.loads(definition.read_text(encoding="utf-8")).get("config_digest")
        except (OSError, json.JSONDecodeError):
            before = None
        if before not in (None, digest):
            raise QPError(
                f"{out}: holds a study of another config (or data); give another --out "
                "or the config it was made with"
            )
    first_seed = base.trainer.seed
    data = build_dataset(base)  # once: every run trains on the same rows
    splits = load_splits(base, data, None)
    target = splits["test"].labels.numpy().astype(float)
    rows_digest = data_fingerprint(splits)
    if len(target) == 0:
        raise QPError(
            f"{data.origin}: no test rows; a loss study scores each loss on them "
            "(set data.test_fraction > 0)"
        )
    runs: dict[str, list[StudyRun]] = {}
    bar = tqdm(
        total=len(losses) * seeds,
        desc="loss study",
        unit="run",
        disable=True if quiet else None,  # None: off a terminal too
        file=sys.stderr,
    )
    with bar:
        for loss in losses:
            for k in range(seeds):
                seed = first_seed + k
                folder = out / "runs" / f"{loss}-seed{seed}"
                watch = _EpochShown(bar, f"{loss} seed {seed}")
                run = train_run(base, loss, seed, folder, registry, data, [watch], rows_digest)
                runs.setdefault(loss, []).append(run)
                bar.update()
                if on_run is not None:
                    on_run(run)
    summary = {loss: summarise_loss(r) for loss, r in runs.items()}
    paired = {
        loss: paired_against(runs[baseline], runs[loss], target, boots)
        for loss in losses
        if loss != baseline
    }
    result: dict[str, Any] = {
        "config_digest": digest,
        "losses": list(losses),
        "baseline": baseline,
        "seeds": [first_seed + k for k in range(seeds)],
        "test_rows": len(target),
        "converged_within": CONVERGED_WITHIN,
        "summary": summary,
        "paired": paired,
        "runs": [
            {key: value for key, value in r.record.items() if key != "test_predictions"}
            | {"folder": str(r.folder)}
            for rs in runs.values()
            for r in rs
        ],
    }
    curves = {loss: [_history(r.folder) for r in rs] for loss, rs in runs.items()}
    landscapes, skipped = _landscapes(runs, registry, len(splits["val"])) if landscape else ({}, {})
    if skipped:
        result["landscape_skipped"] = skipped
    if landscapes:
        result["landscape"] = {
            loss: {
                "run": str(Path(land.checkpoint).parent),
                "split": land.split,
                "rows": land.rows,
                "line": land.summary_1d,
                "grid": land.summary_2d,
            }
            for loss, land in landscapes.items()
        }
    result = json_safe(result, nonfinite="null")
    text = json.dumps(result, indent=2, allow_nan=False)
    definition.write_text(text + "\n", encoding="utf-8")
    (out / "study.md").write_text(markdown_table(result) + "\n", encoding="utf-8")
    from qpcore.study_report import write_study_report

    write_study_report(out, base, result, curves, landscapes)
    return result


#: The study's landscape: a 41-point line and an 11 x 11 grid per loss, in
#: this folder of the run (``qp landscape`` writes ``landscape/``).
LANDSCAPE_STEPS, LANDSCAPE_GRID = 41, 11
LANDSCAPE_DIR = "study-landscape"


def _landscapes(
    runs: Mapping[str, Sequence[StudyRun]], registry: Registry, val_rows: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """The landscape of each loss's first finished seed, kept in its folder
    (``study-landscape/``, apart from what ``qp landscape`` writes) and read
    back by a rerun when it is still that of the run's best checkpoint: every
    loss on the same split, direction seed and span, so the lines compare.

    Returns the landscapes and, per loss left without one, why: a landscape
    is an extra, so one that cannot be drawn must not lose the study's tables.
    """
    from qpcore.landscape import loss_landscape, read_landscape, write_landscape

    found, skipped = {}, {}
    for loss, rs in runs.items():
        run = next((r for r in rs if not r.diverged and (r.folder / "best.pt").is_file()), None)
        if run is None:
            skipped[loss] = "no seed finished with a best checkpoint"
            continue
        if val_rows == 0:
            skipped[loss] = "no validation rows to evaluate the loss on"
            continue
        saved = run.folder / LANDSCAPE_DIR / "landscape.json"
        try:
            land = read_landscape(saved) if saved.is_file() else None
        except QPError:
            land = None  # damaged or from another version: computed again
        if land is None or not _is_study_landscape(land, run):
            try:
                land = loss_landscape(
                    run.folder,
                    split="val",
                    steps=LANDSCAPE_STEPS,
                    grid=LANDSCAPE_GRID,
                    seed=0,
                    registry=registry,
                )
            except QPError as exc:
                skipped[loss] = str(exc)
                continue
            write_landscape(land, saved.parent)
        found[loss] = land
    return found, skipped


def _is_study_landscape(land: Any, run: StudyRun) -> bool:
    return (
        (land.split, land.seed, land.span) == ("val", 0, 1.0)
        and (len(land.alphas), len(land.grid_alphas)) == (LANDSCAPE_STEPS, LANDSCAPE_GRID)
        and Path(land.checkpoint) == run.folder / "best.pt"
        and land.epoch == run.record["best_epoch"]
    )


def _cell(summary: Mapping[str, Any], measure: str) -> str:
    s = summary["test"][measure]
    if s["mean"] is None:
        return "-"
    if s["ci95"] is None:
        return f"{s['mean']:.4f}"
    half = (s["ci95"][1] - s["ci95"][0]) / 2
    return f"{s['mean']:.4f} ± {half:.4f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(result: Mapping[str, Any]) -> str:
    """The study as the Markdown table docs/losses.md shows."""
    lines = [
        "| loss | test Pearson | test Spearman | test MAE | epochs to 1 % of best val loss "
        "| Pearson std (seeds) | diverged | vs " + result["baseline"] + " (Pearson, seeds +/-) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for loss in result["losses"]:
        s = result["summary"][loss]
        pair = result["paired"].get(loss)
        versus = "baseline"
        if pair is not None:
            gap = pair["pearson_difference"]
            versus = (
                f"{'-' if gap is None else f'{gap:+.4f}'} "
                f"({pair['seeds_better']}+/{pair['seeds_worse']}-)"
            )
        lines.append(
            f"| {loss} | {_cell(s, 'pearson')} | {_cell(s, 'spearman')} | {_cell(s, 'mae')} "
            f"| {_num(s['epochs_to_1pct_val_loss'])} | {_num(s['pearson_std'], 4)} "
            f"| {s['diverged']}/{s['runs']} | {versus} |"
        )
    return "\n".join(lines)
