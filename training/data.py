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

from .encode import latent_key, read_manifest


def load_split(folder: str | os.PathLike, keys: list[str], split: str = "train") -> dict[str, torch.Tensor] | None:
    """The tensors ``keys`` of every crop in ``folder`` (``split``: train or holdout), or None if empty.

    Latents come back as float32, ``rgb`` as uint8 (it is converted per batch, not all at once).
    """
    from safetensors import safe_open

    folder = Path(folder)
    manifest = read_manifest(folder)
    files = [s["file"] for s in manifest["shards"]] if split == "train" else [manifest["holdout_file"]]
    files = [f for f in files if f]
    if not files:
        return None
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for name in files:
        with safe_open(str(folder / name), framework="pt") as shard:
            present = set(shard.keys())
            for key in keys:
                if key not in present:
                    raise InterposerError(f"{folder / name} has no {key!r} tensors: {_how_to_get(key)}")
                parts[key].append(shard.get_tensor(key))
    return {k: torch.cat(v) if k == "rgb" else torch.cat(v).float() for k, v in parts.items()}


def _how_to_get(key: str) -> str:
    if key == "rgb":
        return "encode the data with --rgb (image-space losses need the crops)."
    family, _, factor = key.partition("@x")
    if factor:
        return f"encode the data with --factors {factor} (upscaler pairs)."
    return f"encode it with --families including {family}."


def require_families(manifest: dict, folder: str | os.PathLike, families: list[str]) -> None:
    """One clear line when the data folder lacks latents of a family the run needs."""
    missing = [f for f in families if f not in manifest["families"]]
    if missing:
        raise InterposerError(
            f"{folder} has latents of {', '.join(manifest['families'])}, not of {', '.join(missing)}: "
            f"encode it with --families including {' '.join(missing)}."
        )


def load_pairs(
    folder: str | os.PathLike, dirn: Direction, split: str = "train", factor: float | None = None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Raw (src, dst) latents of every crop in ``folder``, or None if empty. With ``factor`` the
    source latents are those of the crops downscaled by ``factor`` (upscaler inputs)."""
    require_families(read_manifest(folder), folder, [dirn.src.name, dirn.dst.name])
    keys = [latent_key(dirn.src.name, factor), dirn.dst.name]
    tensors = load_split(folder, keys, split)
    return None if tensors is None else (tensors[keys[0]], tensors[keys[1]])


def pixel_step(*pixels_per_latent: int) -> int:
    """Smallest pixel step that is a whole number of latents in every grid (8 for v1/xl/v3/fx;
    24 for 1.5x-downscaled v1 latents, 12 px each, against full-size ones)."""
    step = 1
    for p in pixels_per_latent:
        step = step * p // math.gcd(step, p)
    return step


def pixels_per_latent(space, factor: float | None = None) -> int:
    """Image pixels one latent covers: the VAE's factor, times ``factor`` for downscaled crops."""
    value = space.spatial_factor * (factor or 1.0)
    if abs(value - round(value)) > 1e-6:
        raise InterposerError(f"A factor of {factor:g} does not give whole pixels per {space.name} latent.")
    return round(value)


class CropSampler:
    """Random batches of aligned (src, dst[, rgb]) crops with random horizontal flips.

    ``crop`` is the crop side in *source* latents; ``src_px``/``dst_px`` are the image pixels one
    latent covers in each grid (8 for a full-size VAE latent, 16 for one of a crop downscaled 2x).
    Crops are placed on a grid that is whole in every space, so the pair (and the RGB crop, when
    given) always covers the same image pixels.
    """

    def __init__(
        self, src: torch.Tensor, dst: torch.Tensor, dirn: Direction | None, crop: int, batch: int, *, flip: bool,
        seed: int, src_px: int | None = None, dst_px: int | None = None, rgb: torch.Tensor | None = None,
    ) -> None:  # fmt: skip
        self.src, self.dst, self.rgb, self.batch, self.flip = src, dst, rgb, batch, flip
        self.fs = src_px or dirn.src.spatial_factor
        self.fd = dst_px or dirn.dst.spatial_factor
        self.step_px = pixel_step(self.fs, self.fd)
        crop_px = crop * self.fs
        if crop_px % self.step_px:
            raise InterposerError(
                f"A crop of {crop} source latents ({crop_px} px) does not align with the target grid: "
                f"use a multiple of {self.step_px // self.fs}."
            )
        self.crop_px = crop_px
        self.image_px = src.shape[-1] * self.fs  # stored crops are square
        if self.crop_px > self.image_px:
            raise InterposerError(
                f"Training crops of {crop} latents are larger than the encoded crops ({src.shape[-1]} latents): "
                "lower crop or encode with a larger --crop."
            )
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> tuple[torch.Tensor, ...]:
        """(src, dst) or, with RGB crops, (src, dst, rgb in [0, 1])."""
        g = self.generator
        n = len(self.src)
        index = torch.randint(0, n, (self.batch,), generator=g)
        positions = (self.image_px - self.crop_px) // self.step_px + 1
        top = torch.randint(0, positions, (self.batch,), generator=g) * self.step_px
        left = torch.randint(0, positions, (self.batch,), generator=g) * self.step_px
        flips = torch.rand(self.batch, generator=g) < 0.5
        xs, ys, rs = [], [], []
        for i in range(self.batch):
            k, t, x0, size = int(index[i]), int(top[i]), int(left[i]), self.crop_px
            x = self.src[k, :, t // self.fs : (t + size) // self.fs, x0 // self.fs : (x0 + size) // self.fs]
            y = self.dst[k, :, t // self.fd : (t + size) // self.fd, x0 // self.fd : (x0 + size) // self.fd]
            r = None if self.rgb is None else self.rgb[k, :, t : t + size, x0 : x0 + size]
            if self.flip and flips[i]:
                x, y = x.flip(-1), y.flip(-1)
                r = None if r is None else r.flip(-1)
            xs.append(x)
            ys.append(y)
            rs.append(r)
        if self.rgb is None:
            return torch.stack(xs), torch.stack(ys)
        return torch.stack(xs), torch.stack(ys), torch.stack(rs).float() / 255

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
