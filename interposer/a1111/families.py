"""Which latent space does a loaded webui checkpoint sample in, with which exact factors?"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..spaces import SPACES, LatentSpace


def family_of(sd_model: Any) -> LatentSpace | None:
    """The latent space of a webui model object, or ``None`` if it is not one we know.

    Uses the flags A1111 sets on every model (``is_sd3``, ``is_sdxl``, ``is_sd2``, ``is_sd1``;
    SD2 shares SD1's VAE) and then takes the scale/shift the model itself uses, so a checkpoint
    whose config carries another factor is still converted exactly.
    """
    if sd_model is None:
        return None
    if getattr(sd_model, "is_sd3", False):
        space = SPACES["v3"]
        fmt = getattr(sd_model, "latent_format", None)
        scale = getattr(fmt, "scale_factor", None)
        shift = getattr(fmt, "shift_factor", None)
    elif getattr(sd_model, "is_sdxl", False):
        space, scale, shift = SPACES["xl"], getattr(sd_model, "scale_factor", None), None
    elif getattr(sd_model, "is_sd1", False) or getattr(sd_model, "is_sd2", False):
        space, scale, shift = SPACES["v1"], getattr(sd_model, "scale_factor", None), None
    else:
        return None
    changes = {}
    if isinstance(scale, (int, float)) and float(scale) != space.scale:
        changes["scale"] = float(scale)
    if isinstance(shift, (int, float)) and float(shift) != space.shift:
        changes["shift"] = float(shift)
    return replace(space, **changes) if changes else space


def model_title(sd_model: Any) -> str:
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return str(getattr(info, "short_title", None) or getattr(info, "title", None) or "unknown checkpoint")
