"""Hostile input, table-driven: every class of bad input gets a clear refusal.

Each case writes its bad input into a fresh folder, runs one ``qp`` command on
it (in process, through click's runner) and states the exit code and what the
message must say. A new loader or command joins by adding rows here. Cases that
need real processes (locks, kill -9, full disk, timeouts) follow the table.
"""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image, PngImagePlugin
from test_trainer import run_config

from qpcore.cli import cli
from qpcore.data.labeler import MANIFEST

from conftest import make_distribution
from imaging import flat_logo, save

QP = str(Path(sys.executable).parent / "qp")


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@dataclass(frozen=True)
class Fixtures:
    """What a case may build on: a labelled manifest and a trained checkpoint."""

    manifest: Path
    best: Path


@dataclass(frozen=True)
class Case:
    """One hostile input: ``make`` writes it under a folder and returns the argv."""

    id: str
    make: Callable[[Path, Fixtures], list[str]]
    says: str  # a regex the combined output must match
    code: int = 2
    not_says: str | None = None


# --- makers --------------------------------------------------------------------


def _config(folder: Path, text: str, name: str = "c.yaml") -> list[str]:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return ["config", "validate", str(path)]


def alias_bomb(folder: Path, _: Fixtures) -> list[str]:
    # Nine levels of nine aliases: 387 million leaves from ~500 bytes.
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return _config(folder, "\n".join(lines) + "\n")


def deep_yaml(folder: Path, _: Fixtures) -> list[str]:
    return _config(folder, "data: " + "[" * 5000 + "]" * 5000 + "\n")


def deep_json(folder: Path, _: Fixtures) -> list[str]:
    return _config(folder, '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", "c.json")


def huge_numbers_json(folder: Path, _: Fixtures) -> list[str]:
    cfg = {"trainer": {"batch_size": 10**23}, "model": {"head": {"hidden": [2_000_000_000]}}}
    return _config(folder, json.dumps(cfg), "c.json")


def boolean_epochs(folder: Path, _: Fixtures) -> list[str]:
    return _config(folder, "trainer:\n  epochs: true\n")


def escaping_name(folder: Path, _: Fixtures) -> list[str]:
    return _config(folder, "output:\n  dir: runs\n  name: ../..\n")


def absolute_rows(manifest: Path) -> list[str]:
    """The manifest's lines with absolute image paths, so a copy works anywhere."""
    header, *rows = manifest.read_text(encoding="utf-8").splitlines()
    return [header] + [re.sub(r"^images/", f"{manifest.parent}/images/", x) for x in rows]


def _manifest(folder: Path, fx: Fixtures, edit: Callable[[list[str]], list[str]]) -> list[str]:
    lines = absolute_rows(fx.manifest)
    path = folder / "m.csv"
    path.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return ["evaluate", str(fx.best), "--data", str(path)]


def stray_quote(folder: Path, fx: Fixtures) -> list[str]:
    return _manifest(folder, fx, lambda lines: [*lines[:3], '"' + lines[3], *lines[4:]])


def huge_field(folder: Path, fx: Fixtures) -> list[str]:
    return _manifest(folder, fx, lambda lines: [*lines[:2], "x" * 200_000 + ",0.5", *lines[2:]])


def duplicate_row(folder: Path, fx: Fixtures) -> list[str]:
    return _manifest(folder, fx, lambda lines: [*lines, lines[5]])


def conflicting_row(folder: Path, fx: Fixtures) -> list[str]:
    def edit(lines: list[str]) -> list[str]:
        fields = next(csv.reader([lines[5]]))
        fields[1] = "0.123456"
        return [*lines, ",".join(fields)]

    return _manifest(folder, fx, edit)


def _checkpoint(folder: Path, fx: Fixtures, payload: object) -> Path:
    path = folder / "bad.pt"
    torch.save(payload, path)
    return path


def nan_weights(folder: Path, fx: Fixtures) -> list[str]:
    payload = torch.load(fx.best, weights_only=True)
    name = next(k for k, v in payload["model"].items() if v.is_floating_point())
    payload["model"][name] = torch.full_like(payload["model"][name], float("nan"))
    image = save(flat_logo(64), folder / "a.png")
    return ["predict", str(_checkpoint(folder, fx, payload)), str(image), "--format", "json"]


def nan_weights_evaluate(folder: Path, fx: Fixtures) -> list[str]:
    argv = nan_weights(folder, fx)
    return ["evaluate", argv[1], "--data", str(fx.manifest)]


def empty_checkpoint(folder: Path, fx: Fixtures) -> list[str]:
    (folder / "empty.pt").write_bytes(b"")
    return ["predict", str(folder / "empty.pt"), str(save(flat_logo(64), folder / "a.png"))]


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def malicious_pickle(folder: Path, fx: Fixtures) -> list[str]:
    path = folder / "evil.pt"
    torch.save({"format": "qpcore-checkpoint", "x": Evil()}, path)
    return ["predict", str(path), str(save(flat_logo(64), folder / "a.png"))]


def deep_metadata(folder: Path, fx: Fixtures) -> list[str]:
    payload = torch.load(fx.best, weights_only=True)
    payload["meta"] = '{"config": ' + "[" * 200_000 + "]" * 200_000 + "}"
    path = _checkpoint(folder, fx, payload)
    return ["predict", str(path), str(save(flat_logo(64), folder / "a.png"))]


def damaged_dataset_settings(folder: Path, _: Fixtures) -> list[str]:
    out = folder / "out"
    out.mkdir()
    (out / ".qp-dataset.json").write_bytes(b"\x00\xff garbage")
    return ["data", "synth", "--out", str(out), "--count", "2", "--size", "32", "--quiet"]


def damaged_dataset_manifest(folder: Path, _: Fixtures) -> list[str]:
    out = folder / "out"
    assert invoke("data", "synth", "--out", str(out), "--count", "2", "--size", "32", "-q")[0] == 0
    (out / MANIFEST).write_bytes(b'image,ssim\n"unclosed,0.5\n\xff\xfe')
    return ["data", "synth", "--out", str(out), "--count", "3", "--size", "32", "--quiet"]


def text_chunk_bomb_in_training(folder: Path, fx: Fixtures) -> list[str]:
    bomb = folder / "bomb.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("junk", "A" * 200_000_000, zip=True)  # ~200 KB on disk
    flat_logo(64).save(bomb, pnginfo=info)
    manifest = folder / "m.csv"
    _manifest(folder, fx, lambda lines: [*lines, f"{bomb},0.9"])
    cfg = run_config(manifest, folder, trainer={"epochs": 1, "batch_size": 8})
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    return ["train", str(folder / "c.yaml"), "--quiet"]


def output_dir_is_a_file(folder: Path, fx: Fixtures) -> list[str]:
    (folder / "afile").write_text("not a folder")
    cfg = run_config(fx.manifest, folder / "afile", trainer={"epochs": 1, "batch_size": 8})
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    return ["train", str(folder / "c.yaml"), "--quiet"]


CASES = [
    Case("yaml-alias-bomb", alias_bomb, r"c\.yaml:\d+: too large to be a config"),
    Case("yaml-deep", deep_yaml, r"nested too deeply"),
    Case("json-deep", deep_json, r"c\.json: nested too deeply"),
    Case(
        "huge-numbers",
        huge_numbers_json,
        r"trainer\.batch_size: Input should be less than or equal to 1048576",
    ),
    Case("huge-width", huge_numbers_json, r"model\.head\.hidden: every hidden width must be <="),
    Case("strict-bool", boolean_epochs, r"line 2: trainer\.epochs: expected a number"),
    Case("name-escapes-dir", escaping_name, r"line 3: output\.name: must be one folder name"),
    Case("csv-stray-quote", stray_quote, r"line 4: malformed CSV: a quote .* never closed"),
    Case("csv-huge-field", huge_field, r"line 3: malformed CSV: a field is longer than"),
    Case(
        "csv-duplicate", duplicate_row, r"line 42: duplicate row: same image and params as line 6"
    ),
    Case("csv-conflict", conflicting_row, r"line 42: conflicting label \(0\.123456 here"),
    Case("nan-weights", nan_weights, r"refused: its weights hold NaN or infinity"),
    Case("nan-weights-evaluate", nan_weights_evaluate, r"refused: its weights hold NaN"),
    Case("empty-checkpoint", empty_checkpoint, r"empty\.pt: empty file \(0 bytes\)"),
    Case(
        "malicious-pickle",
        malicious_pickle,
        r"refused as unsafe: .*\(posix\.system\).*never runs them",
        not_says="weights_only",
    ),
    Case("deep-metadata", deep_metadata, r"damaged checkpoint metadata: nested too deeply"),
    Case("damaged-settings", damaged_dataset_settings, r"\.qp-dataset\.json: damaged"),
    Case("damaged-manifest", damaged_dataset_manifest, r"manifest\.csv: damaged, cannot continue"),
    Case("png-text-bomb-train", text_chunk_bomb_in_training, r"bomb\.png: not a readable image"),
    Case("output-dir-is-a-file", output_dir_is_a_file, r"afile/run: cannot create this folder"),
]


@pytest.fixture(scope="module")
def fixtures(tiny_manifest: Path, best: Path) -> Fixtures:
    return Fixtures(tiny_manifest, best)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_clearly(case: Case, fixtures: Fixtures, tmp_path: Path) -> None:
    argv = case.make(tmp_path, fixtures)
    code, out, err = invoke(*argv)
    text = out + err
    assert code == case.code, text
    assert re.search(case.says, text), text
    assert "Internal error" not in text and "Traceback" not in text
    if case.not_says:
        assert case.not_says not in text
    assert not (tmp_path / "pwned").exists()


# --- images --------------------------------------------------------------------


def test_an_image_with_a_huge_text_chunk_is_one_unreadable_row(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("junk", "A" * 200_000_000, zip=True)  # compresses to ~200 KB
    flat_logo(64).save(bomb, pnginfo=info)
    assert bomb.stat().st_size < 1_000_000
    rows = absolute_rows(fixtures.manifest)
    rows.append(f"{bomb},0.9" + "," * (rows[0].count(",") - 1))
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    code, out, err = invoke(
        "evaluate", str(fixtures.best), "--data", str(manifest), "--out", str(tmp_path / "e")
    )
    assert code == 0, out + err
    report = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert [u["image"] for u in report["unreadable"]] == [str(bomb)]
    assert "not a readable image" in report["unreadable"][0]["error"]


def test_high_bit_depth_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 128), (128, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    values = np.tile(np.linspace(0, 1, 128, dtype=np.float32), (128, 1))
    Image.fromarray(values, "F").save(tmp_path / "float.tif")
    Image.fromarray(values * 1000 - 500, "F").save(tmp_path / "wild.tif")
    from qpcore.data.protocol import load_image

    for name in ("g16.png", "float.tif"):
        pixels = load_image(tmp_path / name)
        assert abs(float(pixels.mean()) - 127.5) < 1.0, name
        assert (pixels == 255).mean() < 0.02, name
    out = tmp_path / "out"
    code, _, err = invoke("data", "label", str(tmp_path), "--out", str(out), "--workers", "1", "-q")
    assert code == 0, err
    labels = {r["image"]: float(r["ssim"]) for r in csv.DictReader((out / MANIFEST).open())}
    assert set(labels) == {"images/g16.png", "images/float.tif"}
    assert all(v < 0.995 for v in labels.values()), labels  # clipped white scored 0.999
    errors = (out / "errors.csv").read_text()
    assert "wild.tif" in errors and "values -500 to 500" in errors


def test_predict_and_label_agree_on_tiny_images(fixtures: Fixtures, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 40, 3), np.uint8)).save(tiny)
    good = save(flat_logo(64), tmp_path / "good.png")
    code, out, err = invoke("predict", str(fixtures.best), str(tiny), str(good), "--format", "json")
    assert code == 0, err
    rows = {Path(r["image"]).name: r for r in json.loads(out)}
    assert rows["tiny.png"]["predicted_ssim"] is None
    assert "at least 11 pixels" in rows["tiny.png"]["error"]
    assert rows["good.png"]["predicted_ssim"] is not None
    code, _, err = invoke("data", "label", str(tiny), "--out", str(tmp_path / "o"), "-q")
    assert code == 2 and "at least 11 pixels" in (tmp_path / "o" / "errors.csv").read_text()


def test_predict_reports_unreadable_files_per_row(fixtures: Fixtures, tmp_path: Path) -> None:
    good = save(flat_logo(64), tmp_path / "good.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png")
    locked = save(flat_logo(64), tmp_path / "locked.png")
    locked.chmod(0)
    missing = tmp_path / "missing.png"
    args = [str(fixtures.best), str(good), str(garbage), str(locked), str(missing)]
    code, out, err = invoke("predict", *args, "--format", "json")
    assert code == 0, err
    rows = {Path(r["image"]).name: r for r in json.loads(out)}
    assert rows["good.png"]["predicted_ssim"] is not None
    for name in ("garbage.png", "missing.png"):
        assert rows[name]["predicted_ssim"] is None and rows[name]["error"], name
    if os.geteuid() != 0:  # root reads any file
        assert rows["locked.png"]["predicted_ssim"] is None and rows["locked.png"]["error"]


# --- plugins -------------------------------------------------------------------

EXITING = """
import sys
sys.exit(3)
"""

RAISING_FACTORY = """
from qpcore import LossSpec, hookimpl

def broken(params):
    raise RuntimeError("this loss cannot be built")

@hookimpl
def qp_register_losses():
    return [LossSpec("explodes", broken, summary="Raises when built.")]
"""


def test_a_plugin_calling_sys_exit_is_reported_as_broken(
    tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    on_path(
        make_distribution(tmp_path, "qp-exits", "1.0", {"qp_exits": EXITING}, {"exits": "qp_exits"})
    )
    code, out, err = invoke("plugins")
    assert code == 2
    assert "Cannot load plugin qp_exits" in err and "SystemExit: 3" in err
    assert "mse" in out  # the other plugins are listed as usual


def test_a_plugin_factory_that_raises_is_a_readable_error(
    tiny_manifest: Path, tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    dist = make_distribution(
        tmp_path / "dist",
        "qp-explodes",
        "1.0",
        {"qp_explodes": RAISING_FACTORY},
        {"explodes": "qp_explodes"},
    )
    on_path(dist)
    cfg = run_config(tiny_manifest, tmp_path, loss="explodes", trainer={"epochs": 1})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, out, err = invoke("train", str(tmp_path / "c.yaml"), "--quiet")
    assert code == 2, out + err
    assert "loss 'explodes'" in err and "this loss cannot be built" in err
    assert "Internal error" not in err


def test_a_misspelt_disabled_plugin_is_said_by_every_command(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  epochs: 2\n")
    code, _, err = invoke("config", "validate", str(path), env={"QP_DISABLE_PLUGINS": "qp-losess"})
    assert code == 0
    assert "QP_DISABLE_PLUGINS names 'qp-losess', which matches no plugin" in err


# --- training runs -------------------------------------------------------------


def test_train_exits_2_when_no_epoch_kept_weights(
    tiny_manifest: Path, tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    from test_trainer import NAN_LOSS

    on_path(
        make_distribution(
            tmp_path / "nan", "qp-nan", "1.0", {"qp_nan": NAN_LOSS}, {"qp_nan": "qp_nan"}
        )
    )
    cfg = run_config(tiny_manifest, tmp_path, loss={"name": "nan_after", "from_epoch": 1})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, out, err = invoke("train", str(tmp_path / "c.yaml"), "--quiet")
    assert code == 2, out + err
    assert "no weights were kept" in err and not (tmp_path / "run" / "best.pt").exists()


def _hold(folder: Path) -> subprocess.Popen[str]:
    """Another process holding ``folder`` as a qp command would, until killed."""
    script = (
        "import sys, time; from pathlib import Path; from qpcore.locking import hold_folder\n"
        "with hold_folder(Path(sys.argv[1]), 'training run'):\n"
        "    print('held', flush=True); time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_run_folder_belongs_to_one_process(tiny_manifest: Path, tmp_path: Path) -> None:
    cfg = run_config(tiny_manifest, tmp_path, trainer={"epochs": 1, "batch_size": 8})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    holder = _hold(tmp_path / "run")
    try:
        code, _, err = invoke("train", str(tmp_path / "c.yaml"), "--quiet")
        assert code == 2
        assert f"is in use by another training run (pid {holder.pid}" in err
        assert not (tmp_path / "run" / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # A lock dies with its process, kill -9 included: the folder is free again.
    code, _, err = invoke("train", str(tmp_path / "c.yaml"), "--quiet")
    assert code == 0, err


def test_a_dataset_folder_belongs_to_one_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = _hold(out)
    try:
        code, _, err = invoke(
            "data", "synth", "--out", str(out), "--count", "3", "--size", "32", "-q"
        )
        assert code == 2 and f"(pid {holder.pid}" in err
        assert not (out / MANIFEST).exists()
    finally:
        holder.kill()
        holder.wait()


def test_two_labelling_runs_started_together_never_mix(tmp_path: Path) -> None:
    from test_labeler import make_inputs

    make_inputs(tmp_path / "in", 60)
    args = [
        QP,
        "data",
        "label",
        str(tmp_path / "in"),
        "--out",
        str(tmp_path / "out"),
        "-q",
        "--workers",
        "1",
    ]
    first = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    time.sleep(0.1)
    second = subprocess.run(args, capture_output=True, text=True)
    _, first_err = first.communicate(timeout=120)
    codes = sorted([first.returncode, second.returncode])
    refused = first_err if first.returncode else second.stderr
    if codes == [0, 0]:  # the second started after the first had finished
        assert "60 already done" in second.stderr
    else:
        assert codes == [0, 2] and "is in use by another labelling run" in refused
    rows = list(csv.DictReader((tmp_path / "out" / MANIFEST).open()))
    assert len(rows) == 60 and len({r["image"] for r in rows}) == 60


def _trained(tiny_manifest: Path, out: Path, epochs: int) -> Path:
    cfg = run_config(tiny_manifest, out, trainer={"epochs": epochs, "batch_size": 8})
    (out / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = invoke("train", str(out / "c.yaml"), "--quiet")
    assert code == 0, err
    return out / "run"


def test_resume_refuses_changed_data_and_foreign_checkpoints(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = absolute_rows(tiny_manifest)
    manifest = data / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    (tmp_path / "a").mkdir()
    run = _trained(manifest, tmp_path / "a", 2)
    manifest.write_text("\n".join(rows[:-3]) + "\n")  # three rows fewer
    code, _, err = invoke("train", "--resume", str(run), "--quiet")
    assert code == 2 and "training data of" in err and "changed since the run started" in err
    manifest.write_text("\n".join(rows) + "\n")
    (tmp_path / "b").mkdir()
    other = _trained(manifest, tmp_path / "b", 2)
    (other / "last.pt").write_bytes((run / "last.pt").read_bytes())
    before = (other / "metrics.jsonl").read_text()
    code, _, err = invoke("train", "--resume", str(other), "--quiet")
    assert code == 2 and "belongs to run" in err and "holds run" in err
    assert (other / "metrics.jsonl").read_text() == before


def test_checkpoints_and_results_follow_the_umask(tiny_manifest: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run = _trained(tiny_manifest, tmp_path, 1)
    finally:
        os.umask(old)
    for name in ("last.pt", "best.pt", "metrics.jsonl", "results.json", "config.yaml"):
        assert (run / name).stat().st_mode & 0o777 == 0o644, name


# --- labelling processes -------------------------------------------------------


def _noise(path: Path, side: int) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def test_a_stuck_image_times_out_and_the_run_goes_on(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    _noise(inputs / "slow.png", 1024)  # seconds in vtracer
    save(flat_logo(64), inputs / "quick.png")
    start = time.monotonic()
    code, _, err = invoke(
        "data",
        "label",
        str(inputs),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "1",
        "--timeout",
        "0.5",
        "-q",
    )
    assert code == 0, err
    assert time.monotonic() - start < 30
    rows = list(csv.DictReader((tmp_path / "out" / MANIFEST).open()))
    assert [r["image"] for r in rows] == ["images/quick.png"]
    errors = list(csv.DictReader((tmp_path / "out" / "errors.csv").open()))
    assert len(errors) == 1 and errors[0]["image"].endswith("slow.png")
    assert "timed out" in errors[0]["error"] and "0.5 s" in errors[0]["error"]
    assert not list((tmp_path / "out" / "images").glob(".*.tmp"))


def test_killing_the_labeller_kills_its_workers(tmp_path: Path) -> None:
    from test_labeler import make_inputs

    make_inputs(tmp_path / "in", 300)
    proc = subprocess.Popen(
        [
            QP,
            "data",
            "label",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "2",
            "-q",
        ],
        stderr=subprocess.DEVNULL,
    )
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        workers = parent.children(recursive=True)
        time.sleep(0.05)
    assert len(workers) >= 2, "the workers never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers outlived their parent: {[p.pid for p in alive]}"


def test_an_interrupted_run_counts_what_it_labelled(tmp_path: Path) -> None:
    from test_labeler import make_inputs

    make_inputs(tmp_path / "in", 200)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [QP, "data", "label", str(tmp_path / "in"), "--out", str(out), "--workers", "1"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and len((out / MANIFEST).read_text().splitlines() if (out / MANIFEST).exists() else []) < 20
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    rows = len((out / MANIFEST).read_text().splitlines()) - 1
    assert 20 <= rows < 200
    assert f"Interrupted: {rows} images labelled ({rows} rows" in err


def test_a_foreign_row_does_not_survive_a_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["data", "synth", "--out", str(out), "--count", "4", "--size", "32", "-q"]
    assert invoke(*args)[0] == 0
    reference = (out / MANIFEST).read_text()
    lines = reference.splitlines()
    foreign = lines[1].replace("synth_000000", "intruder")
    doubled = lines[2]
    (out / MANIFEST).write_text("\n".join([*lines, foreign, doubled]) + "\n")
    code, _, err = invoke(*args)
    assert code == 0, err
    assert "Dropped 1 rows" in err  # the foreign one; the doubled image is labelled again
    assert (out / MANIFEST).read_text() == reference


# --- a full disk ---------------------------------------------------------------


def _limited(limit: int) -> Callable[[], None]:
    """A child whose files cannot grow past ``limit`` bytes: the disk is full for it."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_while_labelling_says_so_and_resumes(tmp_path: Path) -> None:
    from test_labeler import make_inputs

    make_inputs(tmp_path / "in", 60)
    out = tmp_path / "out"
    args = [QP, "data", "label", str(tmp_path / "in"), "--out", str(out), "--workers", "1", "-q"]
    full = subprocess.run(args, capture_output=True, text=True, preexec_fn=_limited(3000))
    assert full.returncode == 2, full.stderr
    assert full.stderr.count("disk full") == 1, full.stderr
    assert "GeneratorExit" not in full.stderr and "Traceback" not in full.stderr
    assert not list(out.rglob("*.tmp"))
    if (out / "errors.csv").exists():
        assert "No space" not in (out / "errors.csv").read_text()
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    reference = subprocess.run(
        [*args[:4], "--out", str(tmp_path / "ref"), "--workers", "1", "-q"],
        capture_output=True,
        text=True,
    )
    assert reference.returncode == 0
    assert (out / MANIFEST).read_text() == (tmp_path / "ref" / MANIFEST).read_text()


def test_a_full_disk_while_training_or_evaluating_says_so(
    tiny_manifest: Path, best: Path, tmp_path: Path
) -> None:
    cfg = run_config(tiny_manifest, tmp_path, trainer={"epochs": 2, "batch_size": 8})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    limit = best.stat().st_size // 2  # a checkpoint cannot be written whole
    train = subprocess.run(
        [QP, "train", str(tmp_path / "c.yaml"), "--quiet"],
        capture_output=True,
        text=True,
        preexec_fn=_limited(limit),
    )
    assert train.returncode == 2, train.stderr
    assert "disk full" in train.stderr and "checkpoint" in train.stderr
    assert not list((tmp_path / "run").glob(".*.tmp"))
    evaluate = subprocess.run(
        [
            QP,
            "evaluate",
            str(best),
            "--data",
            str(tiny_manifest),
            "--out",
            str(tmp_path / "e"),
            "--no-html",
        ],
        capture_output=True,
        text=True,
        preexec_fn=_limited(1000),
    )
    assert evaluate.returncode == 2 and "disk full" in evaluate.stderr, evaluate.stderr
    metrics = tmp_path / "e" / "metrics.json"
    assert not metrics.exists() or json.loads(metrics.read_text())
    assert not list((tmp_path / "e").glob(".*.tmp"))
