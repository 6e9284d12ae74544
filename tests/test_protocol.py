"""The label protocol against an independent computation, and the fast SSIM."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import resvg_py
import vtracer
from PIL import Image
from skimage.metrics import structural_similarity

from qpcore.data.protocol import (
    DEFAULT_PARAMS,
    RANDOM_RANGES,
    VtracerParams,
    label_image,
    load_image,
    random_params,
)
from qpcore.data.ssim import reference_ssim, ssim
from qpcore.errors import UnreadableImage

from imaging import flat_logo, photo_like, save, transparent_badge

DEFAULTS = dict(
    colormode="color",
    hierarchical="stacked",
    mode="spline",
    filter_speckle=4,
    color_precision=6,
    layer_difference=16,
    corner_threshold=60,
    length_threshold=4.0,
    max_iterations=10,
    splice_threshold=45,
    path_precision=8,
)


def independent_label(path: Path, **params: object) -> float:
    """The spec, written out step by step without any qpcore code."""

    def over_white(im: Image.Image) -> np.ndarray:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))

    orig = over_white(Image.open(path))
    buffer = io.BytesIO()
    Image.fromarray(orig).save(buffer, format="PNG")
    svg = vtracer.convert_raw_image_to_svg(buffer.getvalue(), img_format="png", **params)
    png = resvg_py.svg_to_bytes(svg_string=svg, width=orig.shape[1], height=orig.shape[0])
    rendered = over_white(Image.open(io.BytesIO(bytes(png))))
    return structural_similarity(
        orig,
        rendered,
        channel_axis=2,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )


@pytest.mark.parametrize("make", [flat_logo, photo_like, transparent_badge])
def test_label_matches_the_spec_computed_independently(tmp_path: Path, make) -> None:
    path = save(make(), tmp_path / "x.png")
    assert label_image(path) == pytest.approx(independent_label(path, **DEFAULTS), abs=1e-4)
    params = VtracerParams(
        colormode="binary", mode="polygon", filter_speckle=10, color_precision=3, path_precision=3
    )
    assert label_image(path, params) == pytest.approx(
        independent_label(path, **params.as_dict()), abs=1e-4
    )


def test_flat_image_keeps_its_ssim_and_a_photo_does_not(tmp_path: Path) -> None:
    flat = label_image(save(flat_logo(), tmp_path / "flat.png"))
    photo = label_image(save(photo_like(), tmp_path / "photo.png"))
    assert flat > 0.97
    assert photo < 0.8
    assert flat - photo > 0.2


def test_transparency_is_composited_over_white(tmp_path: Path) -> None:
    pixels = load_image(save(transparent_badge(), tmp_path / "t.png"))
    assert pixels.dtype == np.uint8 and pixels.shape == (96, 96, 3)
    assert tuple(pixels[0, 0]) == (255, 255, 255)  # fully transparent corner
    # a half-transparent pixel (250, 200, 0, 128) over white, not its raw RGB
    assert tuple(int(v) for v in pixels[60, 60]) == (252, 227, 127)


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    flat = np.asarray(flat_logo(64))
    photo = np.asarray(photo_like(80, seed=1))
    noisy = np.clip(photo.astype(int) + rng.integers(-40, 40, photo.shape), 0, 255).astype(np.uint8)
    random = rng.integers(0, 256, (40, 57, 3), dtype=np.uint8)
    return [
        (flat, flat),
        (flat, np.roll(flat, 3, axis=1)),
        (photo, noisy),
        (random, rng.integers(0, 256, random.shape, dtype=np.uint8)),
        (np.full((11, 11, 3), 255, np.uint8), np.zeros((11, 11, 3), np.uint8)),
        (np.full((30, 20, 3), 7, np.uint8), np.full((30, 20, 3), 250, np.uint8)),
    ]


@pytest.mark.parametrize("index", range(6))
def test_fast_ssim_agrees_with_scikit_image(index: int) -> None:
    a, b = _pairs()[index]
    assert ssim(a, b) == pytest.approx(reference_ssim(a, b), abs=1e-4)
    assert reference_ssim(a, b) == structural_similarity(
        a,
        b,
        channel_axis=2,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )


def test_fast_ssim_reuses_buffers_safely_across_shapes() -> None:
    pairs = _pairs()
    first = [ssim(a, b) for a, b in pairs]
    assert [ssim(a, b) for a, b in reversed(pairs)] == list(reversed(first))


def test_ssim_refuses_images_smaller_than_its_window() -> None:
    tiny = np.zeros((10, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 11 pixels"):
        ssim(tiny, tiny)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"not an image at all", "not a readable image")],
)
def test_unreadable_inputs(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(UnreadableImage, match=message):
        load_image(path)


def test_truncated_png_and_pixel_limit(tmp_path: Path) -> None:
    whole = save(photo_like(), tmp_path / "whole.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UnreadableImage, match="not a readable image"):
        load_image(cut)
    with pytest.raises(UnreadableImage, match="96x96, over the limit of 1000 pixels"):
        load_image(tmp_path / "whole.png", max_pixels=1000)


def test_random_track_draws_cover_the_spec_ranges() -> None:
    rng = np.random.default_rng(0)
    draws = [random_params(rng) for _ in range(3000)]
    for name, (lo, hi) in RANDOM_RANGES.items():
        values = [getattr(d, name) for d in draws]
        assert min(values) == pytest.approx(lo, abs=0.05)
        assert max(values) == pytest.approx(hi, abs=0.05)
    assert {d.mode for d in draws} == {"spline", "polygon"}
    binary = sum(d.colormode == "binary" for d in draws) / len(draws)
    assert 0.12 < binary < 0.18  # p = 0.15
    assert all(d.hierarchical == "stacked" and d.max_iterations == 10 for d in draws)
    assert all(round(d.length_threshold, 2) == d.length_threshold for d in draws)
    assert VtracerParams.from_mapping(DEFAULTS) == DEFAULT_PARAMS
