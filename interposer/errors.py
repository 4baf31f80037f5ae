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
