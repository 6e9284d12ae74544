"""What each computed feature vector holds, known without computing it.

Registering a backbone states its width (``BackboneSpec.num_features``); taking
that from here, not from the modules that compute the features (numpy, OpenCV,
scipy, torch), keeps ``qp plugins`` and ``qp config validate`` fast.
"""

from __future__ import annotations

#: Names of the entries of :func:`image_stats`, in order.
STATS_NAMES: tuple[str, ...] = (
    "log_colors_q5",
    "log_colors_q3",
    "log_colors_cover95",
    "top1_share",
    "top4_share",
    "top16_share",
    "rare_color_share",
    "edge_density",
    "grad_mean",
    "grad_p90",
    "grad_p99",
    "color_grad_mean",
    "flat_fraction",
    "soft_grad_fraction",
    "hf_energy",
    "log_laplacian_var",
    "noise_sigma",
    "grey_entropy",
    "local_std_mean",
    "local_std_0_2",
    "local_std_2_8",
    "local_std_8_32",
    "local_std_32_up",
    "sat_mean",
    "sat_std",
    "white_fraction",
    "dark_fraction",
    "grey_std",
    "log_regions",
    "small_region_share",
    "tiny_region_share",
    "thin_share",
    "quant_err_1bit",
    "quant_err_2bit",
    "quant_err_3bit",
    "quant_err_4bit",
    "binary_err",
    "aspect",
)

#: Names of :func:`preview_features`' entries, in order.
PREVIEW_NAMES: tuple[str, ...] = ("preview_ssim", "preview_log_svg_bytes", "preview_log_paths")

#: What each cell of the surface holds.
CELL_FEATURES: tuple[str, ...] = ("repaint_ssim", "repaint_rmse", "log_layers")
#: ``filter_speckle`` values of the grid (the random track draws 0..32).
SPECKLES: tuple[float, ...] = (0.0, 4.0, 12.0, 32.0)
#: ``layer_difference`` values of the grid (the random track draws 1..64).
LAYERS: tuple[float, ...] = (1.0, 10.0, 25.0, 64.0)
PRECISIONS: tuple[int, ...] = tuple(range(1, 9))


def surface_size(speckles: int = len(SPECKLES), layers: int = len(LAYERS)) -> int:
    """Length of :func:`qpcore.features.response.response_surface`'s vector."""
    return (len(PRECISIONS) * layers + 1) * speckles * len(CELL_FEATURES)
