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

from qpcore.data.synth import (
    FONTS,
    INGREDIENTS,
    LAYOUTS,
    SynthImage,
    SynthKnobs,
    generate,
)
from qpcore.data.synth.text import text_mask

#: No post-processing, so that an ingredient's pixels are not blurred or JPEG'd away.
CLEAN = SynthKnobs(p_blur=0.0, p_rescale=0.0, p_noise=0.0, p_jpeg=0.0)


def pixels(item: SynthImage) -> np.ndarray:
    return np.asarray(item.image)


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
    knobs = replace(CLEAN, p_transparent=1.0, p_full_bleed=0.0)
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
