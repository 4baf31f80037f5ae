"""Latent interposer: convert Stable Diffusion latents between model families on the GPU.

Pure Python/torch; imports nothing from the webui. Typical use::

    from interposer import Converter
    v1_latents = Converter().convert(xl_latents, "xl", "v1")  # scaled in, scaled out

See ``python -m interposer --help`` for the command line. Names are imported lazily, so that
``interposer.directions`` and ``interposer.safetensors_header`` work without importing torch
(the webui runs ``install.py`` at every start-up).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Direction": "directions",
    "direction": "directions",
    "published_directions": "directions",
    "CorruptWeightsError": "errors",
    "InterposerError": "errors",
    "InvalidLatentsError": "errors",
    "UnknownDirectionError": "errors",
    "UnknownSpaceError": "errors",
    "UnsupportedPrecisionError": "errors",
    "WeightsNotFoundError": "errors",
    "InterposerConfig": "model",
    "InterposerV4": "model",
    "DEFAULT_CACHE": "runtime",
    "ConversionReport": "runtime",
    "Converter": "runtime",
    "ModelCache": "runtime",
    "SPACES": "spaces",
    "LatentSpace": "spaces",
    "get_space": "spaces",
    "LoadedWeights": "weights",
    "WeightsQuery": "weights",
    "load_weights": "weights",
    "save_weights": "weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'interposer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
