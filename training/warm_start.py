"""Warm starts: a freshly built network that already computes the least-squares linear map, and (``refit_tail``) a
trained network of another target whose last convolution is fitted again by least squares.

Training from random weights spends its first thousands of steps below the closed-form linear
map (the README's 500-step model scored 17.1 dB against the linear map's 20.1). Writing the
linear map into the network before step 0 makes every later step an improvement on it, in the
*unchanged* published layout (same keys, same constructor arguments), so the webui loads the
result like any other file.

The map is carried on ``2 * C_out`` channels as ``relu(y)`` and ``relu(-y)`` (``y = relu(y) -
relu(-y)`` passes every ReLU unchanged); every other channel keeps its random initialisation, so
it is alive (not stuck at a ReLU's zero) and free to learn what the linear map misses. Branches
that would disturb the carried channels start at zero on those channels only. For the v4
interposer the BatchNorm layers must be frozen (eval mode, ``bn=frozen``) for the start to be
exact: running statistics 0/1, so each is an identity on the carried channels; the final SiLU is
kept in its linear range by a +16 bias on them (error below 2e-6), which the tail cancels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from interposer.errors import InterposerError
from interposer.model import InterposerV4
from interposer.upscaler_model import LatentUpscalerV2

SILU_OFFSET = 16.0  # silu(v) = v * sigmoid(v) differs from v by < v * exp(-v): 2e-6 at 16


def _split_rows(weight: torch.Tensor, bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """Rows 0..C-1 compute ``a x + b`` (centre tap), rows C..2C-1 compute ``-(a x + b)``."""
    c = a.shape[0]
    weight[: 2 * c].zero_()
    weight[:c, :, 1, 1] = a
    weight[c : 2 * c, :, 1, 1] = -a
    bias[:c] = b
    bias[c : 2 * c] = -b


def _identity_rows(weight: torch.Tensor, bias: torch.Tensor, channels: int) -> None:
    """Rows 0..channels-1 pass their own channel through (centre tap), reading nothing else."""
    weight[:channels].zero_()
    weight[:channels, :channels, 1, 1] = torch.eye(channels)
    bias[:channels] = 0


def _carried(model: torch.nn.Module, channels: int, which: str) -> int:
    """How many hidden channels carry the map (2 per channel: relu(y), relu(-y)); the model must have them."""
    carried, width = 2 * channels, model.config.ch_mid
    if width < carried:
        raise InterposerError(
            f"warm_start=linear needs ch_mid >= {carried} (2 x the {which} channels), got ch_mid={width}: add "
            f"--set ch_mid={carried}, or warm_start=none."
        )
    return carried


@torch.no_grad()
def warm_start_interposer(model: InterposerV4, a: torch.Tensor, b: torch.Tensor) -> None:
    """Make ``model`` (eval-mode BatchNorm) compute ``a @ nearest(x) + b`` per pixel."""
    c_out = a.shape[0]
    carried = _carried(model, c_out, "output")
    cfg = model.config
    _split_rows(model.head.short.weight, model.head.short.bias, a.to(model.head.short.weight), b.to(a))
    last = model.head.long[4]
    last.weight[:carried].zero_()
    last.bias[:carried] = 0
    blocks = list(model.core)[1 : 1 + cfg.blocks]
    for block in blocks:
        last = block.long[4]
        last.weight[:carried].zero_()
        last.bias[:carried] = 0
    norms = [block.norm for block in blocks] + [model.core[cfg.blocks + 1]]
    for norm in norms:
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(var + eps) == x
        norm.weight[:carried] = 1.0
        norm.bias[:carried] = 0.0
    norms[-1].bias[:carried] = SILU_OFFSET  # keep the final SiLU linear on the carried channels
    tail = model.tail
    tail.weight.zero_()
    eye = torch.eye(c_out)
    tail.weight[:, :c_out, 1, 1] = eye
    tail.weight[:, c_out:carried, 1, 1] = -eye
    tail.bias.zero_()  # (relu(y) + 16) - (relu(-y) + 16) = y


@torch.no_grad()
def warm_start_upscaler(model: LatentUpscalerV2, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Make ``model`` compute ``conv3x3(nearest_up(x), weight) + bias`` (the least-squares upscale filter)."""
    c_in = weight.shape[1]
    carried = _carried(model, c_in, "input")
    convs = [m for m in model.sequential if isinstance(m, torch.nn.Conv2d)]
    first, inner, last = convs[0], convs[1:-1], convs[-1]
    eye = torch.eye(c_in)
    _split_rows(first.weight, first.bias, eye, torch.zeros(c_in))
    for conv in inner:
        _identity_rows(conv.weight, conv.bias, carried)
    last.weight.zero_()
    last.weight[:, :c_in] = weight.to(last.weight)
    last.weight[:, c_in:carried] = -weight.to(last.weight)
    last.bias.copy_(bias)


@torch.no_grad()
def refit_tail(model: InterposerV4, src: torch.Tensor, dst: torch.Tensor, pixels_per_crop: int = 200,
               ridge: float = 1e-3, seed: int = 0) -> None:  # fmt: skip
    """Fit ``model``'s last 3x3 convolution by (ridge) least squares onto ``dst``, keeping everything before it.

    A run into another target from a trained run with the same source (``init=`` an ``f2-to-v1`` run for
    ``f2-to-xl``) keeps what the head and core learned about the source latents (most of the training) and only
    needs a new read-out; the best linear read-out of those features is a far better start than the 1x1 map (on
    the held-out images: f2 -> xl from the f2 -> v1 core 4.3 dB under the TAE bridge, the 1x1 map 9.1). The model
    must be in eval mode; ``pixels_per_crop`` random pixels of each crop (seeded) make the system, ``ridge`` (times
    the pixel count) keeps it well posed where features are nearly collinear.
    """
    tail = model.tail
    generator = torch.Generator().manual_seed(seed)
    rows_x, rows_y = [], []
    for i in range(0, len(src), 64):
        x = src[i : i + 64].to(tail.weight)
        columns = F.unfold(model.core(model.head(x)).float(), 3, padding=1).cpu()  # (B, C*9, H*W): the tail's inputs
        target = dst[i : i + 64].float().flatten(2)
        pick = torch.randint(0, columns.shape[-1], (len(columns), min(pixels_per_crop, columns.shape[-1])),
                             generator=generator)  # fmt: skip
        rows_x.append(torch.gather(columns, 2, pick[:, None].expand(-1, columns.shape[1], -1)).transpose(1, 2))
        rows_y.append(torch.gather(target, 2, pick[:, None].expand(-1, target.shape[1], -1)).transpose(1, 2))
    features = torch.cat([r.reshape(-1, r.shape[-1]) for r in rows_x]).double()
    targets = torch.cat([r.reshape(-1, r.shape[-1]) for r in rows_y]).double()
    design = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1)
    penalty = ridge * len(design) * torch.eye(design.shape[1], dtype=design.dtype)
    penalty[-1, -1] = 0  # the bias is not shrunk
    solution = torch.linalg.solve(design.T @ design + penalty, design.T @ targets)  # (C*9 + 1, C_out)
    c_out, c_mid = targets.shape[1], tail.in_channels
    tail.weight.copy_(solution[:-1].T.reshape(c_out, c_mid, 3, 3))
    tail.bias.copy_(solution[-1])
