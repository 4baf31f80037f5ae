"""Which latent space a webui model samples in: a loaded model (with the exact factors the webui applies),
or a checkpoint file not loaded yet (from its safetensors header, the way the webui picks its model class).

Two readings of a loaded model exist, because the webuis describe their models differently:

* :func:`family_from_flags`: AUTOMATIC1111 sets ``is_sd1``/``is_sd2``/``is_sdxl``/``is_sd3`` on every model and
  keeps its ``scale_factor`` (SD3: ``latent_format``) on the model;
* :func:`family_from_latent_format`: the Forges (Forge Neo, lllyasviel's Forge) describe every model by
  ``model_config.latent_format`` (class, ``scale_factor``, ``shift_factor``, ``latent_channels``) and scale with
  the VAE's own factors. Their ``is_sdxl`` is not a family: Neo's Mugen says ``is_sdxl=True`` with 32-channel
  latents. SD1.5 -> ``v1``; SDXL and its refiner -> ``xl``; FLUX.1, Chroma, Z-Image, Lumina 2 / Neta Lumina
  (all ``latent.Flux``) -> ``fx``; SD3 -> ``v3``; FLUX.2 Klein / ERNIE-Image (``Flux2``: 128 channels at /16, packed)
  and Mugen (``SDXL_Flux2``: the same latent unpacked, 32 channels at /8) -> ``f2``; anything else (``Wan21``: Wan,
  Qwen-Image, Anima, Krea 2, 5-D; ``RGB``: PiD's pixels) is a :class:`Family` without an interposer.

A :class:`Family` always has a ``key``, so two models of the same unsupported family (two Qwen-Image
checkpoints) are still known not to cross; only ``space`` says whether the interposer can convert it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from ..errors import CorruptWeightsError
from ..packing import pack_2x2, unpack_2x2
from ..safetensors_header import read_safetensors_header
from ..spaces import SPACES, LatentSpace

PACKED = "packed 2x2"  # FLUX.2 Klein in the Forges: 128 channels at /16
VIDEO = "5-D"  # Wan 2.1's VAE: [B, C, T, H, W]

# How close the webui's factors must be to the package's to count as the same space (they are written with
# 4-5 significant digits everywhere; a real mismatch is a different VAE, off by far more).
FACTOR_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Family:
    """The latent space a model samples in, as far as converting it goes.

    ``key``: equal for models whose latents are interchangeable (``v1``, ``xl``, ``fx``, ``v3``, or e.g.
    ``Wan21/16`` for a family the interposer has no weights for). ``space``: the package's space with the
    factors this model actually uses, ``None`` when there is no interposer for it; ``why`` then says why, as a
    clause that follows the checkpoint's name ("'qwen' samples in the Wan21 latent space (16 channels), ...").
    """

    key: str
    description: str
    space: LatentSpace | None = None
    why: str = ""
    layout: str = ""  # how the webui's tensor holds the space: "" as is, PACKED (FLUX.2 2x2), VIDEO (5-D, T=1)

    @staticmethod
    def of_space(space: LatentSpace, layout: str = "", description: str = "") -> Family:
        return Family(space.name, description or space.label, space, layout=layout)

    def same_as(self, other: Family | None) -> bool:
        """Interchangeable latents: the same space *and* the same tensor layout (Klein's packed FLUX.2 latents are
        not Mugen's, though one reshape turns either into the other)."""
        return other is not None and other.key == self.key and other.layout == self.layout

    def to_space(self, latents: Any) -> Any:
        """The webui's tensor -> ``[B, C, H, W]`` in :attr:`space`'s layout (exact: a reshape)."""
        if self.layout == PACKED:
            return unpack_2x2(latents)
        if self.layout == VIDEO and latents.ndim == 5:
            return latents.squeeze(2)
        return latents

    def space_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The grid of :attr:`space` that holds a webui tensor of spatial ``size`` (packed: twice each side)."""
        return (size[0] * 2, size[1] * 2) if self.layout == PACKED else size

    def from_space(self, latents: Any) -> Any:
        """The inverse of :meth:`to_space`: what this family's sampler holds."""
        if self.layout == PACKED:
            return pack_2x2(latents)
        if self.layout == VIDEO and latents.ndim == 4:
            return latents.unsqueeze(2)
        return latents


def _with_factors(space: LatentSpace, scale: Any, shift: Any) -> LatentSpace:
    """``space`` with the model's own scale/shift where the model carries one (A1111: exact conversion of a
    checkpoint whose config uses another factor)."""
    changes = {}
    if isinstance(scale, (int, float)) and float(scale) != space.scale:
        changes["scale"] = float(scale)
    if isinstance(shift, (int, float)) and float(shift) != space.shift:
        changes["shift"] = float(shift)
    return replace(space, **changes) if changes else space


def family_from_flags(sd_model: Any) -> Family | None:
    """AUTOMATIC1111's reading: the ``is_*`` flags, then the scale/shift the model itself uses.

    ``None``: a model of no family the webui flags (the caller says it cannot tell)."""
    if sd_model is None:
        return None
    if getattr(sd_model, "is_sd3", False):
        fmt = getattr(sd_model, "latent_format", None)
        space = _with_factors(SPACES["v3"], getattr(fmt, "scale_factor", None), getattr(fmt, "shift_factor", None))
    elif getattr(sd_model, "is_sdxl", False):
        space = _with_factors(SPACES["xl"], getattr(sd_model, "scale_factor", None), None)
    elif getattr(sd_model, "is_sd1", False) or getattr(sd_model, "is_sd2", False):
        space = _with_factors(SPACES["v1"], getattr(sd_model, "scale_factor", None), None)
    else:
        return None
    return Family.of_space(space)


# Forge's latent format classes (huggingface_guess/latent.py) whose latents an interposer space describes:
# (space, channels the webui holds, layout, description).
LATENT_FORMAT_SPACES = {
    "SD15": ("v1", 4, "", ""),
    "SDXL": ("xl", 4, "", ""),
    "SD3": ("v3", 16, "", ""),
    "Flux": ("fx", 16, "", "the FLUX.1 family"),  # FLUX.1, Chroma, Z-Image, Lumina 2 / Neta Lumina
    "Flux2": ("f2", 128, PACKED, "FLUX.2 (Klein, packed 128 channels)"),
    "SDXL_Flux2": ("f2", 32, "", "FLUX.2 (Mugen)"),
}
# Formats with no interposer: what their latents are, for the refusal.
OTHER_FORMATS = {
    "Wan21": ("Wan 2.1 (Wan, Qwen-Image, Anima, Krea 2)", VIDEO),
    "RGB": ("pixel space (PiD)", ""),
}


def family_from_latent_format(sd_model: Any) -> Family | None:
    """The Forges' reading: ``model_config.latent_format`` decides the family, and the factors the webui applies
    (the VAE's ``scaling_factor``/``shift_factor`` where it has them, else the format's) must be the package's.

    A mismatch is refused rather than converted: latents scaled by other factors come from another VAE, and the
    interposer would turn them into garbage. ``None``: the model has no ``latent_format`` at all."""
    fmt = getattr(getattr(sd_model, "model_config", None), "latent_format", None)
    if fmt is None:
        return None
    family = format_family(type(fmt).__name__, int(getattr(fmt, "latent_channels", 4) or 4))
    space, layout = family.space, family.layout
    if space is None or space.name == "f2":
        return family  # f2: normalised by the VAE's own BatchNorm, process_in applies no factor
    scale, shift = _applied_factors(sd_model, fmt)
    if abs(scale - space.scale) > FACTOR_TOLERANCE or abs(shift - space.shift) > FACTOR_TOLERANCE:
        return Family(
            space.name,
            space.label,
            why=f"scales its {space.label} latents by {scale:g} (shift {shift:g}), but the "
            f"interposer's {space.name} latents are scaled by {space.scale:g} (shift {space.shift:g}): its VAE is "
            "not the family's, so its latents cannot be converted",
            layout=layout,
        )
    return family


def format_family(name: str, channels: int) -> Family:
    """The family of a Forge latent format (class name and channels), with the package's factors."""
    known = LATENT_FORMAT_SPACES.get(name)
    if known is None or known[1] != channels:
        return _unsupported(name, channels)
    space_name, _, layout, description = known
    return Family.of_space(SPACES[space_name], layout, description)


def _applied_factors(sd_model: Any, fmt: Any) -> tuple[float, float]:
    """The scale and shift the webui applies to this model's VAE latents (Neo: the VAE config's; else the
    latent format's)."""
    vae = getattr(getattr(getattr(sd_model, "forge_objects", None), "vae", None), "first_stage_model", None)
    scale = getattr(vae, "scaling_factor", None)
    shift = getattr(vae, "shift_factor", None)
    if not isinstance(scale, (int, float)):
        scale = getattr(fmt, "scale_factor", 1.0)
        shift = getattr(fmt, "shift_factor", 0.0)
    return float(scale), float(shift if isinstance(shift, (int, float)) else 0.0)


def model_title(sd_model: Any) -> str:
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return str(getattr(info, "short_title", None) or getattr(info, "title", None) or "unknown checkpoint")


def checkpoint_filename(sd_model: Any) -> str | None:
    return getattr(getattr(sd_model, "sd_checkpoint_info", None), "filename", None)


@dataclass(frozen=True)
class CheckpointKind:
    """What a checkpoint file will be once the webui loads it, as far as a switch cares."""

    family: Family
    image_conditioned: bool  # inpainting / instruct-pix2pix / depth: extra UNet input channels
    bundled: bool = True  # its own VAE and text encoders inside (False: a diffusion-model-only file)


_SD3_KEY = "model.diffusion_model.x_embedder.proj.weight"
_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
_SDXL_KEY = "conditioner.embedders.1.model.ln_final.weight"
_SDXL_REFINER_KEY = "conditioner.embedders.0.model.ln_final.weight"
_DEPTH_KEY = "depth_model.model.pretrained.act_postprocess3.0.project.0.bias"
_SD2_KEY = "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"
_SD1_PREFIXES = ("cond_stage_model.transformer.", "cond_stage_model.roberta.")
# Diffusion transformers the Forges load (huggingface_guess/detection.py keys), with or without the
# "model.diffusion_model." prefix of an all-in-one checkpoint: FLUX.1-family ones sample in the FLUX.1 space.
_DIT_PREFIXES = ("model.diffusion_model.", "")
_FLUX1_KEY = "double_blocks.0.img_attn.norm.key_norm.scale"
_FLUX2_KEY = "double_stream_modulation_img.lin.weight"
_LUMINA2_KEY = "cap_embedder.1.weight"  # Lumina 2, Neta Lumina, Z-Image (NextDiT)
_OTHER_DITS = {"head.modulation": "Wan21", "txt_norm.weight": "Wan21", "blocks.0.mlp.layer1.weight": "Wan21"}
# Where the Forges' huggingface_guess finds a checkpoint's own VAE and text encoders (model_list.py prefixes).
_VAE_PREFIXES = ("first_stage_model.", "vae.")
_TEXT_ENCODER_PREFIXES = ("cond_stage_model.", "conditioner.", "text_encoders.")
_kinds: dict[tuple[str, int, int], CheckpointKind | None] = {}


def checkpoint_kind(filename: str | os.PathLike | None) -> CheckpointKind | None:
    """The family a checkpoint file loads as, read from its safetensors header without loading it.

    The webuis pick a checkpoint's model from the state dict's key names and the first UNet convolution's
    input channels (A1111: ``sd_models_config.guess_model_config_from_state_dict``; the Forges:
    ``huggingface_guess``); the same keys are in the header, so this reads them the same way. ``None``
    (unknown, decided at the switch instead) for anything else: a pickled ``.ckpt``, a ``.gguf``, an
    unreadable file, a ``.yaml`` config next to the checkpoint (A1111 then uses that file)."""
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
    kind = _family_from_header(header)
    if kind is None:
        return None
    bundled = any(k.startswith(_VAE_PREFIXES) for k in header) and any(
        k.startswith(_TEXT_ENCODER_PREFIXES) for k in header
    )
    return replace(kind, bundled=bundled)


def _family_from_header(header: dict[str, dict]) -> CheckpointKind | None:
    def in_channels(default: int | None = None) -> int | None:
        shape = header.get(_UNET_IN, {}).get("shape")
        return int(shape[1]) if isinstance(shape, list) and len(shape) > 1 else default

    def space(name: str, image_conditioned: bool = False) -> CheckpointKind:
        return CheckpointKind(Family.of_space(SPACES[name]), image_conditioned)

    if _SD3_KEY in header:
        return space("v3")
    if _SDXL_KEY in header:
        channels = in_channels(4)
        if channels == 32:  # Mugen: an SDXL UNet on the 32-channel Flux.2 VAE (latent format SDXL_Flux2)
            return CheckpointKind(format_family("SDXL_Flux2", 32), False)
        return space("xl", channels != 4)
    if _SDXL_REFINER_KEY in header:
        return space("xl")
    if _DEPTH_KEY in header:
        return space("v1", True)
    sd2 = header.get(_SD2_KEY, {}).get("shape")
    if isinstance(sd2, list) and len(sd2) > 1 and int(sd2[1]) == 1024:
        return space("v1", in_channels(4) != 4)
    channels = in_channels()
    if channels is not None and any(k.startswith(_SD1_PREFIXES) for k in header):
        return space("v1", channels != 4)
    return _dit_kind(header)


def _dit_kind(header: dict[str, dict]) -> CheckpointKind | None:
    for prefix in _DIT_PREFIXES:
        if prefix + _FLUX1_KEY in header:
            if prefix + _FLUX2_KEY in header:
                return CheckpointKind(format_family("Flux2", 128), False)
            return CheckpointKind(format_family("Flux", 16), False)
        if prefix + _LUMINA2_KEY in header:
            return CheckpointKind(format_family("Flux", 16), False)
        for key, name in _OTHER_DITS.items():
            if prefix + key in header:
                return CheckpointKind(format_family(name, 16), False)
    return None


def _unsupported(name: str, channels: int) -> Family:
    what, layout = OTHER_FORMATS.get(name, (f"the {name} latent space", ""))
    shape = f"{channels} channels" + (", 5-D [B, C, T, H, W]" if layout == VIDEO else "")
    return Family(
        f"{name}/{channels}",
        f"{what} ({shape})",
        layout=layout,
        why=f"samples in {what} ({shape}), which no interposer converts (supported: SD1.x/2.x, SDXL, SD3, the "
        "FLUX.1 family: FLUX.1, Chroma, Z-Image, Lumina 2 / Neta Lumina; and FLUX.2: Klein, Mugen)",
    )
