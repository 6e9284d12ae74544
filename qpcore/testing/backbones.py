"""The backbone kit: :func:`assert_backbone_conforms`."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpcore.testing._common import _built, _call, _fail, _params, _require, _scratch

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from qpcore.backbone import Backbone
    from qpcore.specs import BackboneSpec


def assert_backbone_conforms(
    spec: BackboneSpec,
    params: Mapping[str, Any] | None = None,
    *,
    image_size: int = 40,
    images: int = 3,
    cache_dir: str | Path | None = None,
) -> None:
    """Check that a backbone keeps the contract the model and the feature cache rely on.

    The model concatenates ``forward``'s ``[B, num_features]`` outputs; the
    feature cache (:func:`qpcore.feature_cache.cached_features`) computes each
    image's features once, in batches, in data-loader workers or on an
    executor, and keys them by :meth:`~qpcore.backbone.Backbone.identity`, so a
    frozen backbone's features must be a function of the image alone. On
    ``images`` random ``image_size`` px images the check asserts that:

    * the factory returns a :class:`qpcore.backbone.Backbone` whose
      ``num_features`` is a positive int equal to ``spec.num_features`` (when
      the record sets it), with ``feature_names`` empty or one per feature;
    * ``describe()`` is JSON (checkpoints store it);
    * ``identity()`` is a non-empty string, the same when asked again, after
      the backbone ran, for a copy, and for a second build under the same torch
      seed (so it cannot depend on the object, the time or the run), and a
      different one once a weight changes;
    * ``preprocess(pixels)`` returns a CPU tensor, leaves the pixels as they
      were, and gives the same tensor twice;
    * in eval mode ``forward`` returns ``[B, num_features]`` finite float
      features, the same when run again and the same for an image alone as
      within the batch; ``condition(features, params)`` of a conditioning
      backbone returns ``[B, conditioned_features]`` finite values;
    * features stored in the feature cache and loaded back (a hit, the second
      time, also for the images in another order) equal the computed ones.

    Keep it fast with small inputs: ``params`` such as ``{"weights": "none",
    "input_size": 32}`` for a torchvision CNN build random weights and download
    nothing.

    Args:
        spec: The backbone's registration record.
        params: Raw parameters as a config would give them; ``None`` for defaults.
        image_size: Side of the square test images in pixels.
        images: How many test images (at least 2).
        cache_dir: Root of the feature cache and the images (default: temporary).

    Raises:
        AssertionError: Naming the backbone and the broken rule.
    """
    import numpy as np
    import torch

    name = spec.name
    _require("backbone", name, images >= 2, "the check needs images >= 2")
    validated = _params(spec, params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = _build(spec, validated)
        torch.manual_seed(0)
        twin = _build(spec, validated)
    width = _require_width(spec, backbone)
    describe = _call("backbone", name, "describe()", backbone.describe)
    try:
        json.dumps(describe, allow_nan=False)
    except (TypeError, ValueError) as exc:
        _fail("backbone", name, f"describe() is not JSON (checkpoints store it): {exc}")
    identity = _identity(name, backbone)
    _require(
        "backbone",
        name,
        _identity(name, backbone) == identity,
        "identity() changed when asked again",
    )
    _require(
        "backbone",
        name,
        _identity(name, twin) == identity,
        "two builds with the same params under the same torch seed have different "
        "identities: identity() must depend only on what the backbone computes "
        "(describe() and the weights), or the feature cache never hits",
    )
    _require(
        "backbone",
        name,
        _identity(name, copy.deepcopy(backbone)) == identity,
        "a copy of the backbone has another identity()",
    )

    rng = np.random.default_rng(0)
    pixels = [
        rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8) for _ in range(images)
    ]
    with _scratch(cache_dir, "qp-kit-backbone-") as root:
        paths = _save(root / "images", pixels)
        from qpcore.data.protocol import load_image

        decoded = [load_image(p) for p in paths]
        features = _forward_checked(name, backbone, decoded, width)
        _require(
            "backbone",
            name,
            _identity(name, backbone) == identity,
            "identity() changed after the backbone ran: running it must not change "
            "what it computes (BatchNorm statistics in train mode do)",
        )
        _require_cache(name, backbone, paths, features, root / "cache")
    _require_weights_matter(name, backbone, identity)


def _build(spec: BackboneSpec, params: Any) -> Backbone:
    from qpcore.backbone import Backbone

    described = "a qpcore.backbone.Backbone"
    return _built("backbone", spec.name, spec.factory, (params,), Backbone, described)


def _require_width(spec: BackboneSpec, backbone: Backbone) -> int:
    width = getattr(backbone, "num_features", None)
    _require(
        "backbone",
        spec.name,
        isinstance(width, int) and not isinstance(width, bool) and width > 0,
        f"num_features is {width!r}, not a positive int",
    )
    assert isinstance(width, int)
    _require(
        "backbone",
        spec.name,
        spec.num_features is None or spec.num_features == width,
        f"the record says num_features={spec.num_features}, the module has {width}",
    )
    names = tuple(backbone.feature_names)
    _require(
        "backbone",
        spec.name,
        not names or len(names) == width,
        f"{len(names)} feature_names for {width} features",
    )
    return width


def _identity(name: str, backbone: Backbone) -> str:
    value = _call("backbone", name, "identity()", backbone.identity)
    _require(
        "backbone",
        name,
        isinstance(value, str) and bool(value),
        f"identity() returned {value!r}, not a non-empty string",
    )
    return value


def _save(folder: Path, pixels: list[np.ndarray]) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(pixels):
        path = folder / f"image-{index}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def _preprocessed(name: str, backbone: Backbone, pixels: np.ndarray) -> Tensor:
    import torch

    # A writable copy: the model hands one decoded image to every backbone in turn.
    given = pixels.copy()
    first = _call("backbone", name, "preprocess()", backbone.preprocess, given)
    _require(
        "backbone",
        name,
        isinstance(first, torch.Tensor),
        f"preprocess() returned {type(first).__name__}, not a tensor",
    )
    _require(
        "backbone",
        name,
        first.device.type == "cpu",
        f"preprocess() returned a tensor on {first.device}; it runs in data-loader "
        "workers, so it must stay on the CPU",
    )
    _require(
        "backbone",
        name,
        bool((given == pixels).all()),
        "preprocess() modified the pixels it was given (the model's other backbones "
        "get the same array)",
    )
    second = backbone.preprocess(pixels.copy())
    _require(
        "backbone",
        name,
        first.shape == second.shape and torch.equal(first, second),
        "preprocess() gave different tensors for the same pixels",
    )
    return first


def _forward_checked(
    name: str, backbone: Backbone, decoded: list[np.ndarray], width: int
) -> np.ndarray:
    import torch

    from qpcore.data.protocol import VtracerParams, encode_params

    batch = torch.stack([_preprocessed(name, backbone, p) for p in decoded])
    backbone.eval()
    with torch.no_grad():
        out = _call("backbone", name, "forward()", backbone, batch)
        _require(
            "backbone",
            name,
            isinstance(out, torch.Tensor) and out.is_floating_point(),
            f"forward() returned {type(out).__name__}, not a float tensor",
        )
        shape = list(out.shape)
        _require(
            "backbone",
            name,
            shape == [len(decoded), width],
            f"forward() returned shape {shape} for {len(decoded)} images, not "
            f"[{len(decoded)}, {width}] (num_features)",
        )
        _require(
            "backbone",
            name,
            bool(torch.isfinite(out).all()),
            "forward() returned non-finite features: the head's standardisation "
            "turns one NaN into NaN predictions",
        )
        again = backbone(batch)
        _require(
            "backbone",
            name,
            torch.equal(out, again),
            "forward() is not deterministic in eval mode: the same images twice gave "
            f"features up to {(out - again).abs().max().item():.3g} apart",
        )
        alone = backbone(batch[:1])
        _require(
            "backbone",
            name,
            torch.allclose(alone[0], out[0], rtol=1e-4, atol=_tolerance(out)),
            "an image alone gets other features than within a batch "
            f"({(alone[0] - out[0]).abs().max().item():.3g} apart): the cache computes "
            "in batches, prediction one by one",
        )
        if backbone.conditioned_features:
            encoded = torch.from_numpy(encode_params(VtracerParams())).float()
            params = encoded.expand(len(decoded), -1)
            read = _call("backbone", name, "condition()", backbone.condition, out, params)
            _require(
                "backbone",
                name,
                list(read.shape) == [len(decoded), backbone.conditioned_features]
                and bool(torch.isfinite(read).all()),
                f"condition() returned shape {list(read.shape)} (or non-finite values), "
                f"not [{len(decoded)}, {backbone.conditioned_features}]",
            )
    return out.float().numpy()


def _require_cache(
    name: str, backbone: Backbone, paths: list[Path], features: np.ndarray, root: Path
) -> None:
    import numpy as np

    from qpcore.feature_cache import cached_features

    def lookup(order: list[Path]) -> tuple[np.ndarray, bool]:
        return _call(
            "backbone",
            name,
            "computing its features into the feature cache",
            lambda: cached_features(backbone, order, root, progress=False),
        )

    stored, hit = lookup(paths)
    _require(
        "backbone",
        name,
        np.allclose(stored, features, rtol=1e-4, atol=_tolerance(features)),
        "features computed for the feature cache differ from forward() of the same images",
    )
    again, hit = lookup(paths)
    _require(
        "backbone",
        name,
        hit,
        "the second look-up of the same images missed the feature cache (is identity() "
        "or describe() different each time?)",
    )
    _require(
        "backbone",
        name,
        np.array_equal(again, stored),
        "features loaded from the feature cache differ from those stored",
    )
    order = [*reversed(paths), paths[0]]
    shuffled, hit = lookup(order)
    _require(
        "backbone",
        name,
        hit and np.array_equal(shuffled, np.concatenate([stored[::-1], stored[:1]])),
        "the feature cache gave other rows for the same images in another order",
    )


def _tolerance(features: Any) -> float:
    """Rounding a batch's order of summation may change: 1e-4 of the features' scale."""
    return 1e-4 * max(1.0, float(abs(features).max()))


def _require_weights_matter(name: str, backbone: Backbone, identity: str) -> None:
    import torch

    state = backbone.state_dict()
    floating = [k for k, v in state.items() if v.is_floating_point() and v.numel()]
    if not floating:
        return  # nothing learnt: describe() alone is what it computes
    changed = copy.deepcopy(backbone)
    with torch.no_grad():
        changed.state_dict()[floating[0]].add_(1.0)
    _require(
        "backbone",
        name,
        _identity(name, changed) != identity,
        f"changing the weight {floating[0]!r} left identity() as it was: the feature "
        "cache would serve the old weights' features",
    )


__all__ = ["assert_backbone_conforms"]
