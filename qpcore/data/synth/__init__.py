"""Procedural logo-like images for training: flat shapes, text, gradients, textures, noise.

``generate(seed, index)`` is the whole interface; ``SynthKnobs`` tunes the mix.
"""

from qpcore.data.synth.generate import GENERATOR_VERSION, INGREDIENTS, SynthImage, generate
from qpcore.data.synth.knobs import LAYOUTS, TEXTURE_KINDS, SynthKnobs
from qpcore.data.synth.text import FONTS

__all__ = [
    "FONTS",
    "GENERATOR_VERSION",
    "INGREDIENTS",
    "LAYOUTS",
    "TEXTURE_KINDS",
    "SynthImage",
    "SynthKnobs",
    "generate",
]
