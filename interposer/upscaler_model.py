"""The "v2.1" latent upscaler, in the exact state-dict layout of city96's SD-Latent-Upscaler files.

Layout (one ``nn.Sequential`` named ``sequential``; every conv is 3x3, padding 1, with bias):

* ``0`` conv ch_in -> ch_mid, ``1`` ReLU,
* ``2`` nearest ``Upsample(scale_factor=factor)`` (no weights), ``3`` ReLU,
* ``convs`` pairs of conv ch_mid -> ch_mid and ReLU (indexes 4, 5, ..., the weights at even indexes),
* the last index: conv ch_mid -> ch_out.

The published files use ch_mid 64 and 16 inner convs (the last conv at index 36), 4 channels in and
out, and factors 1.25, 1.5 and 2.0. They map **raw** VAE latents of one family to raw latents of the
same family at ``floor(H * factor) x floor(W * factor)``. Like the interposer, a trained file carries
its constructor arguments in the metadata, so narrower or shallower variants load without code changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UpscalerConfig:
    """Constructor arguments of :class:`LatentUpscalerV2` (also stored in exported weights)."""

    ch_in: int = 4
    ch_out: int = 4
    ch_mid: int = 64
    factor: float = 2.0
    convs: int = 16

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> UpscalerConfig:
        """Build from a dict such as safetensors metadata; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown upscaler constructor arguments: {sorted(unknown)}")
        cfg = cls(
            ch_in=int(data.get("ch_in", cls.ch_in)),
            ch_out=int(data.get("ch_out", cls.ch_out)),
            ch_mid=int(data.get("ch_mid", cls.ch_mid)),
            factor=float(data.get("factor", cls.factor)),
            convs=int(data.get("convs", cls.convs)),
        )
        if min(cfg.ch_in, cfg.ch_out, cfg.ch_mid) < 1 or cfg.convs < 0 or cfg.factor <= 0:
            raise ValueError(f"invalid upscaler constructor arguments: {data}")
        return cfg


def _conv(ch_in: int, ch_out: int) -> nn.Conv2d:
    return nn.Conv2d(ch_in, ch_out, kernel_size=3, stride=1, padding=1)


class LatentUpscalerV2(nn.Module):
    """Upscales raw latents of one family by ``factor`` (see the module docstring)."""

    def __init__(self, ch_in: int = 4, ch_out: int = 4, ch_mid: int = 64, factor: float = 2.0, convs: int = 16) -> None:
        super().__init__()
        self.config = UpscalerConfig(ch_in=ch_in, ch_out=ch_out, ch_mid=ch_mid, factor=float(factor), convs=convs)
        layers: list[nn.Module] = [
            _conv(ch_in, ch_mid),
            nn.ReLU(),
            nn.Upsample(scale_factor=float(factor), mode="nearest"),
            nn.ReLU(),
        ]
        for _ in range(convs):
            layers += [_conv(ch_mid, ch_mid), nn.ReLU()]
        layers.append(_conv(ch_mid, ch_out))
        self.sequential = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: UpscalerConfig) -> LatentUpscalerV2:
        return cls(**config.to_dict())

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the output (PyTorch's nearest mode with a scale factor floors)."""
        return int(height * self.config.factor), int(width * self.config.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)


def expected_upscaler_shapes(config: UpscalerConfig) -> dict[str, tuple[int, ...]]:
    """Every key and shape a state dict of this layout must hold (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = LatentUpscalerV2.from_config(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}
