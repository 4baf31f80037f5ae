"""Tiny autoencoders (TAESD, by madebyollin, MIT) for demos, tests and cheap training data.

TAESD encoders return latents already in the diffusion model's *scaled* space and take and
return images in [0, 1]. Weights load from a folder (``{name}_{encoder|decoder}.safetensors``
with ``nn.Sequential`` keys, the ``.pth`` files A1111 keeps in ``models/VAE-approx``, or a
diffusers ``AutoencoderTiny`` folder) or from the Hugging Face hub (``madebyollin/{name}``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from . import hub
from .errors import InterposerError, WeightsNotFoundError
from .spaces import LatentSpace, get_space

TAESD_NAMES = {"v1": "taesd", "xl": "taesdxl", "v3": "taesd3", "fx": "taef1", "f2": "taef2"}
PARTS = ("encoder", "decoder")
# taef2 is TAESD's ``flux_2`` variant: these Blocks (Sequential indices) also have a ``pool`` branch.
POOLED_BLOCKS = {"f2": {"encoder": (11, 12, 13), "decoder": (3, 4, 5)}}


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """TAESD's residual block; ``pool`` (taef2) first adds a 1x1 bottleneck of the input to itself."""

    def __init__(self, n_in: int, n_out: int, pool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        if pool:
            self.pool = nn.Sequential(nn.Conv2d(n_in, 256, 1, bias=False), nn.GroupNorm(4, 256), nn.ReLU(),
                                      nn.Conv2d(256, n_in, 1, bias=False))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "pool"):
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def _with_pools(layers: list[nn.Module], pooled: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(*(Block(64, 64, pool=True) if i in pooled else m for i, m in enumerate(layers)))


def make_encoder(latent_channels: int, pooled: tuple[int, ...] = ()) -> nn.Sequential:
    stages = [
        m for _ in range(3) for m in (_conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64))
    ]
    return _with_pools([_conv(3, 64), Block(64, 64), *stages, _conv(64, latent_channels)], pooled)


def make_decoder(latent_channels: int, pooled: tuple[int, ...] = ()) -> nn.Sequential:
    stages = [
        m
        for _ in range(3)
        for m in (Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), _conv(64, 64, bias=False))
    ]
    return _with_pools([Clamp(), _conv(latent_channels, 64), nn.ReLU(), *stages, Block(64, 64), _conv(64, 3)], pooled)


class TinyVAE(nn.Module):
    """Encoder/decoder pair of one latent space (either half may be absent)."""

    def __init__(self, space: LatentSpace, encoder: nn.Module | None, decoder: nn.Module | None) -> None:
        super().__init__()
        self.space = space
        self.encoder = encoder
        self.decoder = decoder

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], (B, 3, H, W) -> scaled latents (B, C, H/8, W/8)."""
        if self.encoder is None:
            raise InterposerError(f"No TAESD encoder loaded for {self.space.name}.")
        return self.encoder(images.float())

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images clamped to [0, 1]."""
        if self.decoder is None:
            raise InterposerError(f"No TAESD decoder loaded for {self.space.name}.")
        return self.decoder(latents.float()).clamp(0, 1)


def _from_diffusers(state_dict: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """diffusers ``AutoencoderTiny`` keys -> ``nn.Sequential`` keys (its decoder has no Clamp layer)."""
    prefix = f"{part}.layers."
    offset = 1 if part == "decoder" else 0
    converted = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix) :].partition(".")
            converted[f"{int(index) + offset}.{rest}"] = value
    return converted


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    # A1111's models/VAE-approx/*.pth: plain tensors, read with the restricted (weights-only) loader.
    return torch.load(str(path), map_location="cpu", weights_only=True)


def load_part(path: str | os.PathLike, space: str | LatentSpace, part: str) -> nn.Sequential:
    """Build an encoder or decoder and load ``path`` into it strictly (either key layout)."""
    space = get_space(space)
    path = Path(path)
    state_dict = _read_state_dict(path)
    if any(k.startswith(f"{part}.layers.") for k in state_dict):
        state_dict = _from_diffusers(state_dict, part)
    pooled = POOLED_BLOCKS.get(space.name, {}).get(part, ())
    make = make_encoder if part == "encoder" else make_decoder
    module = make(space.channels, pooled)
    try:
        module.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    except RuntimeError as exc:
        raise InterposerError(
            f"{path} is not a TAESD {part} for {space.name} ({space.channels} channels): {exc}"
        ) from exc
    return module.eval().requires_grad_(False)


def find_in_folder(folder: str | os.PathLike, space: LatentSpace, part: str) -> Path | None:
    name = TAESD_NAMES.get(space.name)
    if name is None:
        return None
    folder = Path(folder)
    for candidate in (
        folder / f"{name}_{part}.safetensors",
        folder / f"{name}_{part}.pth",
        folder / name / "diffusion_pytorch_model.safetensors",
    ):
        if candidate.is_file():
            return candidate
    return None


def _from_hub(space: LatentSpace, part: str, local_files_only: bool) -> Path:
    """The hub cache first (no request), then one quick request per name (no retries: see ``interposer.hub``)."""
    name = TAESD_NAMES[space.name]
    repo = f"madebyollin/{name}"
    files = [hub.HubFile(repo, filename) for filename in (f"{name}_{part}.safetensors",
                                                          "diffusion_pytorch_model.safetensors")]  # fmt: skip
    for file in files:
        found = hub.cached(file)
        if found is not None:
            return found
    reason = "downloads are off" if local_files_only else "HF_HUB_OFFLINE is set"
    if not local_files_only and not hub.offline():
        for file in files:
            try:
                return hub.download(file)
            except hub.HubEntryMissingError as exc:  # the repo keeps the other layout: try the next name
                reason = str(exc)
            except hub.HubUnreachableError as exc:
                reason = f"{exc}. {hub.mirror_hint()}"
                break
    raise WeightsNotFoundError(
        f"Could not get the TAESD {part} for {space.name} from the hub repo {repo}: {reason} "
        f"Pass --taesd-dir with {name}_{part}.safetensors in it (https://github.com/madebyollin/taesd)."
    )


def load_tiny_vae(
    space: str | LatentSpace,
    folder: str | os.PathLike | None = None,
    *,
    parts: tuple[str, ...] = PARTS,
    allow_download: bool = True,
) -> TinyVAE:
    """TAESD for ``space`` from ``folder``, else from the hub."""
    space = get_space(space)
    if space.name not in TAESD_NAMES:
        raise InterposerError(f"There is no TAESD for {space.label}; tiny VAEs exist for: {', '.join(TAESD_NAMES)}.")
    modules = {}
    for part in PARTS:
        if part not in parts:
            modules[part] = None
            continue
        path = find_in_folder(folder, space, part) if folder else None
        if path is None:
            if folder and not allow_download:
                name = TAESD_NAMES[space.name]
                raise WeightsNotFoundError(f"No {name}_{part}.safetensors (or .pth) in {folder}.")
            path = _from_hub(space, part, local_files_only=not allow_download)
        modules[part] = load_part(path, space, part)
    return TinyVAE(space, modules["encoder"], modules["decoder"])
