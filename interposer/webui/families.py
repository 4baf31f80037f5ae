"""Model families as far as converting their latents goes, and what a checkpoint will be before it is loaded.

A :class:`Family` is what every webui's reading of a loaded model returns (the readings themselves are webui
facts and live in the adapters: A1111's ``is_*`` flags in :mod:`.a1111`, the Forges' ``latent_format`` in
:mod:`.forge`). A checkpoint file not loaded yet is read from its safetensors header, the way the webuis pick its
model class (:func:`checkpoint_kind`); a :class:`Checkpoint` is what a pass will run on, known before sampling.

A :class:`Family` always has a ``key``, so two models of the same unsupported family (two Qwen-Image
checkpoints) are still known not to cross; only ``space`` says whether the interposer can convert it, and
``layout`` how the webui's tensor holds that space (FLUX.2 Klein's packed 128 channels, Wan's 5-D latents).
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

    def relaid_as(self, other: Family | None) -> bool:
        """The same space in another tensor layout (Klein's packed FLUX.2 latents vs Mugen's): an exact reshape
        turns one into the other, no interposer."""
        return other is not None and other.key == self.key and other.layout != self.layout

    def to_space(self, latents: Any) -> Any:
        """The webui's tensor -> ``[B, C, H, W]`` in :attr:`space`'s layout (exact: a reshape)."""
        if self.layout == PACKED:
            return unpack_2x2(latents)
        if self.layout == VIDEO and latents.ndim == 5:
            return latents.squeeze(2)
        return latents

    def from_space(self, latents: Any) -> Any:
        """The inverse of :meth:`to_space`: what this family's sampler holds."""
        if self.layout == PACKED:
            return pack_2x2(latents)
        if self.layout == VIDEO and latents.ndim == 4:
            return latents.unsqueeze(2)
        return latents


def latent_grid(family: Family | None, pixels: tuple[int, int]) -> tuple[int, int]:
    """The latent grid of ``family``'s space for an image of ``pixels`` (height, width): its spatial factor (8 for
    every space here, FLUX.2 included; 8 for an unknown family or one with no space). Klein's packed tensor holds
    half of that grid per side (Neo sets ``opt_f`` to its VAE's ratio, 16), so the grid comes from the pixels, never
    from the webui's tensor size."""
    factor = family.space.spatial_factor if family is not None and family.space is not None else 8
    return (int(pixels[0]) // factor, int(pixels[1]) // factor)


def unsupported(name: str, channels: int, what: str = "", layout: str = "") -> Family:
    """A family no interposer converts, named by its latent format (``Wan21/16``)."""
    what = what or f"the {name} latent space"
    shape = f"{channels} channels" + (", 5-D [B, C, T, H, W]" if layout == VIDEO else "")
    return Family(
        f"{name}/{channels}",
        f"{what} ({shape})",
        layout=layout,
        why=f"samples in {what} ({shape}), which no interposer converts (supported: SD1.x/2.x, SDXL, SD3, the "
        "FLUX.1 family: FLUX.1, Chroma, Z-Image, Lumina 2 / Neta Lumina; and FLUX.2: Klein, Mugen)",
    )


# The families of the FLUX.1 and FLUX.2 era, as the Forges load them (also read from checkpoint headers below).
FLUX1 = Family.of_space(SPACES["fx"], "", "the FLUX.1 family")
KLEIN = Family.of_space(SPACES["f2"], PACKED, "FLUX.2 (Klein, packed 128 channels)")
MUGEN = Family.of_space(SPACES["f2"], "", "FLUX.2 (Mugen)")
WAN21 = unsupported("Wan21", 16, "the Wan 2.1 latent space of Wan, Qwen-Image, Anima and Krea 2", VIDEO)


def file_names(paths: list[str]) -> list[str]:
    """The file names of ``paths`` (the webuis store module files as full paths, Windows ones too), for messages."""
    return [str(path).replace("\\", "/").rsplit("/", 1)[-1] for path in paths]


def model_title(sd_model: Any) -> str:
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return str(getattr(info, "short_title", None) or getattr(info, "title", None) or "unknown checkpoint")


def checkpoint_filename(sd_model: Any) -> str | None:
    return getattr(getattr(sd_model, "sd_checkpoint_info", None), "filename", None)


class Checkpoint:
    """A checkpoint a pass will run on, as known before sampling or at a switch (``family`` None: not known yet;
    ``bundled``: its VAE and text encoders are inside the file)."""

    __slots__ = ("bundled", "family", "filename", "image_conditioned", "title")

    def __init__(self, family: Family | None, image_conditioned: bool, filename: str | None, title: str,
                 bundled: bool = True) -> None:  # fmt: skip
        self.family = family
        self.image_conditioned = image_conditioned
        self.filename = filename
        self.title = title
        self.bundled = bundled

    @staticmethod
    def of_model(model: Any, webui: Any) -> Checkpoint:
        """Copied out of a loaded model: A1111 loads a checkpoint of the loaded model's config into the *same*
        object, so a reference to "the base model" taken before a switch describes the refiner afterwards."""
        return Checkpoint(webui.family(model), webui.image_conditioned(model), checkpoint_filename(model),
                          model_title(model))  # fmt: skip


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
_WAN21_KEYS = ("head.modulation", "txt_norm.weight", "blocks.0.mlp.layer1.weight")  # Wan, Qwen-Image, Anima
# Where the Forges' huggingface_guess finds a checkpoint's own VAE and text encoders (model_list.py prefixes).
_VAE_PREFIXES = ("first_stage_model.", "vae.")
_TEXT_ENCODER_PREFIXES = ("cond_stage_model.", "conditioner.", "text_encoders.")
_kinds: dict[tuple[str, int, int], CheckpointKind | None] = {}


def vae_file_channels(filename: str | os.PathLike) -> int | None:
    """The latent channels of a VAE file (its decoder's first convolution), from its header; ``None`` for a file
    that is no VAE or cannot be read."""
    try:
        header, _ = read_safetensors_header(str(filename))
    except (CorruptWeightsError, OSError):
        return None
    for prefix in ("", *_VAE_PREFIXES):
        shape = header.get(f"{prefix}decoder.conv_in.weight", {}).get("shape")
        if isinstance(shape, list) and len(shape) > 1:
            return int(shape[1])
    return None


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
            return CheckpointKind(MUGEN, False)
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
                return CheckpointKind(KLEIN, False)
            return CheckpointKind(FLUX1, False)
        if prefix + _LUMINA2_KEY in header:
            return CheckpointKind(FLUX1, False)
        if any(prefix + key in header for key in _WAN21_KEYS):
            return CheckpointKind(WAN21, False)
    return None
