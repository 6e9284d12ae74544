"""The response surface (vectorizer_response): one table per image, read off per setting."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_trainer import fit, run_config

from qpcore import QPError
from qpcore.data.protocol import VtracerParams, encode_params, label_pixels
from qpcore.features import layout, response
from qpcore.features.vectorizer import _working
from qpcore.predictor import load_predictor
from qpcore.registry import default_registry


def dotted(dot: int) -> np.ndarray:
    """A flat 128 px image: two colour fields and a ``dot`` px square of a third."""
    image = np.full((128, 128, 3), 250, np.uint8)
    image[:, 64:] = (30, 90, 200)
    image[20 : 20 + dot, 20 : 20 + dot] = (200, 30, 30)
    return image


def cell(surface: np.ndarray, precision: int, speckle: float, layer: float) -> np.ndarray:
    names = response.feature_names()
    start = names.index(f"repaint_ssim_p{precision}_s{speckle:g}_l{layer:g}")
    return surface[start : start + len(response.CELL_FEATURES)]


def encoded(**params: object) -> torch.Tensor:
    return torch.from_numpy(encode_params(VtracerParams(**params)))[None]  # type: ignore[arg-type]


def test_the_surface_follows_vtracer_on_a_small_dot() -> None:
    """A 12 px dot survives filter_speckle 4 and is lost at 12 (vtracer keeps a
    cluster only when its area is over the square), in vtracer's label and in the
    surface alike; colour precision 1 loses more than 8 on a gradient."""
    image = dotted(12)
    surface = response.response_surface(image, size=128)
    assert surface.shape == (layout.surface_size(),)
    assert np.isfinite(surface).all()
    kept, lost = cell(surface, 8, 4, 10), cell(surface, 8, 12, 10)
    label_kept = label_pixels(image, VtracerParams(filter_speckle=4)).ssim
    label_lost = label_pixels(image, VtracerParams(filter_speckle=12)).ssim
    assert label_kept > label_lost + 0.01
    assert kept[0] > lost[0] + 0.005 and kept[1] < lost[1] and kept[2] > lost[2]
    assert kept[0] == pytest.approx(1.0, abs=1e-6)

    ramp = np.repeat(np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None], 128, 0)
    ramp = np.repeat(ramp, 3, 2)
    graded = response.response_surface(ramp, size=128)
    assert cell(graded, 1, 0, 1)[0] < cell(graded, 8, 0, 1)[0]


def test_layer_difference_merges_close_colours_only() -> None:
    image = np.full((96, 96, 3), 200, np.uint8)
    image[:, 48:] = 212  # 36 apart in L1 over three channels
    surface = response.response_surface(image, size=96)
    assert cell(surface, 8, 0, 25)[2] > cell(surface, 8, 0, 64)[2]  # two layers, then one
    assert cell(surface, 8, 0, 64)[0] < cell(surface, 8, 0, 25)[0]


def test_hierarchy_does_not_depend_on_the_settings_it_serves() -> None:
    work = _working(dotted(6), 128, cv2.INTER_NEAREST, True)
    tree = response.hierarchy(work, 6)
    everything = response.layers_of(tree, 0.0, 0.0)
    assert everything.max() + 1 == len(np.unique(everything))
    one = response.layers_of(tree, 1e9, 1e9)
    assert set(one.tolist()) == {0}  # nothing kept: the last group paints it all


def test_interpolate_reads_grid_cells_exactly_and_blends_between() -> None:
    surface = torch.from_numpy(response.response_surface(dotted(12), size=128))[None]
    raw = surface[0].numpy()
    at_cell = response.interpolate(
        surface, encoded(color_precision=5, filter_speckle=12, layer_difference=25)
    )
    np.testing.assert_allclose(at_cell[0].numpy(), cell(raw, 5, 12, 25), rtol=1e-6)
    low = cell(raw, 8, 4, 10)
    high = cell(raw, 8, 12, 10)
    mid = response.interpolate(
        surface, encoded(color_precision=8, filter_speckle=8, layer_difference=10)
    )
    np.testing.assert_allclose(mid[0].numpy(), (low + high) / 2, rtol=1e-5)
    names = response.feature_names()
    start = names.index("repaint_ssim_bin_s4")
    binary = response.interpolate(surface, encoded(colormode="binary", filter_speckle=4))
    np.testing.assert_allclose(binary[0].numpy(), raw[start : start + 3], rtol=1e-6)


def test_a_conditioned_backbone_needs_params_input(random_manifest: Path, tmp_path: Path) -> None:
    cfg = run_config(
        random_manifest,
        tmp_path,
        model={"backbone": {"name": "vectorizer_response", "size": 32}, "features": []},
    )
    with pytest.raises(QPError, match="params_input"):
        fit(cfg)


def test_a_conditioned_model_trains_predicts_settings_and_round_trips(
    random_manifest: Path, tmp_path: Path
) -> None:
    cfg = run_config(
        random_manifest,
        tmp_path,
        model={
            "backbone": {"name": "vectorizer_response", "size": 32},
            "features": [{"name": "image_stats", "size": 32}],
            "head": {"hidden": [16], "params_input": True},
        },
        trainer={"epochs": 2, "batch_size": 8},
    )
    trainer = fit(cfg)
    model = trainer.model
    # The head sees the stats, three conditioned features and the params, not the surface.
    assert (
        model.head.layers[0].in_features
        == len(
            default_registry()
            .get("backbone", "image_stats")
            .factory(default_registry().get("backbone", "image_stats").params(size=32))
            .feature_names
        )
        + 3
        + model.params_dim
    )
    predictor = load_predictor(trainer.run_dir / "best.pt")
    image = trainer.splits["train"].samples[0].image
    settings = [{"filter_speckle": s, "color_precision": 3} for s in (0, 32)]
    values = predictor.predict_settings(image, settings)
    assert values.shape == (2,) and values[0] != values[1]
    one = predictor.predict([image], settings[1])
    assert one[0] == pytest.approx(values[1], abs=1e-6)


def test_the_preview_converts_a_small_copy_for_real() -> None:
    from qpcore.features.preview import preview_features

    flat = dotted(20)
    rng = np.random.default_rng(0)
    noisy = np.clip(flat + rng.normal(0, 25, flat.shape), 0, 255).astype(np.uint8)
    clean, grainy = preview_features(flat, size=64), preview_features(noisy, size=64)
    assert clean[0] > 0.97 and grainy[0] < clean[0] - 0.1  # as the full-size labels
    assert label_pixels(flat).ssim > label_pixels(noisy).ssim + 0.1
    assert grainy[1] > clean[1] and grainy[2] > clean[2]  # noise costs paths and bytes
    big = cv2.resize(flat, (300, 300), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_allclose(preview_features(big, size=64)[0], clean[0], atol=0.05)
