"""The least-squares linear upscaler: a closed-form baseline in the published v2.1 layout.

After nearest upsampling by ``factor``, one 3x3 convolution mixes the channels and the
neighbourhood of each output pixel; because nearest upsampling repeats source pixels, that one
kernel acts differently on each sub-pixel phase (the kernel ``(1/4, 1/2, 1/4)`` is exactly bilinear
2x, for instance), so the least-squares kernel is at least as good as the webui's bilinear ``Latent``
on the latents it was fitted on, and mixes channels besides.

``filter_to_upscaler`` writes the kernel into the v2.1 layout *exactly* (``ch_mid`` = 2C, no inner
convs): the first conv splits ``x`` into ``relu(x)`` and ``relu(-x)``, the last applies ``W`` and
``-W`` to them, so ``W * relu(x) - W * relu(-x) = W * x`` with the same zero padding. Files written
this way load and run everywhere the published ones do (tests, the webui stand-in, the CLI).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .upscaler_model import UpscalerConfig


def _upsampled_patches(lo_raw: torch.Tensor, factor: float, size: tuple[int, int] | None) -> torch.Tensor:
    up = F.interpolate(lo_raw.double(), scale_factor=factor, mode="nearest")
    if size is not None and tuple(up.shape[-2:]) != tuple(size):
        up = up[..., : size[0], : size[1]]
    patches = F.unfold(up, kernel_size=3, padding=1)  # (B, C*9, H*W)
    return patches.permute(0, 2, 1).reshape(-1, patches.shape[1]), up.shape[-2:]


def fit_upscale_filter(lo_raw: torch.Tensor, hi_raw: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares 3x3 kernel ``W`` (C_out, C_in, 3, 3) and bias ``b`` mapping nearest-upsampled
    ``lo_raw`` to ``hi_raw`` (raw latents of the same images at the two resolutions)."""
    x, size = _upsampled_patches(lo_raw, factor, tuple(hi_raw.shape[-2:]))
    if tuple(size) != tuple(hi_raw.shape[-2:]):
        raise ValueError(f"grids differ after upsampling: {tuple(size)} vs {tuple(hi_raw.shape[-2:])}")
    y = hi_raw.double().permute(0, 2, 3, 1).reshape(-1, hi_raw.shape[1])
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution  # (C_in * 9 + 1, C_out)
    c_in = lo_raw.shape[1]
    weight = solution[:-1].T.reshape(hi_raw.shape[1], c_in, 3, 3)
    return weight.float().contiguous(), solution[-1].float().contiguous()


def filter_to_upscaler(
    weight: torch.Tensor, bias: torch.Tensor, factor: float
) -> tuple[dict[str, torch.Tensor], UpscalerConfig]:
    """A v2.1-layout state dict (and its config) that computes ``conv3x3(nearest_up(x), W) + b`` exactly."""
    c_out, c_in = weight.shape[:2]
    config = UpscalerConfig(ch_in=c_in, ch_out=c_out, ch_mid=2 * c_in, factor=float(factor), convs=0)
    first = torch.zeros(2 * c_in, c_in, 3, 3)
    eye = torch.eye(c_in)
    first[:c_in, :, 1, 1] = eye
    first[c_in:, :, 1, 1] = -eye
    last = torch.cat([weight, -weight], dim=1)
    state = {
        "sequential.0.weight": first,
        "sequential.0.bias": torch.zeros(2 * c_in),
        "sequential.4.weight": last.contiguous(),
        "sequential.4.bias": bias.clone(),
    }
    return state, config
