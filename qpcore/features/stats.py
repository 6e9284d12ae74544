"""Hand-crafted image statistics that predict how much SSIM vtracer keeps.

vtracer turns an image into a few flat-coloured paths, so it loses little on images
made of a few large flat regions and much on gradients, noise, texture, thin detail
and many small specks. Each statistic below measures one of those things directly;
together they give a cheap baseline (and side input) for the learned model.

Every statistic is computed on a copy scaled to a fixed working resolution, so the
cost is bounded (a few milliseconds) whatever the input size, and the numbers mean
the same thing for a 64 px and a 1024 px image.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Quantisation of a channel to this many bits before counting colours: 5 bits
#: merges JPEG/rescale jitter of a few levels, 3 bits counts only clearly distinct hues.
_FINE_BITS = 5
_COARSE_BITS = 3

#: Gradient (0..1 grey per pixel, Sobel / 4) under which a pixel counts as flat: about
#: five grey levels, so flat fills with JPEG ripple still count as flat; real noise does not.
_FLAT_GRAD = 0.02
#: Above this the pixel is on an edge vtracer will trace; between the two lies the
#: soft shading and anti-aliasing that vtracer flattens.
_EDGE_GRAD = 0.25

#: SSIM's own window (Gaussian, sigma 1.5): local contrast is measured where SSIM
#: measures it, so the local-std bands line up with where SSIM loses points.
_SSIM_SIGMA = 1.5

#: A region of at most this share of the working image is a speck vtracer's
#: ``filter_speckle`` (4 px at 256 px by default, up to 32 on the random track) may drop.
_TINY_REGION = 4.0 / 256**2
_SMALL_REGION = 64.0 / 256**2


def _working_copy(pixels: np.ndarray, size: int) -> np.ndarray:
    """Scale so the longer side is ``size``, keeping the aspect ratio.

    INTER_AREA when shrinking (an honest average, no aliasing); nearest when
    growing, so a tiny image keeps hard edges instead of gaining fake anti-aliasing.
    """
    height, width = pixels.shape[:2]
    scale = size / max(height, width)
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    if (new_w, new_h) == (width, height):
        return pixels
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    return cv2.resize(pixels, (new_w, new_h), interpolation=interp)


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
    """Accept grey, RGB or RGBA uint8 and hand back contiguous RGB.

    The documented input is RGB, but a stray grey or RGBA array should give
    statistics, not an exception, so it is converted the way the protocol would
    (alpha composited over white).
    """
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        array = np.clip(np.nan_to_num(array.astype(np.float64)), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"expected an H x W x 3 image, got shape {array.shape}")
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = (array[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    elif array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


def _channel_max(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel max over channels; numpy's reduction over a 3-long axis is 20x slower."""
    return np.maximum(np.maximum(rgb[:, :, 0], rgb[:, :, 1]), rgb[:, :, 2])


def _channel_min(rgb: np.ndarray) -> np.ndarray:
    return np.minimum(np.minimum(rgb[:, :, 0], rgb[:, :, 1]), rgb[:, :, 2])


def _colour_ids(rgb: np.ndarray, bits: int) -> np.ndarray:
    shift = 8 - bits
    q = (rgb >> shift).astype(np.int32)
    return (q[:, :, 0] << (2 * bits)) | (q[:, :, 1] << bits) | q[:, :, 2]


def _quantisation_error(rgb: np.ndarray, bits: int) -> float:
    """Mean absolute error (0..1) of keeping ``bits`` per channel, mid-bin rounding."""
    shift = 8 - bits
    kept = ((rgb >> shift) << shift) | (1 << (shift - 1))
    return float(cv2.absdiff(rgb, kept.astype(np.uint8)).mean()) / 255.0


def _region_stats(ids: np.ndarray) -> tuple[float, float, float]:
    """Connected regions of equal quantised colour: count, small and tiny share.

    vtracer makes one path per such region and drops or traces every speck, so many
    regions and much area in specks mean a costly, lossy vectorization. OpenCV only
    labels binary images, so the colour image is spread on a doubled grid where the
    link between two 4-neighbours is set only when their colours agree; components
    of that grid are exactly the colour regions, found in one fast pass.
    """
    height, width = ids.shape
    grid = np.zeros((2 * height - 1, 2 * width - 1), np.uint8)
    grid[::2, ::2] = 1
    grid[::2, 1::2] = ids[:, 1:] == ids[:, :-1]
    grid[1::2, ::2] = ids[1:, :] == ids[:-1, :]
    count, labels = cv2.connectedComponents(grid, connectivity=4, ltype=cv2.CV_32S)
    areas = np.bincount(labels[::2, ::2].ravel(), minlength=count)[1:]
    total = float(ids.size)
    small = float(areas[areas <= max(1.0, _SMALL_REGION * total)].sum())
    tiny = float(areas[areas <= max(1.0, _TINY_REGION * total)].sum())
    return float(np.log1p(count - 1)), small / total, tiny / total


def image_stats(pixels: np.ndarray, size: int = 128) -> np.ndarray:
    """Low-level statistics of one image, in the order of
    :data:`qpcore.features.layout.STATS_NAMES`.

    Args:
        pixels: ``H x W x 3`` uint8 RGB (grey and RGBA are accepted too).
        size: Working resolution: the longer side is scaled to this before any
            statistic is taken, which bounds the cost and makes the numbers
            comparable across input sizes.

    Returns:
        float32 vector, finite for every input (1x1 and constant images included).
    """
    if size < 8:
        raise ValueError("size must be at least 8")
    source = _as_rgb(pixels)
    rgb = _working_copy(source, size)
    height, width = rgb.shape[:2]
    total = float(height * width)
    grey8 = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = grey8.astype(np.float32) / 255.0

    # Colours: vtracer's cost and loss both grow with how many distinct fills it meets.
    fine = _colour_ids(rgb, _FINE_BITS).ravel()
    counts = np.bincount(fine)
    counts = np.sort(counts[counts > 0])[::-1].astype(np.float64)
    shares = counts / total
    cumulative = np.cumsum(shares)
    cover95 = int(np.searchsorted(cumulative, 0.95 - 1e-9)) + 1
    coarse = np.count_nonzero(np.bincount(_colour_ids(rgb, _COARSE_BITS).ravel()))
    # Colours holding under 0.1% of the pixels each: anti-aliasing, gradients, noise.
    rare = float(shares[shares < 1e-3].sum())

    # Gradients: edges vtracer traces versus soft shading it flattens.
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 4.0
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 4.0
    mag = np.sqrt(gx * gx + gy * gy)
    p90, p99 = np.percentile(mag, (90, 99))
    flat = float(np.mean(mag < _FLAT_GRAD))
    soft = float(np.mean((mag >= _FLAT_GRAD) & (mag < _EDGE_GRAD)))
    cgx = _channel_max(cv2.absdiff(rgb[:, 1:], rgb[:, :-1])) if width > 1 else np.zeros(1)
    cgy = _channel_max(cv2.absdiff(rgb[1:], rgb[:-1])) if height > 1 else np.zeros(1)
    colour_grad = (float(cgx.mean()) + float(cgy.mean())) / (2 * 255.0)
    edges = cv2.Canny(grey8, 50, 150, L2gradient=True)
    edge_density = float(np.count_nonzero(edges)) / total

    # Detail finer than vtracer's paths: what a blur removes, and a noise estimate.
    blur = cv2.GaussianBlur(grey, (0, 0), 1.0, borderType=cv2.BORDER_REPLICATE)
    hf = float(np.mean(np.abs(grey - blur)))
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    lap_var = float(lap.var())
    # Immerkaer's estimator, on pixels that are not edges so edges do not count as noise.
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = np.abs(cv2.filter2D(grey, -1, kernel, borderType=cv2.BORDER_REPLICATE))
    calm = mag < _EDGE_GRAD
    noise = float(response[calm].mean()) * np.sqrt(np.pi / 2) / 6 if calm.any() else 0.0

    hist = np.bincount(grey8.ravel(), minlength=256).astype(np.float64) / total
    nz = hist[hist > 0]
    entropy = float(-(nz * np.log2(nz)).sum())

    # Local contrast in SSIM's window: a flat render of a window with std s keeps
    # C2 / (s^2 + C2) of SSIM's contrast term, so the bands say how much is at stake.
    grey255 = grey * 255.0
    mu = cv2.GaussianBlur(grey255, (0, 0), _SSIM_SIGMA, borderType=cv2.BORDER_REPLICATE)
    mu2 = cv2.GaussianBlur(grey255 * grey255, (0, 0), _SSIM_SIGMA, borderType=cv2.BORDER_REPLICATE)
    local_std = np.sqrt(np.maximum(mu2 - mu * mu, 0.0))
    bands = np.histogram(local_std, bins=(0.0, 2.0, 8.0, 32.0, np.inf))[0] / total

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    sat = hsv[:, :, 1] / 255.0
    lowest = _channel_min(rgb)
    white = float(np.mean(lowest >= 245))
    dark = float(np.mean(_channel_max(rgb) <= 40))

    log_regions, small_share, tiny_share = _region_stats(fine.reshape(height, width))

    # Thin strokes (1-2 px at working size) vanish or thicken in vtracer's curves:
    # share of non-background pixels a 3x3 opening removes.
    foreground = (lowest < 245).astype(np.uint8)
    opened = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    thin = float(np.count_nonzero(foreground > opened)) / total

    # vtracer's color_precision keeps that many bits per channel and colormode=binary
    # keeps one grey bit: what each would cost this image says how it reacts to them.
    quant_err = [_quantisation_error(rgb, bits) for bits in (1, 2, 3, 4)]
    binary_err = float(np.mean(np.abs(grey - (grey >= 0.5))))

    values = np.array(
        [
            np.log1p(counts.size),
            np.log1p(coarse),
            np.log1p(cover95),
            shares[0],
            shares[:4].sum(),
            shares[:16].sum(),
            rare,
            edge_density,
            float(mag.mean()),
            p90,
            p99,
            colour_grad,
            flat,
            soft,
            hf,
            np.log10(lap_var + 1e-6),
            noise,
            entropy,
            float(local_std.mean()) / 255.0,
            *bands,
            float(sat.mean()),
            float(sat.std()),
            white,
            dark,
            float(grey.std()),
            log_regions,
            small_share,
            tiny_share,
            thin,
            *quant_err,
            binary_err,
            np.log(source.shape[1] / source.shape[0]),
        ],
        dtype=np.float64,
    )
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
