"""How an image responds to vtracer's clustering settings, tabulated once per image.

A random-track model must answer for any ``(color_precision, filter_speckle,
layer_difference, colormode)``, and re-enacting the clustering per setting costs
milliseconds. It need not: in vtracer's stacked clustering every cluster, in
ascending order of area, merges into the neighbour of closest colour *whatever the
settings*; ``filter_speckle`` and ``layer_difference`` only decide which merged
clusters are also kept as a layer of their own (area over ``filter_speckle**2``
and colour distance to that neighbour over ``layer_difference``). So one merge
hierarchy per colour precision serves every speckle and layer setting: a setting
keeps a subset of its nodes, each pixel takes the colour of its first kept
ancestor, and the repaint is scored with SSIM as the label is.

This module builds the hierarchy (in parallel rounds, as :mod:`.vectorizer` merges),
reads it off on a grid of settings, and returns the grid as one flat vector: a
response surface that a model interpolates at each row's own setting
(:func:`interpolate`), so an extra setting of one image costs a table look-up, not a
re-enactment. Cells whose repaint equals one already scored are not scored again:
flat icons have few distinct repaints, so most of the grid is free.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from qpcore.data.protocol import ENCODED_PARAM_NAMES, RANDOM_RANGES
from qpcore.features.layout import CELL_FEATURES, LAYERS, PRECISIONS, SPECKLES
from qpcore.features.vectorizer import (
    _binary_level,
    _drop_inner,
    _region_sums,
    _regions,
    _ssim,
    _Working,
    _working,
    closest_neighbours,
)

#: Rounds of merging at most; a round merges every region no larger than its target.
MAX_ROUNDS = 64


@dataclass(frozen=True)
class Hierarchy:
    """One precision's merge hierarchy, as arrays per round."""

    labels: np.ndarray  # h x w stage-1 cluster of each working pixel
    areas: np.ndarray  # stage-1 cluster areas
    sums: np.ndarray  # stage-1 cluster colour sums, n x 3
    maps: tuple[np.ndarray, ...]  # round k: group -> its group in round k + 1
    moved: tuple[np.ndarray, ...]  # round k: the group merged into another
    area: tuple[np.ndarray, ...]  # round k: the group's area then
    diff: tuple[np.ndarray, ...]  # round k: colour distance to where it went


def feature_names(
    speckles: tuple[float, ...] = SPECKLES, layers: tuple[float, ...] = LAYERS
) -> list[str]:
    """Names of the surface's entries, in order."""
    names = [
        f"{name}_p{p}_s{s:g}_l{lay:g}"
        for p in PRECISIONS
        for s in speckles
        for lay in layers
        for name in CELL_FEATURES
    ]
    return names + [f"{name}_bin_s{s:g}" for s in speckles for name in CELL_FEATURES]


def hierarchy(
    work: _Working, precision: int, regions: tuple[np.ndarray, np.ndarray] | None = None
) -> Hierarchy:
    """vtracer's merge order, in rounds: a region moves into its closest-coloured
    neighbour when it is no larger than that neighbour (the smaller index on a tie),
    which is what processing clusters in ascending area does, many at once.
    ``regions``: the precision's stage-1 clusters, when already computed."""
    labels, pairs = regions if regions is not None else _regions(work.planes, 8 - precision)
    n = int(labels.max()) + 1
    areas, sums = _region_sums(labels.ravel(), work.flat, n)
    first_areas, first_sums = areas, sums
    maps: list[np.ndarray] = []
    moved: list[np.ndarray] = []
    at_area: list[np.ndarray] = []
    at_diff: list[np.ndarray] = []
    for _ in range(MAX_ROUNDS):
        n = len(areas)
        if n <= 1 or len(pairs) == 0:
            break
        closest, target = closest_neighbours(areas, sums, pairs)
        own = np.arange(n)
        bigger = areas[target]
        moves = (target != own) & ((areas < bigger) | ((areas == bigger) & (own < target)))
        if not moves.any():
            break
        graph = coo_matrix(
            (np.ones(int(moves.sum()), np.int8), (own[moves], target[moves])), shape=(n, n)
        )
        group = connected_components(graph, directed=False)[1]
        maps.append(group)
        moved.append(moves)
        at_area.append(areas)
        at_diff.append(closest)
        pairs = _drop_inner(group[pairs])
        areas, sums = _region_sums(group, sums, int(group.max()) + 1, weights=areas)
    return Hierarchy(
        labels, first_areas, first_sums, tuple(maps), tuple(moved), tuple(at_area), tuple(at_diff)
    )


def layers_of(tree: Hierarchy, min_area: float, layer_difference: float) -> np.ndarray:
    """The layer (0..m-1) that paints each stage-1 cluster under one setting: its
    first ancestor kept as a layer, or the last group standing."""
    current = np.arange(len(tree.areas))
    node = np.full(len(current), -1)
    offset = 0
    for group, moves, area, diff in zip(tree.maps, tree.moved, tree.area, tree.diff, strict=True):
        kept = moves & (area > min_area) & (diff > layer_difference)
        hit = (node < 0) & kept[current]
        node[hit] = offset + current[hit]
        offset += len(group)
        current = group[current]
    rest = node < 0
    node[rest] = offset + current[rest]
    return np.unique(node, return_inverse=True)[1]


def _score(work: _Working, tree: Hierarchy, layer: np.ndarray) -> np.ndarray:
    m = int(layer.max()) + 1
    areas = np.bincount(layer, tree.areas, minlength=m)
    sums = np.stack([np.bincount(layer, tree.sums[:, c], minlength=m) for c in range(3)], 1)
    means = sums / areas[:, None]
    # Painting a layer with its mean leaves exactly its variance as error.
    residual = max(work.sum_squares - float(np.sum(sums * means)), 0.0)
    rmse = np.sqrt(residual / work.flat.size) / 255.0
    colours = means.astype(np.float32)[layer]
    return np.array([_ssim(work, colours[tree.labels]), rmse, np.log1p(m)])


def response_surface(
    pixels: np.ndarray,
    size: int = 128,
    speckles: tuple[float, ...] = SPECKLES,
    layers: tuple[float, ...] = LAYERS,
) -> np.ndarray:
    """The repaint's features at every grid setting, colour precisions 1-8 then binary.

    Args:
        pixels: ``H x W x 3`` uint8 RGB, composited over white.
        size: Longer side of the working copy.
        speckles, layers: The grid's ``filter_speckle`` and ``layer_difference``.

    Returns:
        float32 vector of :func:`~qpcore.features.layout.surface_size` entries, ordered as
        :func:`feature_names`.
    """
    work = _working(pixels, size, cv2.INTER_NEAREST, True)
    out = np.zeros((len(PRECISIONS), len(speckles), len(layers), len(CELL_FEATURES)))
    previous: np.ndarray | None = None
    for pi, precision in enumerate(PRECISIONS):
        regions = _regions(work.planes, 8 - precision)
        if previous is not None and np.array_equal(regions[0], previous):
            # The same clusters as one precision down (flat icons, high precisions):
            # the same hierarchy, so the same slice of the surface.
            out[pi] = out[pi - 1]
            continue
        previous = regions[0]
        tree = hierarchy(work, precision, regions)
        # Cells with the same layers score the same: flat icons have few distinct ones.
        seen: dict[bytes, np.ndarray] = {}
        for si, speckle in enumerate(speckles):
            for li, layer_difference in enumerate(layers):
                layer = layers_of(tree, speckle**2 * work.scale**2, layer_difference)
                key = layer.tobytes()
                if key not in seen:
                    seen[key] = _score(work, tree, layer)
                out[pi, si, li] = seen[key]
    binary = np.stack([_binary_level(work, s**2 * work.scale**2)[[0, 1, 4]] for s in speckles])
    flat = np.concatenate([out.ravel(), binary.ravel()]).astype(np.float32)
    return np.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0)


def _param_index(name: str) -> int:
    return ENCODED_PARAM_NAMES.index(name)


def _decode(params: Tensor, name: str) -> Tensor:
    lo, hi = RANDOM_RANGES[name]
    return lo + params[:, _param_index(name)] * (hi - lo)


def _bracket(grid: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """Lower grid index and the weight of the upper one, clamped to the grid."""
    upper = torch.searchsorted(grid, value.contiguous(), right=True).clamp(1, len(grid) - 1)
    lower = upper - 1
    weight = ((value - grid[lower]) / (grid[upper] - grid[lower])).clamp(0.0, 1.0)
    return lower, weight


def interpolate(
    surface: Tensor,
    params: Tensor,
    speckles: tuple[float, ...] = SPECKLES,
    layers: tuple[float, ...] = LAYERS,
) -> Tensor:
    """Each row's surface read at its own setting: ``[B, len(CELL_FEATURES)]``.

    ``params`` are encoded as :func:`qpcore.data.protocol.encode_params` encodes them.
    Colour rows take their precision's slice (bilinear in speckle and layer
    difference), binary rows the binary curve (linear in speckle). Plain tensor
    ops, so it runs in the cached training path, in prediction and in an export.
    """
    k = len(CELL_FEATURES)
    ns, nl, npc = len(speckles), len(layers), len(PRECISIONS)
    batch = surface.shape[0]
    colour = surface[:, : npc * ns * nl * k].reshape(batch, npc, ns, nl, k)
    binary = surface[:, npc * ns * nl * k :].reshape(batch, ns, k)
    s_grid = torch.tensor(speckles, dtype=surface.dtype, device=surface.device)
    l_grid = torch.tensor(layers, dtype=surface.dtype, device=surface.device)
    s_lo, s_w = _bracket(s_grid, _decode(params, "filter_speckle").to(surface.dtype))
    l_lo, l_w = _bracket(l_grid, _decode(params, "layer_difference").to(surface.dtype))
    precision = _decode(params, "color_precision").round().clamp(1, 8).long() - 1
    rows = torch.arange(batch, device=surface.device)
    plane = colour[rows, precision]  # B x ns x nl x k

    def at(si: Tensor, li: Tensor) -> Tensor:
        return plane[rows, si, li]

    s_w, l_w = s_w[:, None], l_w[:, None]
    colour_value = (
        at(s_lo, l_lo) * (1 - s_w) * (1 - l_w)
        + at(s_lo + 1, l_lo) * s_w * (1 - l_w)
        + at(s_lo, l_lo + 1) * (1 - s_w) * l_w
        + at(s_lo + 1, l_lo + 1) * s_w * l_w
    )
    binary_value = binary[rows, s_lo] * (1 - s_w) + binary[rows, s_lo + 1] * s_w
    is_binary = params[:, _param_index("colormode=binary")][:, None] > 0.5
    return torch.where(is_binary, binary_value, colour_value)
