"""The HTML report: grading, escaping, what it shows, and a real browser opening it."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from browser import print_to_pdf, probe
from PIL import Image
from test_evaluation import qp_evaluate

from qpcore import report as page
from qpcore.data.manifest import Sample
from qpcore.data.protocol import DEFAULT_PARAMS
from qpcore.evaluation import EvalData, run_evaluators
from qpcore.html import Section, table
from qpcore.registry import default_registry

#: Markup that runs a script if it reaches the page unescaped.
HOSTILE = '"><img src=x onerror=alert(1)>'


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("pearson_correlation", 0.95, "good"),
        ("pearson_correlation", 0.9, "warning"),  # the seed's test is strict: > 0.9
        ("pearson_correlation", 0.8, "poor"),
        ("r2_score", 0.81, "good"),
        ("r2_score", 0.7, "warning"),
        ("mae", 0.049, "good"),
        ("mae", 0.05, "warning"),
        ("mae", 0.1, "poor"),
        ("accuracy_5pct", 0.61, "warning"),
        ("pearson_correlation", None, None),
        ("kendall_tau", 0.99, None),
    ],
)
def test_grades_follow_the_seed_thresholds(name: str, value: float | None, expected: str) -> None:
    assert page.grade(name, value) == expected


def test_markup_helpers_escape_what_they_are_given() -> None:
    cell = table(["a<b"], [[HOSTILE], [0.25], [None]])
    assert HOSTILE not in cell and html.escape(HOSTILE) in cell
    assert '<td class="num" data-value="0.25">0.2500</td>' in cell and "<td>null</td>" in cell
    # Plain strings from a plugin's Section are text, never markup.
    rendered = page.render(HOSTILE, [(HOSTILE, HOSTILE)], [Section(HOSTILE, HOSTILE)])
    assert HOSTILE not in rendered and rendered.count(html.escape(HOSTILE)) == 7


def labelled_rows(folder: Path, n: int = 60) -> EvalData:
    """Rows with real images on disk, one of them under a hostile file name."""
    rng = np.random.default_rng(0)
    target = np.clip(rng.beta(5, 1.5, n), 0, 1)
    pred = np.clip(target + rng.normal(0, 0.05, n), 0, 1)
    samples = []
    for i in range(n):
        name = f"{HOSTILE}.png" if i == int(np.argmax(np.abs(pred - target))) else f"{i}.png"
        path = folder / name
        Image.new("RGBA", (40, 30), (i * 4 % 256, 90, 200, 255)).save(path)
        samples.append(Sample(path, float(target[i]), DEFAULT_PARAMS, f"g{i % 30}", line=i + 2))
    return EvalData(pred, target, samples)


def write(folder: Path, data: EvalData, evaluators: list[str], **extra: object) -> str:
    sections: list[Section] = []
    report = run_evaluators(data, evaluators, sections=sections)
    pages = page.build_sections(
        report,
        sections,
        history=extra.get("history"),  # type: ignore[arg-type]
        config_yaml=extra.get("config_yaml"),  # type: ignore[arg-type]
        registry=default_registry(),
        device="cpu",
    )
    path = page.write_report(folder, "Evaluation report", [("data", HOSTILE)], pages)
    return path.read_text(encoding="utf-8")


def test_report_shows_every_part_and_escapes_every_name(tmp_path: Path) -> None:
    data = labelled_rows(tmp_path)
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_pearson": 0.5, "lr": 1e-3}
        for e in range(1, 6)
    ]
    text = write(
        tmp_path / "out",
        data,
        ["regression", "bands", "calibration"],
        history=history,
        config_yaml=f"output:\n  name: '{HOSTILE}'\n",
    )
    assert HOSTILE not in text and html.escape(HOSTILE) in text
    for title in (
        "Headline",
        "Predicted against true",
        "Worst predictions",
        "Quality bands",
        "Calibration",
        "Training curves",
        "All metrics",
        "Resolved config",
        "Environment",
    ):
        assert f"<h2>{title}</h2>" in text
    # Self-contained: every image inline, nothing fetched (the CSP forbids it too).
    sources = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(sources) == 5 + 10 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "default-src 'none'" in text and "http" not in text.replace("http-equiv", "")
    for name in ("prediction_scatter", "error_distribution", "quality_bands", "reliability"):
        with Image.open(tmp_path / "out" / "plots" / f"{name}.png") as plot:
            assert plot.size[0] > 300
    # Headline cards carry the seed's grade of this data's numbers.
    m = run_evaluators(data, ["regression"])["metrics"]
    card = re.search(r'<div class="card (\w+)" data-metric="mae">', text)
    assert card and card.group(1) == page.grade("mae", m["mae"])


def test_loss_components_section_tabulates_every_term_and_weight(tmp_path: Path) -> None:
    data = labelled_rows(tmp_path, n=20)
    plain = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e} for e in (1, 2, 3)]
    assert "Loss components" not in write(tmp_path / "plain", data, ["regression"], history=plain)
    history = [
        {
            **row,
            "train_loss_ssim": 0.5 / row["epoch"],
            "train_loss_ranking": 0.125,
            "train_loss_weight_ssim": 1.0,
            "train_loss_weight_ranking": 0.1 * row["epoch"],
            "val_loss_ssim": 0.75 / row["epoch"],
        }
        for row in plain
    ]
    text = write(tmp_path / "out", data, ["regression"], history=history)
    assert "<h2>Loss components</h2>" in text and "epochs 1 to 3" in text
    section = text.split("<h2>Loss components</h2>")[1].split("<h2>")[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", section)
    # component, train first, train last, val first, val last; ranking has no val.
    assert cells[:5] == ["ranking", "0.1250", "0.1250", "-", "-"]
    assert cells[5:10] == ["ssim", "0.5000", "0.1667", "0.7500", "0.2500"]
    assert cells[10:15] == ["weight_ranking", "0.1000", "0.3000", "-", "-"]
    with Image.open(tmp_path / "out" / "plots" / "loss_components.png") as plot:
        assert plot.size[0] > 600


def test_report_of_degenerate_data_says_why_instead_of_failing(tmp_path: Path) -> None:
    data = labelled_rows(tmp_path, n=1)
    text = write(tmp_path / "out", data, ["regression", "bands", "calibration"])
    assert "needs at least 2 rows" in text and "Too few rows for a reliability plot" in text
    assert 'data-metric="pearson_correlation"' in text


def test_qp_evaluate_report_opens_in_a_real_browser(
    best: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    everything = ("regression", "bands", "calibration", "features", "timing")
    result = qp_evaluate(best, tiny_manifest, out, *everything)
    assert result.exit_code == 0, result.output
    report = out / "report.html"
    assert f"wrote {report}" in result.output
    text = report.read_text(encoding="utf-8")
    assert "<h2>Training curves</h2>" in text and "<h2>Timing</h2>" in text
    assert "<h2>Features</h2>" in text and "repaint_ssim" in text
    assert {p.name for p in (out / "plots").iterdir()} == {
        "prediction_scatter.png",
        "error_distribution.png",
        "quality_bands.png",
        "reliability.png",
        "training_curves.png",
    }
    seen = probe(report, tmp_path)
    assert seen["errors"] == [] and seen["violations"] == []
    assert seen["images"] == text.count("<img ") and seen["broken"] == []
    assert seen["js"] is True and seen["scripts"] == 2  # the page's one script (+ probe) ran
    assert seen["sorts"], "no sortable numeric table"
    for sort in seen["sorts"]:
        assert sort["ascending"] == sorted(sort["ascending"])
        assert sort["descending"] == sorted(sort["descending"], reverse=True)
    pdf = print_to_pdf(report, tmp_path)
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2


def test_evaluate_without_html_writes_only_the_data(best: Path, tiny_manifest: Path) -> None:
    from qpcore.evaluation import evaluate

    out = best.parent / "no-html"
    evaluate(best, tiny_manifest, ["regression"], out, html=False)
    assert {p.name for p in out.iterdir()} == {"metrics.json", "predictions.csv"}


def test_a_third_party_evaluator_adds_its_section(
    tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    """The evaluator of docs/plugins.md, installed as a distribution, reports
    metrics and a section, and the environment lists its plugin."""
    from qpcore.registry import Registry

    from conftest import REPO, make_distribution

    docs = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    example = next(b for b in docs.split("```python")[1:] if "class PerSourceEvaluator" in b)
    source = example.split("```")[0] + (
        "\nfrom qpcore import EvaluatorSpec, hookimpl\n\n"
        "@hookimpl\ndef qp_register_evaluators():\n"
        "    return [EvaluatorSpec('per_source', PerSourceEvaluator)]\n"
    )
    on_path(
        make_distribution(
            tmp_path / "dist", "qp-per-source", "0.3", {"qp_ps": source}, {"ps": "qp_ps"}
        )
    )
    registry = Registry.from_entrypoints()
    data = labelled_rows(tmp_path)
    data = EvalData(
        data.predictions,
        data.targets,
        [replace(s, source="flags" if i % 2 else "icons<&>") for i, s in enumerate(data.samples)],
    )
    sections: list[Section] = []
    report = run_evaluators(data, ["per_source"], registry, sections)
    assert report["metrics"]["mae_flags"] == pytest.approx(np.abs(data.errors[1::2]).mean())
    pages = page.build_sections(
        report, sections, history=None, config_yaml=None, registry=registry, device="cpu"
    )
    text = page.render("r", [], pages)
    assert "<h2>Per source</h2>" in text and "<td>icons&lt;&amp;&gt;</td>" in text
    assert "<td>qp-per-source</td><td>0.3</td>" in text
