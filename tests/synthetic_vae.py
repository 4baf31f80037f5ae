"""Linear stand-ins for the tiny VAEs, for a clone that has no TAESD files and no connection to fetch them.

A :class:`SyntheticVAE` encodes each 8x8 RGB patch to ``C`` numbers with a fixed linear map and decodes with its
pseudo-inverse: the top-``C`` singular directions of the test scenes' patches, turned by a rotation and scaled per
channel that differ for every family. So, as with real VAEs, each family has its own latent space (an SDXL latent
read as an SD1.5 one decodes to the wrong colours), a map between two families exists and is learnable (here
exactly linear), and a 16- or 32-channel space holds more detail than a 4-channel one. Only the webui stand-ins'
tests use them: anything that measures the real latent spaces (TAESD round trips, the CLI's ``--taesd-dir``, the
trainer) needs the real files and skips without them (``conftest.NO_TAESD``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from interposer.spaces import get_space

PATCH = 8
_SEEDS = {"v1": 1, "xl": 2, "v3": 3, "fx": 4, "f2": 5}


class SyntheticVAE:
    """``encode``: images in [0, 1] -> scaled latents at /8; ``decode``: the reverse, clamped to [0, 1]."""

    def __init__(self, family: str, basis: torch.Tensor) -> None:
        self.space = get_space(family)
        channels = self.space.channels
        gen = torch.Generator().manual_seed(_SEEDS[family])
        rotation, _ = torch.linalg.qr(torch.randn(channels, channels, generator=gen))
        gains = 0.5 + torch.rand(channels, generator=gen)
        self.encoder = (rotation * gains[:, None]) @ basis[:channels]  # [C, 192]: patch -> raw latent
        self.decoder = torch.linalg.pinv(self.encoder)  # [192, C]

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        patches = F.unfold(images.float(), PATCH, stride=PATCH)  # [B, 192, L]
        raw = (self.encoder @ patches).reshape(b, -1, h // PATCH, w // PATCH)
        return self.space.to_scaled(raw)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, h, w = latents.shape
        raw = self.space.to_raw(latents.float()).reshape(b, c, h * w)
        patches = self.decoder @ raw
        return F.fold(patches, (h * PATCH, w * PATCH), PATCH, stride=PATCH).clamp(0, 1)


def synthetic_vaes(images: torch.Tensor) -> dict[str, SyntheticVAE]:
    """One linear VAE per family, from the principal directions of ``images``' 8x8 patches (uncentred: the first
    carries the brightness, which a latent read by another family's decoder then scrambles, as a real one does)."""
    patches = F.unfold(images.float(), PATCH, stride=PATCH).permute(0, 2, 1).reshape(-1, 3 * PATCH * PATCH)
    _, _, vh = torch.linalg.svd(patches, full_matrices=False)
    return {family: SyntheticVAE(family, vh) for family in _SEEDS}
