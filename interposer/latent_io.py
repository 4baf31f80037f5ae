"""Reading and writing latent files: a one-tensor safetensors file, or ComfyUI's ``.latent``.

ComfyUI's ``.latent`` holds raw VAE latents under ``latent_tensor`` plus an empty
``latent_format_version_0`` marker; files without the marker are ComfyUI's older format,
which stored latents multiplied by 0.18215 (ComfyUI divides them back on load; so do we).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .atomic_files import save_safetensors
from .errors import InvalidLatentsError

COMFY_KEY = "latent_tensor"
COMFY_MARKER = "latent_format_version_0"
_COMFY_OLD_FACTOR = 0.18215


@dataclass
class LatentFile:
    tensor: torch.Tensor
    raw: bool  # True: raw VAE latents; False: model-space (scaled) latents
    comfy: bool
    key: str
    metadata: dict[str, str] = field(default_factory=dict)
    batched: bool = True  # False: the file held one (C, H, W) latent, written back with that rank


def read_latents(path: str | os.PathLike, *, raw: bool | None = None, key: str | None = None) -> LatentFile:
    """Load latents; ``raw`` overrides the file kind's convention (``.latent`` raw, else scaled)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InvalidLatentsError(f"Latent file {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in keys}
    except Exception as exc:
        raise InvalidLatentsError(f"{path} is not a readable safetensors/.latent file: {exc}") from exc
    comfy = path.suffix == ".latent" or COMFY_KEY in tensors
    if comfy:
        if COMFY_KEY not in tensors:
            raise InvalidLatentsError(f"{path} has no '{COMFY_KEY}' tensor (keys: {keys}).")
        tensor = tensors[COMFY_KEY].float()
        if COMFY_MARKER not in tensors:
            tensor = tensor / _COMFY_OLD_FACTOR
        chosen = COMFY_KEY
    else:
        candidates = [key] if key else list(tensors)
        if len(candidates) > 1:  # ignore empty marker tensors next to the latents
            candidates = [k for k in candidates if tensors[k].numel() > 0] or candidates
        if key and key not in tensors:
            raise InvalidLatentsError(f"{path} has no tensor {key!r} (keys: {keys}).")
        if len(candidates) != 1:
            raise InvalidLatentsError(
                f"{path} holds {len(candidates)} tensors ({keys}); pass --key to choose the latents."
            )
        chosen = candidates[0]
        tensor = tensors[chosen]
    batched = tensor.ndim != 3
    if not batched:
        tensor = tensor.unsqueeze(0)
    return LatentFile(tensor=tensor, raw=comfy if raw is None else raw, comfy=comfy, key=chosen, metadata=metadata,
                      batched=batched)  # fmt: skip


def write_latents(path: str | os.PathLike, tensor: torch.Tensor, like: LatentFile, metadata: dict[str, str]) -> Path:
    """Write in the same kind as ``like`` (ComfyUI ``.latent`` or one-tensor safetensors), atomically."""
    tensor = tensor.detach().contiguous().cpu()
    if not like.batched:
        tensor = tensor[0]
    if like.comfy:
        tensors = {COMFY_KEY: tensor.float(), COMFY_MARKER: torch.tensor([])}
    else:
        tensors = {like.key: tensor}
    return save_safetensors(path, tensors, {**like.metadata, **metadata})
