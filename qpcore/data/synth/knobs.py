"""The generator's knobs: how often each ingredient appears and how strong it is."""

from __future__ import annotations

from dataclasses import dataclass

#: Layouts the generator knows; ``SynthKnobs.layouts`` weights them.
LAYOUTS = (
    "badge",
    "emblem",
    "flag",
    "wordmark",
    "lineart",
    "photo",
    "outlined",
    "silhouette",
)

#: Kinds of procedural texture; ``SynthKnobs.texture_kinds`` weights them.
TEXTURE_KINDS = ("field", "noise", "pattern")

#: Natural-image models of the ``photo`` layout; ``SynthKnobs.photo_kinds`` weights them.
#: ``field`` is the flat-icon "photo tile" of generator version 1 (a texture, no camera).
PHOTO_KINDS = ("field", "dead-leaves", "pink-noise", "turbulence", "scene")


@dataclass(frozen=True)
class SynthKnobs:
    """Probabilities and ranges of the generator; the defaults mix flat icons with the
    photographs, outlined drawings and logo silhouettes models are also measured on.

    Every ``p_*`` decision is drawn from its own slot of the image's random stream, so
    changing one knob never reshuffles the others: an image generated with ``p_text=1``
    differs from the one with ``p_text=0`` by its text (and whatever the layout moves to
    make room for it), which is what makes ingredients testable in isolation.

    Attributes:
        layouts: (name, weight) pairs; the layout is drawn in proportion to the weights.
            ``photo`` draws photograph-like images, ``outlined`` cartoon/emoji-style
            drawings with thin dark contours, ``silhouette`` one-colour brand-logo marks.
        photo_kinds: (kind, weight) pairs over ``PHOTO_KINDS``, the photo layout's content.
        p_photo_full: probability that a photo (other than a ``field`` tile) fills the
            whole canvas, as real photographs do; otherwise it is letterboxed or framed.
        photo_blur_radius: (low, high) optical blur of photos, pixels at size 256.
        photo_noise_sigma: (low, high) sensor noise of photos, 8-bit levels at mid-grey.
        p_photo_jpeg: probability that a photo went through a camera's JPEG encoder.
        photo_jpeg_quality: (low, high) inclusive quality of that encoder.
        p_transparent: probability that the background stays transparent (RGBA output).
        p_text: probability of text (words, initials, numbers) in one of the bundled fonts.
        p_gradient: probability that fills become linear or radial gradients.
        p_texture: probability of a procedural texture (smooth field, grain or pattern).
        texture_kinds: (kind, weight) pairs over ``field``, ``noise`` and ``pattern``.
        p_shadow: probability of a soft drop shadow under the content.
        p_outline: probability that shapes get a contour stroke (cartoon/sticker style).
        p_semi_transparent: probability of semi-transparent fills (overlaps, gloss).
        p_strokes: probability of stroked polylines and arcs (line-icon elements).
        p_details: probability of small details (dots, tiny stars, tiny text).
        p_thin_lines: probability of 1-2 px hairlines (rules, thin rings).
        p_small: probability that the content is a small glyph in a big canvas.
        p_full_bleed: probability that the content covers the whole canvas.
        small_scale: (low, high) content half-extent, as a fraction of size, when small.
        normal_scale: (low, high) content half-extent, as a fraction of size, otherwise.
        p_blur: probability of a Gaussian blur after drawing.
        blur_radius: (low, high) Gaussian blur radius in pixels at size 256.
        p_rescale: probability of a bilinear down-and-up rescale after drawing.
        rescale_factor: (low, high) downscale factor of that rescale.
        p_noise: probability of additive Gaussian pixel noise after drawing.
        noise_sigma: (low, high) standard deviation of that noise, in 8-bit levels.
        p_jpeg: probability of a JPEG round trip as the last step.
        jpeg_quality: (low, high) inclusive JPEG quality range.
        p_soft_edges: probability that the content's alpha edges are feathered (soft masks).
        p_aliased: probability that shapes are drawn without anti-aliasing (jagged edges).
        p_glow: probability of a soft coloured halo behind the content.
        supersample: factor shapes are drawn at before downsampling (anti-aliased edges).
    """

    layouts: tuple[tuple[str, float], ...] = (
        ("badge", 18.0),
        ("emblem", 17.0),
        ("flag", 9.0),
        ("wordmark", 9.0),
        ("lineart", 8.0),
        ("photo", 12.0),
        ("outlined", 15.0),
        ("silhouette", 12.0),
    )
    photo_kinds: tuple[tuple[str, float], ...] = (
        ("field", 0.5),
        ("dead-leaves", 1.0),
        ("pink-noise", 1.0),
        ("turbulence", 1.0),
        ("scene", 2.0),
    )
    p_photo_full: float = 0.6
    photo_blur_radius: tuple[float, float] = (0.0, 0.9)
    photo_noise_sigma: tuple[float, float] = (0.5, 8.0)
    p_photo_jpeg: float = 0.75
    photo_jpeg_quality: tuple[int, int] = (60, 95)
    p_transparent: float = 0.9
    p_text: float = 0.35
    p_gradient: float = 0.22
    p_texture: float = 0.12
    texture_kinds: tuple[tuple[str, float], ...] = (
        ("field", 1.0),
        ("noise", 1.0),
        ("pattern", 1.0),
    )
    p_shadow: float = 0.15
    p_outline: float = 0.25
    p_semi_transparent: float = 0.2
    p_strokes: float = 0.25
    p_details: float = 0.25
    p_thin_lines: float = 0.2
    p_small: float = 0.08
    p_full_bleed: float = 0.12
    small_scale: tuple[float, float] = (0.07, 0.2)
    normal_scale: tuple[float, float] = (0.38, 0.5)
    p_blur: float = 0.05
    blur_radius: tuple[float, float] = (0.4, 1.6)
    p_rescale: float = 0.05
    rescale_factor: tuple[float, float] = (1.5, 4.0)
    p_noise: float = 0.07
    noise_sigma: tuple[float, float] = (2.0, 12.0)
    p_jpeg: float = 0.1
    jpeg_quality: tuple[int, int] = (30, 90)
    p_soft_edges: float = 0.06
    p_aliased: float = 0.05
    p_glow: float = 0.04
    supersample: int = 2

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        for name in (
            "small_scale",
            "normal_scale",
            "blur_radius",
            "rescale_factor",
            "noise_sigma",
            "jpeg_quality",
            "photo_blur_radius",
            "photo_noise_sigma",
            "photo_jpeg_quality",
        ):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high")
        for name in ("jpeg_quality", "photo_jpeg_quality"):
            low, high = getattr(self, name)
            if low < 1 or high > 95:
                raise ValueError(f"{name} must lie in [1, 95]")
        if self.rescale_factor[0] < 1.0:
            raise ValueError("rescale_factor must be >= 1")
        _check_weights("layouts", self.layouts, LAYOUTS)
        _check_weights("texture_kinds", self.texture_kinds, TEXTURE_KINDS)
        _check_weights("photo_kinds", self.photo_kinds, PHOTO_KINDS)
        if self.supersample < 1:
            raise ValueError("supersample must be >= 1")


def _check_weights(name: str, pairs: tuple[tuple[str, float], ...], known: tuple[str, ...]) -> None:
    unknown = [key for key, _ in pairs if key not in known]
    if unknown:
        raise ValueError(f"{name}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    if any(weight < 0 for _, weight in pairs) or sum(weight for _, weight in pairs) <= 0:
        raise ValueError(f"{name}: weights must be >= 0 with a positive sum")
