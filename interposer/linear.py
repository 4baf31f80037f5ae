"""The least-squares per-pixel affine map: the baseline every interposer must beat.

``fit_affine`` solves ``dst_raw ~= A @ src_raw + b`` over all latent pixels. ``affine_to_v4``
writes that map into the v4 layout (exactly, up to ~1e-5), so the closed-form baseline can be
saved, loaded and run by everything that runs real interposer weights: the CLI, the webui
script and the tests use it as a known-good conversion that needs no training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import InterposerConfig, InterposerV4

# Positive offset that keeps every activation in the linear part of ReLU and SiLU.
# Raw latents stay well inside +-OFFSET/2 (SDXL raw latents reach about +-30).
_OFFSET = 80.0


def resample(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The same nearest resampling the v4 model applies (``core.0``)."""
    return x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="nearest")


def fit_affine(src_raw: torch.Tensor, dst_raw: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``A`` (C_out, C_in) and ``b`` (C_out,) over every pixel of the pairs."""
    src = resample(src_raw.double(), scale)
    if src.shape[-2:] != dst_raw.shape[-2:]:
        raise ValueError(f"latent grids differ after resampling: {tuple(src.shape)} vs {tuple(dst_raw.shape)}")
    x = src.permute(0, 2, 3, 1).reshape(-1, src.shape[1])
    y = dst_raw.double().permute(0, 2, 3, 1).reshape(-1, dst_raw.shape[1])
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution  # (C_in + 1, C_out)
    return solution[:-1].T.float().contiguous(), solution[-1].float().contiguous()


def apply_affine(src_raw: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    x = resample(src_raw.float(), scale)
    return torch.einsum("oc,bchw->bohw", a, x) + b.view(1, -1, 1, 1)


def affine_to_v4(a: torch.Tensor, b: torch.Tensor, scale: float = 1.0, blocks: int = 1, ch_mid: int | None = None):
    """A v4 state dict (and its config) that computes ``A x + b`` per pixel.

    The head's short path writes ``A x + b + OFFSET`` (always positive, so ReLU passes it), the
    residual blocks and the final BatchNorm are identities, SiLU is linear to ~1e-30 at that
    offset, and the tail removes the offset.
    """
    ch_out, ch_in = a.shape
    ch_mid = ch_mid or ch_out
    config = InterposerConfig(ch_in=ch_in, ch_out=ch_out, ch_mid=ch_mid, scale=scale, blocks=blocks)
    model = InterposerV4.from_config(config)
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    state["head.short.weight"][:ch_out, :, 1, 1] = a
    state["head.short.bias"][:] = _OFFSET
    state["head.short.bias"][:ch_out] += b
    eps = 1e-5
    for key in state:
        if key.endswith("norm.weight") or key == f"core.{blocks + 1}.weight":
            state[key].fill_(1.0)
        if key.endswith("running_var"):
            state[key].fill_(1.0 - eps)  # (x - 0) / sqrt(var + eps) == x
    state["tail.weight"][:, :ch_out, 1, 1] = torch.eye(ch_out)
    state["tail.bias"][:] = -_OFFSET
    return state, config
