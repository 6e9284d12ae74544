"""`qp data corpus`: a real (tiny) npm tarball and wheel in a cache, built end to end.

The network is what the fetch step would otherwise need, so the tests make the
packages themselves, in the layout of the real ones, and put them where a
previous download would have left them (or behind a fake ``npm`` command).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from qpcore.cli import cli
from qpcore.data.corpus import build_corpus, reserved_reason, select
from qpcore.data.corpus import sources as catalogue
from qpcore.data.corpus.fetch import integrity_of, npm_tarball, read_icon_set, tarball_name
from qpcore.data.corpus.sources import SOURCES, Source
from qpcore.data.corpus.stage import stage_source
from qpcore.data.manifest import read_manifest
from qpcore.data.protocol import DEFAULT_PARAMS, label_pixels, load_image
from qpcore.errors import QPError

from imaging import photo_like

SIZE = 256
ICONS = {
    # a colour square
    "square": {"body": '<rect x="3" y="3" width="18" height="18" rx="3" fill="#d22f3c"/>'},
    # 2:1, monochrome: gets a drawn colour and transparent bands above and below
    "wide": {
        "width": 48,
        "body": '<rect x="0" y="0" width="48" height="24" fill="currentColor"/>',
    },
    "circle": {
        "body": '<circle cx="12" cy="12" r="8" fill="none" stroke="currentColor" stroke-width="3"/>'
    },
    # a variant of circle: at most one of the two is used
    "circle-filled": {"body": '<circle cx="12" cy="12" r="8" fill="currentColor"/>'},
    "ghost": {"body": '<rect width="24" height="24" fill="#000"/>', "hidden": True},
    # white on white: drawn for dark backgrounds, passed over
    "blank": {"body": '<rect x="2" y="2" width="20" height="20" fill="#fff"/>'},
    # a brand logo inside an allowed set: skipped
    "brand-acme": {"body": '<path d="M2 22L12 2l10 20z" fill="#123456"/>'},
}
USABLE = 3  # square, wide, and circle or circle-filled


def make_tarball(path: Path, icons: dict | None = None, with_icons: bool = True) -> Path:
    """An ``@iconify-json``-style npm tarball: package/{package,icons,info}.json."""
    members = {
        "package/package.json": {"name": "@qp-test/icons", "version": "1.0.0", "license": "MIT"},
        "package/info.json": {
            "name": "QP Test Icons",
            "author": {"name": "qpcore tests"},
            "license": {"title": "MIT", "url": "https://example.invalid/license"},
        },
    }
    if with_icons:
        members["package/icons.json"] = {
            "prefix": "qptest",
            "width": 24,
            "height": 24,
            "icons": icons or ICONS,
            "aliases": {"sq": {"parent": "square"}},
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            data = json.dumps(content).encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def icon_source(integrity: str, **changes: str) -> Source:
    values = {
        "name": "qptest",
        "package": "@qp-test/icons",
        "version": "1.0.0",
        "integrity": integrity,
        "licence": "MIT",
        "style": "test icons",
        "variants": r"-filled$",
        **changes,
    }
    return Source(**values)  # type: ignore[arg-type]


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_wheel(cache: Path) -> Source:
    """A wheel holding two photos, and the source that pins them."""
    photos = {
        "qp_test_photos/images/alpha.jpg": jpeg(photo_like(320).resize((320, 200))),
        "qp_test_photos/images/beta.jpg": jpeg(photo_like(320, seed=3).resize((320, 200))),
    }
    path = cache / "pypi" / "qp_test_photos-1.0-py3-none-any.whl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in photos.items():
            archive.writestr(name, data)
        archive.writestr("qp_test_photos-1.0.dist-info/METADATA", "License-Expression: MIT\n")
    members = tuple((name, hashlib.sha256(data).hexdigest()) for name, data in photos.items())
    return Source("qpphotos", "qp-test-photos", "1.0", "", "MIT", "test photos", "photos", members)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[Source, ...]]:
    """A download cache holding the test tarball and wheel, and their sources."""
    cache = tmp_path_factory.mktemp("corpus-cache")
    tarball = make_tarball(cache / "npm" / "qp-test-icons-1.0.0.tgz")
    return cache, (icon_source(integrity_of(tarball)), make_wheel(cache))


SEED = 9  # gives the tiny corpus degraded copies of all three kinds, in both sources


@pytest.fixture(scope="module")
def built(packages: tuple[Path, tuple[Source, ...]], tmp_path_factory) -> Path:
    cache, sources = packages
    out = tmp_path_factory.mktemp("corpus") / "out"
    result = build_corpus(
        out, sources, per_source=4, seed=SEED, workers=1, progress=False, cache=cache
    )
    assert not result.interrupted
    assert {t: s.errors for t, s in result.summaries.items()} == {"default": 0, "random": 0}
    return out


def provenance(out: Path) -> list[dict[str, str]]:
    with (out / "provenance.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_icons_are_256_rgba_with_aspect_kept_and_transparent_margins(built: Path) -> None:
    rows = {r["group"]: r for r in provenance(built) if r["source"] == "qptest"}
    for row in rows.values():
        with Image.open(built / row["image"]) as image:
            assert image.size == (SIZE, SIZE) and image.mode == "RGBA"
    wide = np.asarray(Image.open(built / rows["qptest:wide"]["image"]))
    alpha = wide[..., 3]
    assert alpha[:64].max() == 0 and alpha[192:].max() == 0  # 2:1 -> 256x128, centred
    assert alpha[64:192].min() == 255
    colour = rows["qptest:wide"]["colour"]
    assert colour.startswith("#") and "currentColor" not in colour
    assert tuple(wide[128, 128, :3]) == tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    square = np.asarray(Image.open(built / rows["qptest:square"]["image"]))
    assert square[0, 0, 3] == 0 and tuple(square[128, 128]) == (0xD2, 0x2F, 0x3C, 255)


def test_hidden_blank_brand_and_variant_icons_are_skipped(built: Path) -> None:
    groups = {r["group"] for r in provenance(built) if r["source"] == "qptest"}
    assert len(groups) == USABLE
    assert {"qptest:square", "qptest:wide"} < groups
    assert len(groups & {"qptest:circle", "qptest:circle-filled"}) == 1
    text = (built / "SOURCES.md").read_text()
    assert "| qptest | `@qp-test/icons@1.0.0` | MIT | QP Test Icons | qpcore tests |" in text
    assert "| 6 | 3 |" in text and "blank" in text  # 6 visible, 3 used, blank passed over


def test_photo_crops_share_their_photo_group(built: Path) -> None:
    rows = [r for r in provenance(built) if r["source"] == "qpphotos"]
    assert len(rows) == 4
    assert {r["group"] for r in rows} == {"qpphotos:alpha", "qpphotos:beta"}
    for row in rows:
        assert "#crop=" in row["origin"]
        with Image.open(built / row["image"]) as image:
            assert image.size == (SIZE, SIZE)
    assert "License-Expression" not in (built / "SOURCES.md").read_text()


def test_degraded_copies_share_the_group_and_are_recorded(built: Path) -> None:
    rows = provenance(built)
    by_image = {r["image"]: r for r in rows}
    copies = [r for r in rows if r["parent"]]
    assert {r["source"].split("+")[0] for r in copies} == {"qptest", "qpphotos"}
    assert {r["degradation"] for r in copies} == {"jpeg", "rescale", "noise"}
    for copy in copies:
        parent = by_image[copy["parent"]]
        kind, param = copy["degradation"], float(copy["degradation_param"])
        assert copy["image"] == copy["parent"].replace(".png", f"_{kind}.png")
        assert copy["group"] == parent["group"]
        assert copy["source"] == f"{parent['source']}+{kind}"
        low, high = {"jpeg": (30, 85), "rescale": (2, 4), "noise": (3, 12)}[kind]
        assert low <= param <= high
        with Image.open(built / copy["image"]) as image:
            assert image.mode == "RGB" and image.size == (SIZE, SIZE)


def test_both_manifests_have_the_right_rows(built: Path) -> None:
    rows = provenance(built)
    default = read_manifest(built / "default" / "manifest.csv")
    random = read_manifest(built / "random" / "manifest.csv")
    assert len(default.samples) == len(rows) and len(random.samples) == 2 * len(rows)
    assert default.protocol == random.protocol == "vtracer-resvg-ssim/v1"
    assert all(s.params == DEFAULT_PARAMS for s in default.samples)
    assert sum(s.params != DEFAULT_PARAMS for s in random.samples) == len(random.samples)
    expected = {r["image"]: (r["source"], r["group"]) for r in rows}
    for manifest in (default, random):
        for sample in manifest.samples:
            name = sample.image.relative_to(manifest.path.parent).as_posix()
            assert (sample.source, sample.group) == expected[name]
            assert sample.image.read_bytes() == (built / name).read_bytes()


def test_labels_follow_the_protocol(built: Path) -> None:
    for track in ("default", "random"):
        sample = read_manifest(built / track / "manifest.csv").samples[-1]
        label = label_pixels(load_image(sample.image), sample.params)
        assert abs(label.ssim - sample.ssim) < 1e-6


def test_same_seed_same_bytes_other_seed_other_picks(
    packages: tuple[Path, tuple[Source, ...]], tmp_path: Path
) -> None:
    cache, (icons, _) = packages
    tarball = cache / "npm" / tarball_name(icons)
    runs = [stage_source(icons, tarball, tmp_path / f"r{i}", SEED, 2, SIZE) for i in range(2)]
    assert runs[0][0] == runs[1][0]
    for row in runs[0][0]:
        assert (tmp_path / "r0" / row.image).read_bytes() == (
            tmp_path / "r1" / row.image
        ).read_bytes()
    other = [stage_source(icons, tarball, tmp_path / f"s{s}", s, 2, SIZE)[0] for s in range(4)]
    assert len({tuple(r.group for r in rows) for rows in other}) > 1


def test_two_workers_build_the_same_corpus(
    built: Path, packages: tuple[Path, tuple[Source, ...]], tmp_path: Path
) -> None:
    cache, sources = packages
    out = tmp_path / "out"
    build_corpus(out, sources, 4, SEED, workers=2, progress=False, cache=cache)
    names = ["provenance.csv", "default/manifest.csv", "random/manifest.csv"]
    names += [r["image"] for r in provenance(built)]
    for name in names:
        assert (out / name).read_bytes() == (built / name).read_bytes(), name


def test_a_finished_build_resumes_and_refuses_other_settings(
    built: Path, packages: tuple[Path, tuple[Source, ...]]
) -> None:
    cache, sources = packages
    again = build_corpus(built, sources, 4, SEED, workers=1, progress=False, cache=cache)
    assert all(s.skipped == s.jobs and s.rows == 0 for s in again.summaries.values())
    with pytest.raises(QPError, match="other settings"):
        build_corpus(built, sources, 4, SEED + 1, workers=1, progress=False, cache=cache)


@pytest.mark.parametrize(
    "name",
    [
        "@iconify-json/twemoji",
        "twemoji",
        "@iconify-json/fluent-emoji-flat",
        "@iconify-json/noto-v1",
        "@iconify-json/openmoji",
        "@iconify-json/simple-icons",
        "@iconify-json/logos",
        "@iconify-json/devicon-plain",
        "@iconify-json/fa6-brands",
        "@iconify-json/cryptocurrency-color",
        "@iconify-json/vscode-icons",
        "@iconify-json/flat-color-icons",
        "flag-icons",
        "scikit-image",
        "matplotlib",
    ],
)
def test_the_deny_list_refuses_reserved_sets(name: str) -> None:
    assert reserved_reason(name) is not None
    with pytest.raises(QPError, match="held out of training data"):
        icon_source("sha512-x", name=name.split("/")[-1], package=name)


def test_the_table_uses_no_reserved_set_and_select_checks_names() -> None:
    assert all(reserved_reason(s.package) is None for s in SOURCES)
    assert reserved_reason("@iconify-json/tabler") is None
    assert [s.name for s in select("photos,tabler")] == ["tabler", "photos"]
    with pytest.raises(QPError, match="held out"):
        select("tabler,twemoji")
    with pytest.raises(QPError, match="unknown corpus source nope"):
        select("nope")


def test_a_missing_tarball_without_npm_names_the_package(tmp_path: Path) -> None:
    source = icon_source("sha512-AAAA")
    with pytest.raises(QPError, match=r"@qp-test/icons@1\.0\.0: npm is not installed"):
        npm_tarball(source, tmp_path, npm=str(tmp_path / "no-npm"))


def fake_npm(path: Path, script: str) -> str:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_npm_pack_is_used_and_checked(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "made" / "x.tgz")
    integrity = integrity_of(tarball)
    report = json.dumps([{"filename": "qp-test-icons-1.0.0.tgz", "integrity": integrity}])
    npm = fake_npm(tmp_path / "npm", f"cp {tarball} qp-test-icons-1.0.0.tgz\necho '{report}'\n")
    got = npm_tarball(icon_source(integrity), tmp_path / "cache", npm=npm)
    assert got == tmp_path / "cache" / "npm" / "qp-test-icons-1.0.0.tgz"
    assert read_icon_set(got, icon_source(integrity)).package_licence == "MIT"
    with pytest.raises(QPError, match="npm reports integrity"):
        npm_tarball(icon_source("sha512-AAAA"), tmp_path / "other", npm=npm)


def test_a_failing_fetch_or_a_bad_package_is_a_qperror(tmp_path: Path) -> None:
    failing = fake_npm(tmp_path / "npm", "echo 'npm error 404 Not Found' >&2\nexit 1\n")
    with pytest.raises(QPError, match=r"cannot fetch @qp-test/icons@1\.0\.0.*\n.*404"):
        npm_tarball(icon_source("sha512-AAAA"), tmp_path / "c1", npm=failing)
    make_tarball(tmp_path / "c2" / "npm" / "qp-test-icons-1.0.0.tgz")
    with pytest.raises(QPError, match="does not match the pin"):
        npm_tarball(icon_source("sha512-AAAA"), tmp_path / "c2")
    empty = make_tarball(tmp_path / "c3" / "npm" / "qp-test-icons-1.0.0.tgz", with_icons=False)
    source = icon_source(integrity_of(empty))
    with pytest.raises(QPError, match=r"no package/icons\.json"):
        build_corpus(tmp_path / "o3", [source], 2, workers=1, progress=False, cache=tmp_path / "c3")
    bad = make_wheel(tmp_path / "c4")
    (tmp_path / "c4" / "pypi" / "qp_test_photos-1.0-py3-none-any.whl").write_bytes(b"no zip")
    with pytest.raises(QPError, match="not a readable wheel"):
        build_corpus(tmp_path / "o4", [bad], 2, workers=1, progress=False, cache=tmp_path / "c4")


def test_cli_lists_and_builds(
    packages: tuple[Path, tuple[Source, ...]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, (icons, _) = packages
    monkeypatch.setenv("QP_CACHE_DIR", str(cache.parent / "cli-cache"))
    (cache.parent / "cli-cache").mkdir(exist_ok=True)
    link = cache.parent / "cli-cache" / "corpus"
    if not link.exists():
        link.symlink_to(cache)
    monkeypatch.setattr(catalogue, "SOURCES", (icons,))
    runner = CliRunner()
    listed = runner.invoke(cli, ["data", "corpus", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "| qptest | @qp-test/icons | 1.0.0 | MIT | 6 | test icons |" in listed.output
    out = tmp_path / "corpus"
    args = ["data", "corpus", "--out", str(out), "--per-source", "2", "--seed", "1"]
    done = runner.invoke(cli, [*args, "--workers", "1", "--quiet"])
    assert done.exit_code == 0, done.output
    assert "| qptest | 2 | 2 |" in done.stderr and "**total**" in done.stderr
    assert (out / "default" / "manifest.csv").exists() and (
        out / "random" / "manifest.csv"
    ).exists()
    refused = runner.invoke(cli, ["data", "corpus", "--out", str(out), "--sources", "twemoji"])
    assert refused.exit_code == 2 and "held out of training data" in refused.stderr
    missing = runner.invoke(cli, ["data", "corpus"])
    assert missing.exit_code == 2 and "--out" in missing.stderr
