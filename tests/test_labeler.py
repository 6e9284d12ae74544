"""`qp data label`: bad inputs, names, determinism, and resuming a killed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qpcore.cli import cli
from qpcore.data import protocol
from qpcore.data.jobs import label_jobs
from qpcore.data.labeler import run_jobs
from qpcore.data.manifest import read_manifest

from imaging import flat_logo, photo_like, save, transparent_badge

QP = str(Path(sys.executable).parent / "qp")


def qp(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stderr


def make_inputs(root: Path, count: int) -> Path:
    for i in range(count):
        make = (flat_logo, photo_like, transparent_badge)[i % 3]
        image = make(64) if make is not photo_like else photo_like(64, seed=i)
        save(image, root / f"img_{i:03d}.png")
    return root


def bad_inputs(root: Path) -> dict[str, str]:
    good = save(photo_like(64), root / "good.png").read_bytes()
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("hello, I am not a picture")
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "corrupt.png").write_bytes(bytes(range(256)) * 8)
    save(flat_logo(300), root / "huge.png")
    save(flat_logo(8), root / "tiny.png")
    return {
        "empty.png": "empty file (0 bytes)",
        "text.png": "not a readable image",
        "truncated.png": "not a readable image",
        "corrupt.png": "not a readable image",
        "huge.png": "image is 300x300, over the limit of 50000 pixels",
        "tiny.png": "at least 11 pixels",
    }


def test_bad_inputs_go_to_errors_csv_and_the_run_goes_on(tmp_path: Path) -> None:
    expected = bad_inputs(tmp_path / "in")
    code, err = qp(
        "data",
        "label",
        str(tmp_path / "in"),
        "--out",
        str(tmp_path / "out"),
        "--max-pixels",
        "50000",
        "--workers",
        "2",
        "--quiet",
    )
    assert code == 0
    assert "Done: 1 images labelled (1 rows" in err and "6 failed" in err
    errors = (tmp_path / "out" / "errors.csv").read_text().splitlines()
    assert errors[0] == "image,error"
    found = {Path(line.split(",", 1)[0]).name: line.split(",", 1)[1] for line in errors[1:]}
    assert set(found) == set(expected)
    for name, reason in expected.items():
        assert reason in found[name], name
    manifest = read_manifest(tmp_path / "out" / "manifest.csv")
    assert [s.image.name for s in manifest.samples] == ["good.png"]
    assert (tmp_path / "out" / "images" / "good.png").read_bytes() == (
        tmp_path / "in" / "good.png"
    ).read_bytes()


def test_nothing_labelled_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"")
    code, err = qp("data", "label", str(tmp_path / "in" / "a.png"), "--out", str(tmp_path / "o"))
    assert code == 2 and "1 failed" in err


def test_vectorizer_and_renderer_failures_are_rows_in_errors_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Neither fails on a valid image, so each is fed input it really rejects.
    make_inputs(tmp_path / "in", 2)
    jobs = label_jobs([str(tmp_path / "in")], "default", 1, 0)
    monkeypatch.setattr(protocol, "encode_png", lambda pixels: b"no png here")
    summary = run_jobs(jobs[:1], tmp_path / "a", {"kind": "t"}, workers=1, progress=False)
    assert summary.errors == 1
    assert "Failed to decode img_bytes" in (tmp_path / "a" / "errors.csv").read_text()
    monkeypatch.undo()
    monkeypatch.setattr(protocol, "vectorize", lambda pixels, params: "<svg")
    summary = run_jobs(jobs[:1], tmp_path / "b", {"kind": "t"}, workers=1, progress=False)
    assert summary.errors == 1
    assert "does not have a root node" in (tmp_path / "b" / "errors.csv").read_text()


def test_names_collide_only_with_a_suffix_and_globs_expand(tmp_path: Path) -> None:
    save(flat_logo(32), tmp_path / "x" / "logo.png")
    save(photo_like(32), tmp_path / "y" / "logo.png")
    save(flat_logo(40), tmp_path / "y" / "deep" / "mark.PNG")
    (tmp_path / "y" / "notes.txt").write_text("not an image, skipped in folders")
    code, _ = qp(
        "data",
        "label",
        str(tmp_path / "x" / "logo.png"),
        str(tmp_path / "y"),
        str(tmp_path / "x" / "*.png"),
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    )
    assert code == 0
    samples = read_manifest(tmp_path / "out" / "manifest.csv").samples
    assert [s.image.name for s in samples] == ["logo.png", "mark.PNG", "logo-1.png"]
    assert len({s.group for s in samples}) == 3


def test_missing_inputs_and_bad_options_exit_2(tmp_path: Path) -> None:
    code, err = qp("data", "label", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert code == 2 and "nope: no such file or folder" in err
    code, err = qp("data", "label", str(tmp_path / "*.gif"), "--out", str(tmp_path / "o"))
    assert code == 2 and "the pattern matches no file" in err
    make_inputs(tmp_path / "in", 1)
    code, err = qp(
        "data", "label", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--per-image", "3"
    )
    assert code == 2 and "needs --track random" in err


def test_same_result_whatever_the_number_of_workers(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 12)
    args = [
        "data",
        "label",
        str(tmp_path / "in"),
        "--track",
        "random",
        "--per-image",
        "2",
        "--seed",
        "7",
        "--quiet",
    ]
    assert qp(*args, "--out", str(tmp_path / "w1"), "--workers", "1")[0] == 0
    assert qp(*args, "--out", str(tmp_path / "w2"), "--workers", "2")[0] == 0
    one = (tmp_path / "w1" / "manifest.csv").read_text()
    assert one == (tmp_path / "w2" / "manifest.csv").read_text()
    assert len(one.splitlines()) == 25
    samples = read_manifest(tmp_path / "w1" / "manifest.csv").samples
    assert len({s.params for s in samples}) > 20  # random draws, two per image


def test_other_settings_are_refused_in_the_same_folder(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 2)
    base = ["data", "label", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--quiet"]
    assert qp(*base)[0] == 0
    code, err = qp(*base, "--seed", "3")
    assert code == 2 and "made with other settings (seed=0)" in err
    code, err = qp(*base)
    assert code == 0 and "0 images labelled" in err and "2 already done" in err


def _rows(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_run_resumes_to_the_same_dataset(tmp_path: Path, how: int) -> None:
    make_inputs(tmp_path / "in", 150)
    args = ["data", "label", str(tmp_path / "in"), "--track", "random", "--quiet"]
    reference = subprocess.run(
        [QP, *args, "--out", str(tmp_path / "ref"), "--workers", "2"],
        capture_output=True,
        text=True,
    )
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [QP, *args, "--out", str(out), "--workers", "1"],
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background inherits an ignored SIGINT, which the
        # child would keep (as a background job should): give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while _rows(out / "manifest.csv") < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, how)
    _, stderr = proc.communicate(timeout=60)
    partial = _rows(out / "manifest.csv")
    assert 20 <= partial < 150, "the run finished before it could be interrupted"
    if how == signal.SIGINT:
        assert proc.returncode == 130
        assert "Interrupted:" in stderr and "Run the same command again" in stderr
    resumed = subprocess.run(
        [QP, *args, "--out", str(out), "--workers", "2"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{partial} already done" in resumed.stderr or how == signal.SIGKILL
    assert (out / "manifest.csv").read_text() == (tmp_path / "ref" / "manifest.csv").read_text()


def test_each_row_records_its_svg_size_and_path_count(tmp_path: Path) -> None:
    import csv

    import vtracer

    make_inputs(tmp_path / "in", 6)
    out = tmp_path / "out"
    code, err = qp(
        "data", "label", str(tmp_path / "in"), "--out", str(out), "--track", "random", "-q"
    )
    assert code == 0, err
    samples = read_manifest(out / "manifest.csv").samples
    sizes = set()
    for sample in samples:
        pixels = protocol.load_image(sample.image)
        svg = vtracer.convert_raw_image_to_svg(
            protocol.encode_png(pixels), img_format="png", **sample.params.as_dict()
        )
        assert sample.svg_bytes == len(svg.encode())
        assert sample.svg_paths == svg.count("<path") > 0
        sizes.add(sample.svg_bytes)
    assert len(sizes) > 1
    # A folder begun before sizes were recorded: its rows are labelled again.
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    old = [c for c in rows[0] if c not in ("svg_bytes", "svg_paths")]
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, old, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    assert read_manifest(out / "manifest.csv").samples[0].svg_bytes is None  # still loads
    code, err = qp(
        "data", "label", str(tmp_path / "in"), "--out", str(out), "--track", "random", "-q"
    )
    assert code == 0, err
    again = read_manifest(out / "manifest.csv").samples
    assert [(s.svg_bytes, s.svg_paths) for s in again] == [
        (s.svg_bytes, s.svg_paths) for s in samples
    ]
