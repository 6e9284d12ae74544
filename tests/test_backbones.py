"""Backbones by name: shapes, freezing, every way of getting weights."""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from qpcore import QPError
from qpcore.backbone import Backbone
from qpcore.registry import default_registry

RNG = np.random.default_rng(0)
ICON = RNG.integers(0, 256, (48, 40, 3), dtype=np.uint8)


def build(name: str, **params: object) -> Backbone:
    spec = default_registry().get("backbone", name)
    return spec.factory(spec.params(**params))


@pytest.mark.parametrize(
    ("arch", "width"),
    [("resnet50", 2048), ("resnet18", 512), ("mobilenet_v3_small", 576), ("efficientnet_b0", 1280)],
)
def test_torchvision_backbones_drop_their_classifier(arch: str, width: int) -> None:
    backbone = build(arch, weights="none", input_size=64)
    x = torch.stack([backbone.preprocess(ICON), backbone.preprocess(ICON[::-1].copy())])
    assert x.shape == (2, 3, 64, 64)
    with torch.no_grad():
        assert backbone(x).shape == (2, width) == (2, backbone.num_features)
    assert default_registry().get("backbone", arch).num_features == width


def test_resnet50_preprocessing_is_the_seeds() -> None:
    backbone = build("resnet50", weights="none")
    white = np.full((300, 300, 3), 255, np.uint8)
    x = backbone.preprocess(white)
    assert x.shape == (3, 224, 224)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(x[:, 0, 0], expected, atol=1e-6)


def test_frozen_backbone_trains_nothing_and_keeps_its_batchnorm_stats() -> None:
    backbone = build("resnet18", weights="none", input_size=32)
    assert not backbone.trainable
    backbone.train()
    assert not any(m.training for m in backbone.net.modules())
    before = backbone.net.bn1.running_mean.clone()
    backbone(torch.randn(4, 3, 32, 32) * 5)
    assert torch.equal(before, backbone.net.bn1.running_mean)


def test_train_last_stage_unfreezes_only_layer4() -> None:
    backbone = build("resnet18", weights="none", train_last_stage=True)
    trainable = {n.split(".")[1] for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable == {"layer4"}
    backbone.train()
    assert backbone.net.layer4.training and not backbone.net.layer1.training


def test_unfrozen_backbone_trains_everything() -> None:
    backbone = build("mobilenet_v3_small", weights="none", freeze=False)
    assert all(p.requires_grad for p in backbone.parameters())


def test_weights_from_a_local_file(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    backbone = build("resnet18", weights=str(path))
    assert torch.equal(backbone.net.conv1.weight, source.conv1.weight)
    assert backbone.weights_reference() == {
        "file": str(path.resolve()),
        "sha256": pytest.approx(backbone.weights_reference()["sha256"]),
    }
    # Without the final layer, or wrapped as {"state_dict": ...}, works too.
    trimmed = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    torch.save({"state_dict": trimmed}, path)
    assert torch.equal(build("resnet18", weights=str(path)).net.conv1.weight, source.conv1.weight)


def test_wrong_or_hostile_weight_files_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(QPError, match="not found"):
        build("resnet18", weights=str(missing))
    other = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), other)
    with pytest.raises(QPError, match="not resnet18 weights"):
        build("resnet18", weights=str(other))
    hostile = tmp_path / "hostile.pth"
    hostile.write_bytes(pickle.dumps(Path("/etc/passwd")))  # an arbitrary object
    with pytest.raises(QPError, match="not a readable weights file"):
        build("resnet18", weights=str(hostile))


def test_imagenet_weights_load_through_torchvisions_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    cached = tmp_path / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), cached)
    backbone = build("resnet18", weights="imagenet")
    assert torch.equal(backbone.net.conv1.weight, source.conv1.weight)
    assert backbone.weights_reference() == {"torchvision": "ResNet18_Weights.IMAGENET1K_V1"}


def test_imagenet_offline_says_how_to_pass_a_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url: str, *args: object, **kwargs: object) -> None:  # no internet here
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(QPError) as info:
        build("resnet50", weights="imagenet")
    message = str(info.value)
    assert "resnet50-11ad3fa6.pth" in message
    assert "model.backbone.weights=" in message and "weights=none" in message


def test_small_cnn_learns_from_scratch() -> None:
    backbone = build("small_cnn", width=8, blocks=3, input_size=32)
    assert backbone.trainable and backbone.num_features == 32
    x = backbone.preprocess(ICON)
    assert x.shape == (3, 32, 32) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert backbone(x[None]).shape == (1, 32)


@pytest.mark.parametrize("name", ["image_stats", "vectorizer"])
@pytest.mark.parametrize(
    "pixels",
    [
        ICON,
        np.full((64, 64, 3), 255, np.uint8),  # blank
        np.zeros((1, 1, 3), np.uint8),  # one pixel
        RNG.integers(0, 256, (700, 90, 3), dtype=np.uint8),  # large and thin
    ],
    ids=["noise", "blank", "one-pixel", "thin"],
)
def test_computed_features_are_finite_for_any_image(name: str, pixels: np.ndarray) -> None:
    backbone = build(name)
    x = backbone.preprocess(pixels)
    assert x.shape == (backbone.num_features,) == (len(backbone.feature_names),)
    assert torch.isfinite(x).all()
    assert torch.equal(backbone(x[None]), x[None])  # computed once, in preprocess
    assert not backbone.trainable


def test_vectorizer_sees_more_loss_at_lower_precision() -> None:
    from qpcore.data.protocol import composite_white
    from qpcore.data.synth import generate

    image = composite_white(generate(3, 0, 128).image)
    backbone = build("vectorizer", precisions=[2, 6])
    names = backbone.feature_names
    values = dict(zip(names, backbone.preprocess(image).tolist(), strict=True))
    ssim_names = [n for n in names if "ssim" in n]
    assert len(ssim_names) == 2
    low, high = (values[n] for n in ssim_names)
    assert low < high  # fewer colour bits, coarser repaint


def test_identity_changes_with_knobs_and_weights() -> None:
    a = build("image_stats")
    assert a.identity() == build("image_stats").identity()
    assert a.identity() != build("image_stats", size=64).identity()
    cnn = build("resnet18", weights="none", input_size=32)
    before = cnn.identity()
    with torch.no_grad():
        cnn.net.conv1.weight.add_(1)
    assert cnn.identity() != before
