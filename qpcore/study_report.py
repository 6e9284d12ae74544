"""The loss study's HTML report (``out/report.html``), framed like the
evaluation report: self-contained, escaped, sortable tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qpcore.config import RunConfig
from qpcore.config_io import dump_yaml
from qpcore.html import Figure, Html, Section, join, number, paragraph, table, tag


def _mean_ci(summary: Mapping[str, Any]) -> str:
    if summary["mean"] is None:
        return "-"
    if summary["ci95"] is None:
        return number(summary["mean"])
    low, high = summary["ci95"]
    return f"{number(summary['mean'])} [{number(low)}, {number(high)}]"


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def summary_section(result: Mapping[str, Any]) -> Section:
    rows = []
    for loss in result["losses"]:
        s = result["summary"][loss]
        rows.append(
            (
                loss,
                _mean_ci(s["test"]["pearson"]),
                _mean_ci(s["test"]["spearman"]),
                _mean_ci(s["test"]["mae"]),
                _or_dash(s["epochs_to_1pct_val_loss"]),
                _or_dash(s["epochs_to_1pct_val_mae"]),
                _or_dash(s["pearson_std"]),
                _or_dash(s["mae_std"]),
                f"{s['diverged']}/{s['runs']}",
                _or_dash(s["seconds"]),
            )
        )
    headers = [
        "loss",
        "test Pearson [95% CI]",
        "test Spearman [95% CI]",
        "test MAE [95% CI]",
        "epochs to 1% of best val loss",
        "epochs to 1% of best val MAE",
        "Pearson std over seeds",
        "MAE std over seeds",
        "diverged",
        "seconds per run",
    ]
    within = f"{result['converged_within']:.0%}"
    text = paragraph(
        f"{len(result['seeds'])} seed(s) per loss ({', '.join(map(str, result['seeds']))}), "
        f"{result['test_rows']} test rows. Intervals are t-intervals over seeds; convergence "
        f"is the first epoch within {within} of the run's own best, averaged over seeds."
    )
    return Section("Losses compared", join([text, table(headers, rows)]))


def paired_section(result: Mapping[str, Any]) -> Section:
    baseline = result["baseline"]
    rows = []
    verdicts: list[Html] = []
    for loss, pair in result["paired"].items():
        t_test = pair["t_test_pearson"]
        rows.append(
            (
                loss,
                _or_dash(pair["pearson_difference"]),
                _or_dash(pair["mae_difference"]),
                pair["seeds_better"],
                pair["seeds_worse"],
                "-" if t_test is None else t_test["p_value"],
            )
        )
        for seed in pair["seeds"]:
            verdicts.append(
                tag("li", f"{loss} vs {baseline}, seed {seed['seed']}: ", seed["verdict"])
            )
    headers = [
        "loss",
        f"Pearson − {baseline} (mean over seeds)",
        f"MAE − {baseline} (mean over seeds)",
        "seeds significantly better",
        "seeds significantly worse",
        "paired t-test p (test Pearson over seeds)",
    ]
    intro = paragraph(
        f"Each loss (A) against {baseline} (B) on the same test rows and seed: bootstrap "
        "intervals, Williams' test for Pearson and Wilcoxon's for absolute errors, as in "
        "qp compare. A seed counts as better or worse when Williams' p < 0.05."
    )
    body = [intro, table(headers, rows)]
    if verdicts:
        body.append(tag("ul", *verdicts))
    return Section(f"Against {baseline}", join(body))


def runs_section(result: Mapping[str, Any]) -> Section:
    rows = [
        (
            r["loss"],
            r["seed"],
            _or_dash(r["epochs"]),
            _or_dash(r["best_epoch"]),
            _or_dash(r["test"].get("pearson")),
            _or_dash(r["test"].get("mae")),
            "yes" if r["diverged"] else "no",
            r.get("warnings", 0),
            _or_dash(r["error"] or r["stop_reason"]),
            r["folder"],
        )
        for r in result["runs"]
    ]
    headers = [
        "loss",
        "seed",
        "epochs",
        "best epoch",
        "test Pearson",
        "test MAE",
        "diverged",
        "monitor warnings",
        "stop",
        "folder",
    ]
    return Section("Runs", table(headers, rows))


def landscape_section(
    landscapes: Mapping[str, Any], skipped: Mapping[str, str] | None = None
) -> Section | None:
    """Each loss's landscape around its trained head (Li et al. 2018): the loss
    relative to its value at the trained weights and the MAE along one
    filter-normalised direction, overlaid (the same direction seed for every
    loss), then each loss's 2-D grid. A flat basin tolerates the weight noise
    of another seed or another dataset better than a sharp one. A loss left
    without one is listed with the reason."""
    missing = paragraph(
        "No landscape for "
        + "; ".join(f"{loss}: {why}" for loss, why in (skipped or {}).items())
        + "."
    )
    if not landscapes:
        return Section("Loss landscape", missing) if skipped else None
    from qpcore import plots
    from qpcore.landscape import draw_2d

    rows = []
    for loss, land in landscapes.items():
        line, grid = land.summary_1d, land.summary_2d
        rows.append(
            (
                loss,
                _or_dash(line["centre_loss"]),
                _or_dash(line["relative_rise_near"]),
                _or_dash(line["relative_rise_span"]),
                _or_dash(grid["relative_rise_span"]),
                "yes" if line["centre_is_minimum"] else "no",
            )
        )
    first = next(iter(landscapes.values()))
    headers = [
        "loss",
        "loss at the trained weights",
        f"relative rise, |alpha| <= {first.summary_1d['near']:g}",
        f"relative rise, |alpha| <= {first.span:g}",
        "relative rise over the 2-D grid",
        "centre is the line's minimum",
    ]
    figures = [
        Figure("loss_landscape", "Loss along a random direction", plots.landscape_lines(landscapes))
    ]
    figures += [
        Figure(f"loss_landscape_2d_{i}", f"{loss}: 2-D landscape", draw_2d(land))
        for i, (loss, land) in enumerate(landscapes.items())
    ]
    intro = paragraph(
        f"Each loss's own objective on the {first.split} rows ({first.rows}) around the "
        "best checkpoint of its first finished seed, the head's weight rows moved along "
        "filter-normalised random directions (biases and batch-norm kept); "
        "qp landscape RUN draws the same for any run."
    )
    parts = [intro, table(headers, rows), *([missing] if skipped else [])]
    return Section("Loss landscape", join(parts), figures)


def write_study_report(
    out: Path,
    base: RunConfig,
    result: Mapping[str, Any],
    curves: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
    landscapes: Mapping[str, Any],
) -> Path:
    from qpcore import plots
    from qpcore.report import generated_at, write_report

    sections = [summary_section(result)]
    if result["paired"]:
        sections.append(paired_section(result))
    sections.append(
        Section(
            "Curves",
            paragraph(
                "Mean per epoch over the seeds still training at that epoch (a seed "
                "that stopped early leaves the mean); the shade spans those seeds. A "
                "loss whose best value is not positive (uncertainty weighting) has no "
                "curve in the relative panels."
            ),
            [Figure("study_curves", "Validation and training curves", plots.study_curves(curves))],
        )
    )
    landscape = landscape_section(landscapes, result.get("landscape_skipped"))
    if landscape is not None:
        sections.append(landscape)
    sections.append(runs_section(result))
    sections.append(Section("Base config", tag("pre", dump_yaml(base))))
    facts = [
        ("losses", ", ".join(result["losses"])),
        ("baseline", result["baseline"]),
        ("seeds", ", ".join(map(str, result["seeds"]))),
        ("generated", generated_at()),
    ]
    return write_report(out, "Loss study", facts, sections)
