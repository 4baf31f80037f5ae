"""FLUX.2's two layouts of one latent: 32 channels at /8, and the 2x2-packed 128 channels at /16.

FLUX.2's VAE packs its 32-channel latent into 2x2 patches (``c (i pi) (j pj) -> (c pi pj) i j``) before the
BatchNorm, and Forge Neo's Klein sampler holds that packed form; Neo's Mugen and taef2 use it unpacked. The two
are the same numbers in another order, so converting between them is exact and needs no weights. The interposer's
``f2`` space is the unpacked one; a packed latent is unpacked on the way in and packed on the way out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InvalidLatentsError

if TYPE_CHECKING:
    import torch

PACKED_CHANNELS = 128
UNPACKED_CHANNELS = 32


def unpack_2x2(latents: torch.Tensor) -> torch.Tensor:
    """``[B, 128, H, W]`` -> ``[B, 32, 2H, 2W]`` (Neo's ``latent_rgb_factors_reshape`` for ``Flux2``)."""
    if latents.ndim != 4 or latents.shape[1] != PACKED_CHANNELS:
        raise InvalidLatentsError(f"Packed FLUX.2 latents are [B, 128, H, W]; got {tuple(latents.shape)}.")
    b, _, h, w = latents.shape
    return latents.reshape(b, UNPACKED_CHANNELS, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, 32, h * 2, w * 2)


def pack_2x2(latents: torch.Tensor) -> torch.Tensor:
    """``[B, 32, 2H, 2W]`` -> ``[B, 128, H, W]``: the inverse of :func:`unpack_2x2` (an odd side loses its last row
    or column, as the VAE's own packing of such a grid would not exist)."""
    if latents.ndim != 4 or latents.shape[1] != UNPACKED_CHANNELS:
        raise InvalidLatentsError(f"FLUX.2 latents to pack are [B, 32, H, W]; got {tuple(latents.shape)}.")
    b, _, h, w = latents.shape
    h, w = h // 2, w // 2
    x = latents[:, :, : h * 2, : w * 2].reshape(b, UNPACKED_CHANNELS, h, 2, w, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, PACKED_CHANNELS, h, w)
