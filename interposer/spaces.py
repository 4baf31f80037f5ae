"""Latent spaces of the model families the interposer knows, and their scaling.

Two conventions exist for "a latent" and mixing them up silently ruins every image:

* **raw** latents are what the VAE encoder returns (``vae.encode(x)``, before any factor).
  The published interposer weights map raw latents to raw latents.
* **scaled** (model-space) latents are what the diffusion model samples in and what
  A1111 hands around as ``samples``: ``(raw - shift) * scale``.

Every conversion therefore goes scaled -> raw (source space), raw -> raw (network),
raw -> scaled (target space). :meth:`LatentSpace.to_raw` and :meth:`LatentSpace.to_scaled`
are the only places where that arithmetic lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import UnknownSpaceError

if TYPE_CHECKING:  # torch is not needed to name spaces (install.py runs without importing it)
    import torch


@dataclass(frozen=True)
class LatentSpace:
    """One family's latent space.

    ``spatial_factor`` is how many image pixels one latent pixel covers along each side.
    ``scale``/``shift`` define the model-space latents: ``scaled = (raw - shift) * scale``.
    ``source`` says where the numbers come from, so a reader can check them.
    """

    name: str
    label: str
    channels: int
    spatial_factor: int
    scale: float
    shift: float
    source: str
    aliases: tuple[str, ...] = ()

    def to_raw(self, scaled: torch.Tensor) -> torch.Tensor:
        """Model-space latents -> raw VAE latents (a new tensor; the input is untouched)."""
        raw = scaled / self.scale
        return raw + self.shift if self.shift else raw

    def to_scaled(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents -> model-space latents (a new tensor; the input is untouched)."""
        shifted = raw - self.shift if self.shift else raw
        return shifted * self.scale


SPACES: dict[str, LatentSpace] = {
    space.name: space
    for space in (
        LatentSpace(
            name="v1",
            label="Stable Diffusion 1.x / 2.x",
            channels=4,
            spatial_factor=8,
            scale=0.18215,
            shift=0.0,
            source="CompVis ldm config scale_factor 0.18215 (SD2 reuses the SD1 VAE)",
            aliases=("sd1", "sd15", "sd1.5", "sd2", "sd21", "sd2.1"),
        ),
        LatentSpace(
            name="xl",
            label="Stable Diffusion XL",
            channels=4,
            spatial_factor=8,
            scale=0.13025,
            shift=0.0,
            source="SDXL sgm config scale_factor 0.13025",
            aliases=("sdxl",),
        ),
        LatentSpace(
            name="v3",
            label="Stable Diffusion 3",
            channels=16,
            spatial_factor=8,
            scale=1.5305,
            shift=0.0609,
            source="SD3 VAE config scaling_factor 1.5305, shift_factor 0.0609",
            aliases=("sd3",),
        ),
        LatentSpace(
            name="fx",
            label="FLUX.1",
            channels=16,
            spatial_factor=8,
            scale=0.3611,
            shift=0.1159,
            source="FLUX.1 ae config scale_factor 0.3611, shift_factor 0.1159",
            aliases=("flux", "flux1"),
        ),
        LatentSpace(
            name="f2",
            label="FLUX.2",
            channels=32,
            spatial_factor=8,
            scale=1.0,
            shift=0.0,
            source=(
                "FLUX.2 VAE latent after its BatchNorm (running mean/var, eps 1e-4), unpacked from the 128-channel "
                "2x2-packed form to 32 channels at /8: the space of taef2 and of Forge Neo's Mugen (SDXL_Flux2); "
                "Klein's sampler holds the same latent packed (see interposer/packing.py). No further factor"
            ),
            aliases=("flux2",),
        ),
        LatentSpace(
            name="ca",
            label="Stable Cascade stage A/B",
            channels=4,
            spatial_factor=4,
            scale=1.0 / 0.43,
            shift=0.0,
            source=(
                "Stability-AI/StableCascade modules/stage_a.py: StageA(scale_factor=0.43) returns "
                "encoder output / 0.43 and multiplies by 0.43 before decoding; ComfyUI's SC_B latent "
                "format uses the same 1/0.43. The interposer weights were trained on diffusers' "
                "PaellaVQModel encoder output (raw). Note: diffusers' Stable Cascade decoder pipeline "
                "multiplies by vqgan.config.scale_factor (class default 0.3764) instead"
            ),
            aliases=("cascade", "sc", "stage_a", "stage_b"),
        ),
    )
}

_ALIASES = {alias: space.name for space in SPACES.values() for alias in (space.name, *space.aliases)}


def get_space(name: str | LatentSpace) -> LatentSpace:
    """Look a space up by short name (``v1``) or alias (``sdxl``), case-insensitively."""
    if isinstance(name, LatentSpace):
        return name
    key = _ALIASES.get(str(name).strip().lower())
    if key is None:
        known = ", ".join(f"{s.name} ({s.label})" for s in SPACES.values())
        raise UnknownSpaceError(f"Unknown latent space {name!r}. Known spaces: {known}.")
    return SPACES[key]


def spatial_scale(src: LatentSpace, dst: LatentSpace) -> float:
    """Resampling factor from a ``src`` latent grid to a ``dst`` latent grid of the same image."""
    return src.spatial_factor / dst.spatial_factor
