"""The synthetic generator: reproducible, well-formed, and really using every ingredient.

Datasets are regenerated from (seed, index) on other machines and by several worker
processes, so the pixels must depend on nothing else; and a generator that silently
stopped drawing text or textures would bias every model trained on it.
"""

from __future__ import annotations

import multiprocessing
import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from qpcore.data.synth import (
    FONTS,
    GENERATOR_VERSION,
    INGREDIENTS,
    LAYOUTS,
    PHOTO_KINDS,
    SynthImage,
    SynthKnobs,
    generate,
)
from qpcore.data.synth.context import draw_plan
from qpcore.data.synth.text import text_mask

#: No post-processing, so that an ingredient's pixels are not blurred or JPEG'd away.
CLEAN = SynthKnobs(p_blur=0.0, p_rescale=0.0, p_noise=0.0, p_jpeg=0.0)


def pixels(item: SynthImage) -> np.ndarray:
    return np.asarray(item.image)


def on_white(item: SynthImage) -> np.ndarray:
    """The image as the label protocol sees it: composited over white, RGB, as ints."""
    white = Image.new("RGBA", item.image.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, item.image.convert("RGBA")).convert("RGB"), int)


def forced(layout: str, **knobs: object) -> SynthKnobs:
    return replace(CLEAN, layouts=((layout, 1.0),), **knobs)


def same(a: SynthImage, b: SynthImage) -> bool:
    return a.image.mode == b.image.mode and a.image.tobytes() == b.image.tobytes()


# --- determinism --------------------------------------------------------------------


def test_same_seed_and_index_give_identical_bytes() -> None:
    for index in range(12):
        a, b = generate(11, index), generate(11, index)
        assert same(a, b)
        assert (a.source, a.features) == (b.source, b.features)


def test_other_index_or_seed_gives_another_image() -> None:
    base = generate(11, 3)
    assert not same(base, generate(11, 4))
    assert not same(base, generate(12, 3))


def test_call_order_does_not_matter() -> None:
    forward = [generate(5, i, 96) for i in range(10)]
    backward = [generate(5, i, 96) for i in reversed(range(10))][::-1]
    interleaved = {i: generate(5, i, 96) for i in (7, 2, 9, 0, 4, 1, 8, 3, 6, 5)}
    for i, item in enumerate(forward):
        assert same(item, backward[i])
        assert same(item, interleaved[i])


def test_fresh_process_gives_identical_pixels() -> None:
    """A spawned interpreter has another ``hash()`` seed and cold font caches."""
    args = [(3, i, 128) for i in range(8)]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        remote = pool.starmap(generate, args)
    for (seed, index, size), item in zip(args, remote, strict=True):
        assert same(item, generate(seed, index, size))


def test_global_random_state_is_neither_used_nor_touched() -> None:
    np.random.seed(1)
    random.seed(1)
    first = generate(2, 9)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    generate(2, 10)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert random.getstate() == py_state
    np.random.seed(99)
    random.seed(99)
    assert same(first, generate(2, 9))


# --- output form ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 100, 256])
def test_size_and_mode(size: int) -> None:
    for index in range(25):
        item = generate(0, index, size)
        assert item.image.size == (size, size)
        assert item.image.mode in ("RGB", "RGBA")
        assert item.source.startswith("synth:")
        assert set(item.features) <= set(INGREDIENTS)
        assert list(item.features) == sorted(set(item.features))


def test_transparency_is_real_where_reported() -> None:
    modes = {"transparent": 0, "opaque": 0, "semi": 0}
    for index in range(60):
        item = generate(1, index)
        if item.image.mode == "RGBA":
            alpha = pixels(item)[..., 3]
            assert "transparent" in item.features
            assert alpha.min() == 0
            modes["transparent"] += 1
            modes["semi"] += int(((alpha > 0) & (alpha < 255)).any())
        else:
            assert "transparent" not in item.features
            modes["opaque"] += 1
    assert modes["transparent"] >= 15 and modes["opaque"] >= 10
    assert modes["semi"] >= 10  # anti-aliased edges and shadows over a transparent background


def test_transparency_knob() -> None:
    knobs = replace(CLEAN, p_transparent=1.0, p_full_bleed=0.0, p_photo_full=0.0)
    assert all(generate(4, i, 96, knobs).image.mode == "RGBA" for i in range(15))
    knobs = replace(CLEAN, p_transparent=0.0)
    assert all(generate(4, i, 96, knobs).image.mode == "RGB" for i in range(15))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        generate(-1, 0)
    with pytest.raises(ValueError):
        generate(0, -1)
    with pytest.raises(ValueError, match="p_text"):
        SynthKnobs(p_text=1.5)
    with pytest.raises(ValueError, match="unknown"):
        SynthKnobs(layouts=(("poster", 1.0),))
    with pytest.raises(ValueError):
        SynthKnobs(normal_scale=(0.5, 0.2))


# --- ingredients ----------------------------------------------------------------------


def test_every_ingredient_and_layout_appears_in_200_images() -> None:
    seen: set[str] = set()
    layouts: set[str] = set()
    for index in range(200):
        item = generate(2024, index)
        seen.update(item.features)
        layouts.add(item.source.split(":")[1].split("+")[0])
    assert set(INGREDIENTS) - seen == set()
    assert layouts == set(LAYOUTS)


def test_text_is_really_drawn() -> None:
    """Forcing text on changes pixels (not just the feature list) of the same image."""
    with_text, without = replace(CLEAN, p_text=1.0), replace(CLEAN, p_text=0.0)
    for index in range(12):
        on, off = generate(8, index, 128, with_text), generate(8, index, 128, without)
        assert "text" in on.features and "text" not in off.features
        a = np.asarray(on.image.convert("RGBA"), dtype=int)
        b = np.asarray(off.image.convert("RGBA"), dtype=int)
        changed = int((np.abs(a - b).max(axis=-1) > 40).sum())
        assert changed >= 15, f"index {index}: text changed only {changed} pixels"


def test_one_knob_leaves_the_other_decisions_alone() -> None:
    """Each decision has its own random slot: JPEG on/off changes nothing else."""
    for index in range(20):
        plain = generate(6, index, 64, replace(CLEAN, p_jpeg=0.0))
        jpeg = generate(6, index, 64, replace(CLEAN, p_jpeg=1.0))
        assert "jpeg" in jpeg.features and jpeg.image.mode == "RGB"
        assert set(plain.features) - {"transparent"} == set(jpeg.features) - {"jpeg"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_can_be_forced(layout: str) -> None:
    knobs = replace(CLEAN, layouts=((layout, 1.0),))
    for index in range(5):
        item = generate(9, index, 96, knobs)
        assert item.source.startswith(f"synth:{layout}")
        rgb = np.asarray(
            Image.alpha_composite(
                Image.new("RGBA", item.image.size, (255, 255, 255, 255)), item.image.convert("RGBA")
            ).convert("RGB")
        )
        assert (rgb.min(axis=-1) < 235).mean() > 0.002, "nothing visible was drawn"


@pytest.mark.parametrize("kind", ["blur", "rescale", "noise", "jpeg"])
def test_post_processing_changes_the_image(kind: str) -> None:
    knobs = replace(CLEAN, **{f"p_{kind}": 1.0})
    for index in range(4):
        clean, degraded = generate(7, index, 96, CLEAN), generate(7, index, 96, knobs)
        assert kind in degraded.features and degraded.image.mode == "RGB"
        white = Image.new("RGBA", clean.image.size, (255, 255, 255, 255))
        reference = np.asarray(
            Image.alpha_composite(white, clean.image.convert("RGBA")).convert("RGB")
        )
        assert np.abs(reference.astype(int) - pixels(degraded)).max() > 0


def test_every_font_renders_glyphs() -> None:
    """The fonts must exist offline wherever matplotlib and Pillow are installed."""
    for font in FONTS:
        mask = np.asarray(text_mask(64, "Ab1", font, 24, 32, 32))
        assert (mask > 128).sum() > 30, font


# --- generator version 2: photos, outlined illustrations, silhouettes ----------------------

NEW_KINDS = [("outlined", None), ("silhouette", None)] + [
    ("photo", kind) for kind in PHOTO_KINDS if kind != "field"
]


def kind_knobs(layout: str, kind: str | None, **extra: object) -> SynthKnobs:
    knobs = forced(layout, **extra)
    return replace(knobs, photo_kinds=((kind, 1.0),)) if kind else knobs


def test_version_names_the_new_generator() -> None:
    """Caches key on it: v1 datasets must not be mistaken for v2 ones."""
    assert GENERATOR_VERSION == "qpcore-synth/2"


@pytest.mark.parametrize(("layout", "kind"), NEW_KINDS)
def test_new_kinds_are_deterministic(layout: str, kind: str | None) -> None:
    knobs = kind_knobs(layout, kind)
    default = replace(SynthKnobs(), layouts=knobs.layouts, photo_kinds=knobs.photo_kinds)
    for index in range(4):
        for k in (knobs, default):
            a, b = generate(21, index, 128, k), generate(21, index, 128, k)
            assert same(a, b) and a.features == b.features
        assert not same(generate(21, index, 128, knobs), generate(21, index + 1, 128, knobs))


def test_new_kinds_are_identical_in_a_fresh_process() -> None:
    args = [(4, i, 96, kind_knobs(layout, kind)) for i, (layout, kind) in enumerate(NEW_KINDS)]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        remote = pool.starmap(generate, args)
    for (seed, index, size, knobs), item in zip(args, remote, strict=True):
        assert same(item, generate(seed, index, size, knobs))


def test_default_mix_covers_the_new_kinds() -> None:
    """Plans alone are cheap: 4000 of them pin the layout shares to the weights."""
    knobs = SynthKnobs()
    counts = dict.fromkeys(LAYOUTS, 0)
    for index in range(4000):
        counts[draw_plan(knobs, np.random.default_rng([0, index, 0])).layout] += 1
    total = sum(weight for _, weight in knobs.layouts)
    for layout, weight in knobs.layouts:
        assert abs(counts[layout] / 4000 - weight / total) < 0.02, layout
    assert 0.1 <= dict(knobs.layouts)["photo"] / total <= 0.15
    assert 0.12 <= dict(knobs.layouts)["outlined"] / total <= 0.18
    assert 0.1 <= dict(knobs.layouts)["silhouette"] / total <= 0.15


@pytest.mark.parametrize("kind", [k for k in PHOTO_KINDS if k != "field"])
def test_photo_kinds_look_photographic(kind: str) -> None:
    """Many distinct colours and no flat region anywhere: what icons never are."""
    knobs = kind_knobs("photo", kind, p_photo_full=1.0, p_full_bleed=0.0, p_text=0.0)
    for index in range(8):
        item = generate(3, index, 128, knobs)
        assert item.source.startswith(f"synth:photo+{kind}") and kind in item.features
        assert item.image.mode == "RGB", "a photo fills the canvas"
        rgb = pixels(item)
        flat = rgb.reshape(-1, 3).astype(np.int64)
        colours = len(np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]))
        assert colours > 500, f"{kind} {index}: only {colours} colours"
        blocks = rgb.astype(np.float32).reshape(8, 16, 8, 16, 3).std(axis=(1, 3)).max(axis=-1)
        assert blocks.min() > 1.0, f"{kind} {index}: a flat 16x16 block"


def test_photo_framing_follows_its_knob() -> None:
    framed = kind_knobs("photo", "scene", p_photo_full=0.0, p_full_bleed=0.0, p_transparent=1.0)
    full = kind_knobs("photo", "scene", p_photo_full=1.0, p_transparent=1.0)
    for index in range(6):
        assert generate(5, index, 96, framed).image.mode == "RGBA"
        assert generate(5, index, 96, full).image.mode == "RGB"


def test_photo_camera_knobs_change_only_the_photo() -> None:
    """Sensor noise and JPEG are the camera's, drawn on the photo stream: same layout."""
    base = kind_knobs("photo", "pink-noise", p_photo_full=1.0, p_photo_jpeg=0.0)
    noisy = replace(base, photo_noise_sigma=(20.0, 20.0), p_photo_jpeg=1.0)
    for index in range(3):
        a, b = generate(6, index, 96, base), generate(6, index, 96, noisy)
        assert a.features == b.features
        diff = np.abs(pixels(a).astype(int) - pixels(b).astype(int))
        assert diff.mean() > 3


def _one_colour_residual(rgb: np.ndarray) -> tuple[float, float]:
    """How far pixels are from white-to-ink blends of one ink, and how much ink there is."""
    away = 255.0 - rgb.astype(float)
    ink = away.reshape(-1, 3)[int(np.argmax(away.reshape(-1, 3).sum(axis=1)))]
    coverage = np.clip(away @ ink / max(float(ink @ ink), 1e-9), 0, 1)
    residual = np.abs(away - coverage[..., None] * ink).max()
    return float(residual), float((coverage > 0.5).mean())


def test_silhouettes_are_one_colour() -> None:
    """Every pixel is white, the ink, or an anti-aliased blend of the two."""
    knobs = forced("silhouette")
    for index in range(30):
        item = generate(12, index, 128, knobs)
        residual, covered = _one_colour_residual(on_white(item))
        assert residual <= 4.0, f"index {index}: a second colour ({residual:.1f} levels off)"
        assert covered > 0.003, f"index {index}: nothing drawn"


def test_silhouettes_come_in_many_scales_and_shapes() -> None:
    knobs = forced("silhouette")
    aspects, extents, holes, thin = [], [], 0, 0
    for index in range(60):
        item = generate(13, index, 256, knobs)
        rgb = on_white(item)
        ink = rgb.min(axis=-1) < 200
        ys, xs = np.nonzero(ink)
        w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        aspects.append(w / h)
        extents.append(max(w, h) / 256)
        if "holes" in item.features:
            background, count = ndimage.label(~ink)
            border = set(np.unique(np.concatenate([background[0], background[-1]])))
            border |= set(np.unique(np.concatenate([background[:, 0], background[:, -1]])))
            holes += int(count > len(border - {0}))
        thin += int("thin-lines" in item.features)
    assert max(aspects) > 3.0, "no wordmark-wide silhouette"
    assert min(extents) < 0.4 and max(extents) > 0.85, "scales do not vary"
    assert holes >= 10, f"only {holes} silhouettes with real enclosed holes"
    assert thin >= 10


def test_outlined_illustrations_have_thin_dark_contours() -> None:
    """The drawing's outer edge is inked dark, and the ink lies in lines a few pixels wide:
    an erosion by 5x5 removes most of it (what survives is pupils and nostrils)."""
    knobs = forced(
        "outlined",
        p_small=0.0,
        p_full_bleed=0.0,
        p_transparent=1.0,
        p_shadow=0.0,
        p_glow=0.0,
        p_soft_edges=0.0,
        p_strokes=0.0,
        p_thin_lines=0.0,
    )
    for index in range(12):
        item = generate(14, index, 256, knobs)
        assert "outline" in item.features
        rgba = pixels(item).astype(int)
        inside = rgba[..., 3] > 128
        rim = inside & ~ndimage.binary_erosion(inside)
        rim[:3], rim[-3:], rim[:, :3], rim[:, -3:] = False, False, False, False  # cut by the canvas
        lum = rgba[..., :3] @ np.array([0.2126, 0.7152, 0.0722])
        dark = inside & (lum < 70)
        # Edge pixels blend ink with the fill under it, so ask for ink next to each one.
        inked = ndimage.binary_dilation(dark, np.ones((3, 3), bool))[rim].mean()
        assert inked > 0.8, f"index {index}: only {inked:.0%} of the outer edge is inked"
        ink_color = np.median(rgba[rim & dark][:, :3], axis=0)
        ink = inside & (np.abs(rgba[..., :3] - ink_color).max(axis=-1) <= 12)
        solid = ndimage.binary_erosion(ink, np.ones((5, 5), bool))
        assert solid.sum() < 0.4 * ink.sum(), f"index {index}: ink areas, not thin strokes"


def test_outlined_illustrations_are_shaded() -> None:
    knobs = forced("outlined")
    seen: set[str] = set()
    for index in range(30):
        seen.update(generate(15, index, 96, knobs).features)
    assert {"shading", "highlight", "gradient-radial", "semi-transparent"} <= seen


def _partial_alpha(item: SynthImage) -> int:
    alpha = pixels(item)[..., 3]
    return int(((alpha > 0) & (alpha < 255)).sum())


FLAT = replace(
    CLEAN,
    layouts=(("badge", 1.0),),
    p_transparent=1.0,
    p_full_bleed=0.0,
    p_shadow=0.0,
    p_text=0.0,
    p_semi_transparent=0.0,
    p_texture=0.0,
    p_soft_edges=0.0,
    p_aliased=0.0,
    p_glow=0.0,
)


def test_soft_edges_feather_the_alpha() -> None:
    for index in range(6):
        hard, soft = (
            generate(16, index, 128, FLAT),
            generate(16, index, 128, replace(FLAT, p_soft_edges=1.0)),
        )
        assert "soft-edges" in soft.features and "soft-edges" not in hard.features
        assert _partial_alpha(soft) > 1.5 * _partial_alpha(hard)
        # Premultiplied feathering: no dark fringe, edges are no darker than the shapes.
        rgba = pixels(soft).astype(int)
        lum = rgba[..., :3] @ np.array([0.2126, 0.7152, 0.0722])
        edge = (rgba[..., 3] >= 64) & (rgba[..., 3] < 160)
        assert lum[edge].min() >= lum[rgba[..., 3] == 255].min() - 8


def test_aliased_edges_have_no_partial_coverage() -> None:
    for index in range(6):
        smooth, jagged = (
            generate(17, index, 128, FLAT),
            generate(17, index, 128, replace(FLAT, p_aliased=1.0)),
        )
        assert "aliased" in jagged.features
        assert _partial_alpha(jagged) < 0.3 * _partial_alpha(smooth)


def test_glow_adds_a_translucent_halo() -> None:
    for index in range(6):
        plain, glow = (
            generate(18, index, 128, FLAT),
            generate(18, index, 128, replace(FLAT, p_glow=1.0)),
        )
        assert "glow" in glow.features
        assert (pixels(glow)[..., 3] > 0).sum() > (pixels(plain)[..., 3] > 0).sum()
        assert _partial_alpha(glow) > _partial_alpha(plain)


@pytest.mark.parametrize("knob", ["p_soft_edges", "p_aliased", "p_glow", "p_photo_jpeg"])
def test_new_knobs_leave_the_other_decisions_alone(knob: str) -> None:
    own = {"p_soft_edges": "soft-edges", "p_aliased": "aliased", "p_glow": "glow"}.get(knob)
    for index in range(20):
        off = generate(19, index, 64, replace(CLEAN, **{knob: 0.0}))
        on = generate(19, index, 64, replace(CLEAN, **{knob: 1.0}))
        ignore = {"transparent", own} if own else {"transparent"}
        assert set(off.features) - ignore == set(on.features) - ignore
        assert off.source.split("+")[0] == on.source.split("+")[0]


def test_bad_new_knobs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        SynthKnobs(photo_kinds=(("selfie", 1.0),))
    with pytest.raises(ValueError, match="photo_jpeg_quality"):
        SynthKnobs(photo_jpeg_quality=(50, 99))
    with pytest.raises(ValueError, match="p_glow"):
        SynthKnobs(p_glow=2.0)
