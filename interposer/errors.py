"""Exceptions with messages that tell the user what to do next.

They all derive from :class:`InterposerError` so that callers (the A1111 script, the CLI)
can catch one type and show its message unchanged.
"""

from __future__ import annotations


class InterposerError(Exception):
    """Base class for every error this package raises on purpose."""


class UnknownSpaceError(InterposerError, ValueError):
    """A latent space name that is not in the registry."""


class UnknownDirectionError(InterposerError, ValueError):
    """A conversion direction with no published weights and no local file."""


class WeightsNotFoundError(InterposerError, FileNotFoundError):
    """No weights file could be found locally and none could be downloaded."""


class CorruptWeightsError(InterposerError, ValueError):
    """A weights file is truncated, not safetensors, or has the wrong keys or shapes."""


class InvalidLatentsError(InterposerError, ValueError):
    """Latents that cannot be converted as given (rank, channels, size, values)."""


class UnsupportedPrecisionError(InterposerError, RuntimeError):
    """A precision the chosen device cannot run."""


class MissingDependencyError(InterposerError, ImportError):
    """A package the interposer needs is not installed (the message says how to get it)."""


def require(module: str, pip_name: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip package."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = MissingDependencyError(f"The Python package {pip_name!r} is not installed: `pip install {pip_name}`.")
        error.pip_name = pip_name  # where the message is shown, the caller words its own way to install it
        raise error from exc
