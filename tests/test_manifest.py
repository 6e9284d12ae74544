"""Reading manifests: every bad row reported with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from qpcore.data.manifest import read_manifest
from qpcore.data.protocol import PROTOCOL, VtracerParams
from qpcore.errors import ManifestError

from imaging import flat_logo, save

HEADER = "image,ssim,label_protocol,group,source,filter_speckle,mode\n"


def write(tmp_path: Path, text: str) -> Path:
    save(flat_logo(32), tmp_path / "images" / "a.png")
    save(flat_logo(32), tmp_path / "images" / "b.png")
    path = tmp_path / "manifest.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_form_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "image,ssim\nimages/a.png,0.9\nimages/b.png,0.75\n")
    manifest = read_manifest(path)
    assert manifest.protocol is None
    first, second = manifest.samples
    assert first.image == tmp_path / "images" / "a.png" and first.ssim == 0.9
    assert first.params == VtracerParams() and first.group == "images/a.png"
    assert (second.line, second.ssim) == (3, 0.75)


def test_full_form_with_params_and_absolute_paths(tmp_path: Path) -> None:
    absolute = tmp_path / "images" / "b.png"
    text = (
        HEADER
        + f"images/a.png,0.5,{PROTOCOL},g1,synth,12,polygon\n"
        + f"{absolute},1.0,{PROTOCOL},g1,,,\n"
    )
    manifest = read_manifest(write(tmp_path, text))
    assert manifest.protocol == PROTOCOL
    a, b = manifest.samples
    assert a.params.filter_speckle == 12 and a.params.mode == "polygon" and a.source == "synth"
    assert b.image == absolute and b.params.filter_speckle == 4 and b.group == "g1"


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    text = (
        HEADER
        + f"images/a.png,0.5,{PROTOCOL},,,,\n"  # 2 fine
        + f"images/missing.png,0.5,{PROTOCOL},,,,\n"  # 3
        + f"images/a.png,nan,{PROTOCOL},,,,\n"  # 4
        + f"images/a.png,1.5,{PROTOCOL},,,,\n"  # 5
        + f"images/a.png,abc,{PROTOCOL},,,,\n"  # 6
        + f"images/a.png,0.5,{PROTOCOL},,,-3,\n"  # 7
        + f"images/a.png,0.5,{PROTOCOL},,,,curvy\n"  # 8
        + ",0.5,,,,,\n"  # 9
        + "images/b.png,0.5,other-protocol/v2,,,,\n"  # 10
    )
    with pytest.raises(ManifestError) as err:
        read_manifest(write(tmp_path, text))
    assert err.value.problems == [
        "line 3: image not found: images/missing.png",
        "line 4: ssim 'nan' is not a finite number",
        "line 5: ssim 1.5 is outside [-1, 1]",
        "line 6: ssim 'abc' is not a number",
        "line 7: bad vtracer params: filter_speckle must be >= 0",
        "line 8: bad vtracer params: mode must be one of spline, polygon, none",
        "line 9: empty image path",
        f"mixes label protocols: '{PROTOCOL}' (first at line 2), 'other-protocol/v2' "
        "(first at line 10); one manifest holds one protocol",
    ]
    assert str(err.value).startswith(f"{tmp_path / 'manifest.csv'}: 8 problems:")


def test_missing_columns_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="line 1: missing required column 'ssim'"):
        read_manifest(write(tmp_path, "image,label\nimages/a.png,0.4\n"))
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(write(tmp_path, "image,ssim\n"))
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "nope.csv")


def test_image_check_can_be_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "image,ssim\nimages/gone.png,0.3\n")
    assert read_manifest(path, check_images=False).samples[0].ssim == 0.3


def test_svg_size_columns_are_optional_and_checked(tmp_path: Path) -> None:
    save(flat_logo(32), tmp_path / "a.png")
    save(flat_logo(40), tmp_path / "b.png")
    path = tmp_path / "m.csv"
    path.write_text("image,ssim,svg_bytes,svg_paths\na.png,0.9,1234,7\nb.png,0.8,,\n")
    a, b = read_manifest(path).samples
    assert (a.svg_bytes, a.svg_paths, b.svg_bytes, b.svg_paths) == (1234, 7, None, None)
    path.write_text("image,ssim,svg_bytes,svg_paths\na.png,0.9,-3,x\n")
    with pytest.raises(ManifestError) as error:
        read_manifest(path)
    assert "line 2: svg_bytes '-3' is not a whole number of 0 or more" in str(error.value)
    assert "line 2: svg_paths 'x' is not a whole number" in str(error.value)
