"""Training pairs: encoded shards in memory, and a sampler of random aligned latent crops.

The sampler draws every random number from its own ``torch.Generator``, whose state goes into
checkpoints: a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from interposer.directions import Direction
from interposer.errors import InterposerError

from .encode import read_manifest


def load_pairs(
    folder: str | os.PathLike, dirn: Direction, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Raw (src, dst) latents of every crop in ``folder`` (``split``: train or holdout), or None if empty."""
    from safetensors.torch import load_file

    folder = Path(folder)
    manifest = read_manifest(folder)
    missing = [s for s in (dirn.src.name, dirn.dst.name) if s not in manifest["families"]]
    if missing:
        raise InterposerError(
            f"{folder} has latents of {', '.join(manifest['families'])}, not of {', '.join(missing)}: "
            f"encode it with --families including {' '.join(missing)}."
        )
    files = [s["file"] for s in manifest["shards"]] if split == "train" else [manifest["holdout_file"]]
    files = [f for f in files if f]
    if not files:
        return None
    shards = [load_file(str(folder / f)) for f in files]
    return tuple(torch.cat([s[space.name] for s in shards]).float() for space in (dirn.src, dirn.dst))


def pixel_step(dirn: Direction) -> int:
    """Smallest pixel step that is a whole number of latents in both spaces (8 for v1/xl/v3/fx)."""
    a, b = dirn.src.spatial_factor, dirn.dst.spatial_factor
    return a * b // math.gcd(a, b)


class CropSampler:
    """Random batches of aligned (src, dst) latent crops with random horizontal flips.

    ``crop`` is the crop side in *source* latents. Crops are placed on a grid that is whole in
    both spaces, so the pair always covers the same image pixels.
    """

    def __init__(
        self, src: torch.Tensor, dst: torch.Tensor, dirn: Direction, crop: int, batch: int, *, flip: bool, seed: int
    ) -> None:
        self.src, self.dst, self.batch, self.flip = src, dst, batch, flip
        self.step_px = pixel_step(dirn)
        self.fs, self.fd = dirn.src.spatial_factor, dirn.dst.spatial_factor
        crop_px = crop * self.fs
        if crop_px % self.step_px:
            raise InterposerError(f"A crop of {crop} {dirn.src.name} latents does not align with {dirn.dst.name}.")
        self.crop_px = crop_px
        self.image_px = src.shape[-1] * self.fs  # stored crops are square
        if self.crop_px > self.image_px:
            raise InterposerError(
                f"Training crops of {crop} latents are larger than the encoded crops ({src.shape[-1]} latents): "
                "lower crop or encode with a larger --crop."
            )
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        n = len(self.src)
        index = torch.randint(0, n, (self.batch,), generator=g)
        positions = (self.image_px - self.crop_px) // self.step_px + 1
        top = torch.randint(0, positions, (self.batch,), generator=g) * self.step_px
        left = torch.randint(0, positions, (self.batch,), generator=g) * self.step_px
        flips = torch.rand(self.batch, generator=g) < 0.5
        xs, ys = [], []
        for i in range(self.batch):
            k, t, x0, size = int(index[i]), int(top[i]), int(left[i]), self.crop_px
            x = self.src[k, :, t // self.fs : (t + size) // self.fs, x0 // self.fs : (x0 + size) // self.fs]
            y = self.dst[k, :, t // self.fd : (t + size) // self.fd, x0 // self.fd : (x0 + size) // self.fd]
            if self.flip and flips[i]:
                x, y = x.flip(-1), y.flip(-1)
            xs.append(x)
            ys.append(y)
        return torch.stack(xs), torch.stack(ys)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
