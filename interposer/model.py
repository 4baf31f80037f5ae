"""The "v4" interposer network, in the exact state-dict layout of city96's published files.

Layout (keys start with ``head.``, ``core.`` or ``tail.``; every conv is 3x3, padding 1):

* ``head``: ``short`` conv (ch_in -> ch_mid) in parallel with ``long`` =
  conv, SiLU, conv, SiLU, conv, dropout; the two are summed, then ReLU.
* ``core``: ``0`` nearest resampling by ``scale`` (no weights), ``1..blocks`` residual
  blocks, then BatchNorm (``blocks + 1``) and SiLU. A residual block normalises its input
  first and adds the *normalised* input back: ``relu(long(norm(x)) + norm(x))``.
* ``tail``: conv ch_mid -> ch_out.

BatchNorm is not folded into neighbouring convolutions: it follows a ReLU (not linear) and
precedes a zero-padded conv, where folding changes the border pixels (see
``tests/core/test_model.py::test_batchnorm_cannot_be_folded_exactly``), and the skip path needs the
normalised tensor anyway. Eval-mode BatchNorm is a per-channel affine map and costs little.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class InterposerConfig:
    """Constructor arguments of :class:`InterposerV4` (also stored in exported weights)."""

    ch_in: int = 4
    ch_out: int = 4
    ch_mid: int = 64
    scale: float = 1.0
    blocks: int = 12

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InterposerConfig:
        """Build from a dict such as safetensors metadata; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown interposer constructor arguments: {sorted(unknown)}")
        cfg = cls(
            ch_in=int(data.get("ch_in", cls.ch_in)),
            ch_out=int(data.get("ch_out", cls.ch_out)),
            ch_mid=int(data.get("ch_mid", cls.ch_mid)),
            scale=float(data.get("scale", cls.scale)),
            blocks=int(data.get("blocks", cls.blocks)),
        )
        if min(cfg.ch_in, cfg.ch_out, cfg.ch_mid) < 1 or cfg.blocks < 0 or cfg.scale <= 0:
            raise ValueError(f"invalid interposer constructor arguments: {data}")
        return cfg


def _conv(ch_in: int, ch_out: int) -> nn.Conv2d:
    return nn.Conv2d(ch_in, ch_out, kernel_size=3, stride=1, padding=1)


def _long_branch(ch_in: int, ch_mid: int, dropout: float) -> nn.Sequential:
    # Indexes 0, 2, 4 hold weights; 1 and 3 are SiLU, 5 is dropout (inactive in eval).
    return nn.Sequential(
        _conv(ch_in, ch_mid), nn.SiLU(), _conv(ch_mid, ch_mid), nn.SiLU(), _conv(ch_mid, ch_mid), nn.Dropout(dropout)
    )


class ExtractBlock(nn.Module):
    """Head: widen ch_in to ch_mid through a short and a long path."""

    def __init__(self, ch_in: int, ch_out: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.short = _conv(ch_in, ch_out)
        self.long = _long_branch(ch_in, ch_out, dropout)
        self.join = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.join(self.long(x) + self.short(x))


class ResBlock(nn.Module):
    """Residual block whose skip path carries the *normalised* input (as published)."""

    def __init__(self, ch: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(ch)
        self.long = _long_branch(ch, ch, dropout)
        self.join = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.join(self.long(x) + x)


class InterposerV4(nn.Module):
    """Maps raw latents of one VAE to raw latents of another (see module docstring)."""

    def __init__(
        self,
        ch_in: int = 4,
        ch_out: int = 4,
        ch_mid: int = 64,
        scale: float = 1.0,
        blocks: int = 12,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.config = InterposerConfig(ch_in=ch_in, ch_out=ch_out, ch_mid=ch_mid, scale=float(scale), blocks=blocks)
        self.head = ExtractBlock(ch_in, ch_mid, dropout)
        self.core = nn.Sequential(
            nn.Upsample(scale_factor=float(scale), mode="nearest"),
            *[ResBlock(ch_mid, dropout) for _ in range(blocks)],
            nn.BatchNorm2d(ch_mid),
            nn.SiLU(),
        )
        self.tail = _conv(ch_mid, ch_out)

    @classmethod
    def from_config(cls, config: InterposerConfig, dropout: float = 0.1) -> InterposerV4:
        return cls(**config.to_dict(), dropout=dropout)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the output for an input of ``height`` x ``width`` (nearest resampling floors)."""
        scale = self.config.scale
        if scale == 1.0:
            return height, width
        return int(height * scale), int(width * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.core(self.head(x)))


def expected_state_dict_shapes(config: InterposerConfig) -> dict[str, tuple[int, ...]]:
    """Every key and shape a state dict of this layout must hold (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = InterposerV4.from_config(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}
