"""Procedural training images: flat icons and logos, outlined cartoon drawings, one-colour
silhouettes and photograph-like natural images, with text, gradients, textures and noise.

``generate(seed, index)`` is the whole interface; ``SynthKnobs`` tunes the mix.
"""

from qpcore.data.synth.generate import GENERATOR_VERSION, INGREDIENTS, SynthImage, generate
from qpcore.data.synth.knobs import LAYOUTS, PHOTO_KINDS, TEXTURE_KINDS, SynthKnobs
from qpcore.data.synth.text import FONTS

__all__ = [
    "FONTS",
    "GENERATOR_VERSION",
    "INGREDIENTS",
    "LAYOUTS",
    "PHOTO_KINDS",
    "TEXTURE_KINDS",
    "SynthImage",
    "SynthKnobs",
    "generate",
]
