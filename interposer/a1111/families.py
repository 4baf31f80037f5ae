"""Which latent space does a webui checkpoint sample in: a loaded model (with its exact factors), or a
checkpoint file not loaded yet (from its safetensors header, the way the webui picks its config)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from ..errors import CorruptWeightsError
from ..safetensors_header import read_safetensors_header
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


@dataclass(frozen=True)
class CheckpointKind:
    """What a checkpoint file will be once the webui loads it, as far as the switch cares."""

    family: LatentSpace
    image_conditioned: bool  # inpainting / instruct-pix2pix / depth: extra UNet input channels


_SD3_KEY = "model.diffusion_model.x_embedder.proj.weight"
_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
_SDXL_KEY = "conditioner.embedders.1.model.ln_final.weight"
_SDXL_REFINER_KEY = "conditioner.embedders.0.model.ln_final.weight"
_DEPTH_KEY = "depth_model.model.pretrained.act_postprocess3.0.project.0.bias"
_SD2_KEY = "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"
_SD1_PREFIXES = ("cond_stage_model.transformer.", "cond_stage_model.roberta.")
_kinds: dict[tuple[str, int, int], CheckpointKind | None] = {}


def checkpoint_kind(filename: str | os.PathLike | None) -> CheckpointKind | None:
    """The family a checkpoint file loads as, read from its safetensors header without loading it.

    A1111's ``CheckpointInfo`` has no family, but the webui itself picks a checkpoint's config from the
    state dict's key names and the first UNet convolution's input channels
    (``sd_models_config.guess_model_config_from_state_dict``), and the family follows from the config. The
    same keys are in the header, so this reads them the same way. ``None`` (unknown, decided at the switch
    instead) for anything else: a pickled ``.ckpt``, an unreadable file, a ``.yaml`` config next to the
    checkpoint (the webui then uses that file), or keys of no family the webui flags."""
    if not filename or not str(filename).lower().endswith(".safetensors"):
        return None
    path = str(filename)
    if os.path.exists(os.path.splitext(path)[0] + ".yaml"):
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _kinds:
        try:
            header, _ = read_safetensors_header(path)
        except CorruptWeightsError:
            header = None
        _kinds[key] = None if header is None else _kind_from_header(header)
    return _kinds[key]


def _kind_from_header(header: dict[str, dict]) -> CheckpointKind | None:
    def in_channels(default: int | None = None) -> int | None:
        shape = header.get(_UNET_IN, {}).get("shape")
        return int(shape[1]) if isinstance(shape, list) and len(shape) > 1 else default

    if _SD3_KEY in header:
        return CheckpointKind(SPACES["v3"], False)
    if _SDXL_KEY in header:
        return CheckpointKind(SPACES["xl"], in_channels(4) != 4)
    if _SDXL_REFINER_KEY in header:
        return CheckpointKind(SPACES["xl"], False)
    if _DEPTH_KEY in header:
        return CheckpointKind(SPACES["v1"], True)
    sd2 = header.get(_SD2_KEY, {}).get("shape")
    if isinstance(sd2, list) and len(sd2) > 1 and int(sd2[1]) == 1024:
        return CheckpointKind(SPACES["v1"], in_channels(4) != 4)
    channels = in_channels()
    if channels is not None and any(k.startswith(_SD1_PREFIXES) for k in header):
        return CheckpointKind(SPACES["v1"], channels != 4)
    return None
