"""Latent interposer: convert Stable Diffusion latents between model families on the GPU.

Pure Python/torch; imports nothing from the webui. Typical use::

    from interposer import Converter
    v1_latents = Converter().convert(xl_latents, "xl", "v1")  # scaled in, scaled out

See ``python -m interposer --help`` for the command line.
"""

from .directions import Direction, direction, published_directions
from .errors import (
    CorruptWeightsError,
    InterposerError,
    InvalidLatentsError,
    UnknownDirectionError,
    UnknownSpaceError,
    UnsupportedPrecisionError,
    WeightsNotFoundError,
)
from .model import InterposerConfig, InterposerV4
from .runtime import DEFAULT_CACHE, ConversionReport, Converter, ModelCache
from .spaces import SPACES, LatentSpace, get_space
from .weights import LoadedWeights, WeightsQuery, load_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CACHE",
    "SPACES",
    "ConversionReport",
    "Converter",
    "CorruptWeightsError",
    "Direction",
    "InterposerConfig",
    "InterposerError",
    "InterposerV4",
    "InvalidLatentsError",
    "LatentSpace",
    "LoadedWeights",
    "ModelCache",
    "UnknownDirectionError",
    "UnknownSpaceError",
    "UnsupportedPrecisionError",
    "WeightsNotFoundError",
    "WeightsQuery",
    "direction",
    "get_space",
    "load_weights",
    "published_directions",
    "save_weights",
]
