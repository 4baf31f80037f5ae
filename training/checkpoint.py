"""Training checkpoints: one safetensors file per checkpoint, no pickles.

Tensors are grouped by a key prefix (``model.``, ``ema.``, ``reverse.``, ``optim.``, ``rng.``);
everything else (step, configuration, optimiser hyper-parameters, Python/NumPy RNG states,
grad-scaler state) is JSON in the file's metadata under ``state``. Files are written to a
temporary name and renamed, so a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from interposer.atomic_files import save_safetensors
from interposer.errors import InterposerError
from interposer.safetensors_header import read_safetensors_header

CHECKPOINT_FORMAT = "interposer-training-checkpoint"
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"step-(\d+)\.safetensors$")


def checkpoint_path(run: Path, step: int) -> Path:
    return run / CHECKPOINT_DIR / f"step-{step:07d}.safetensors"


def list_checkpoints(run: Path) -> list[Path]:
    """Checkpoints of a run folder, oldest first."""
    folder = Path(run) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _NAME.search(p.name)), key=lambda p: int(_NAME.search(p.name)[1]))


def find_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` itself if it is a checkpoint file, else the newest checkpoint of the run folder ``path``."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise InterposerError(f"{path} has no checkpoints (looked in {path / CHECKPOINT_DIR}).")
        return found[-1]
    if not path.is_file():
        raise InterposerError(f"Checkpoint {path} does not exist.")
    return path


def is_checkpoint(path: str | os.PathLike) -> bool:
    """A run folder, or a file whose metadata says it is a training checkpoint."""
    path = Path(path)
    if path.is_dir():
        return True
    try:
        return read_safetensors_header(path)[1].get("format") == CHECKPOINT_FORMAT
    except InterposerError:
        return False


def save_checkpoint(path: Path, tensors: dict[str, dict[str, torch.Tensor]], state: dict) -> Path:
    flat = {f"{group}.{key}": value for group, part in tensors.items() for key, value in part.items()}
    save_safetensors(path, flat, {"format": CHECKPOINT_FORMAT, "state": json.dumps(state)})
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """(tensors by group, state) of a checkpoint; anything else is refused with a clear message."""
    from safetensors.torch import load_file

    path = find_checkpoint(path)
    try:
        _, metadata = read_safetensors_header(path)
    except InterposerError as exc:
        raise InterposerError(f"{path} is not a training checkpoint: {exc}") from exc
    if metadata.get("format") != CHECKPOINT_FORMAT or "state" not in metadata:
        raise InterposerError(
            f"{path} is not a training checkpoint of `python -m training train` (an exported weights file?)."
        )
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(path)).items():
        group, _, name = key.partition(".")
        groups.setdefault(group, {})[name] = value
    return groups, json.loads(metadata["state"])


# --------------------------------------------------------------------------- optimiser and RNG state


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {f"{index}.{name}": value for index, entry in state["state"].items() for name, value in entry.items()}
    return tensors, state["param_groups"]


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state(sampler_state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
    """Every random number generator a training step can touch (dropout uses the global torch RNG)."""
    tensors = {"torch": torch.get_rng_state(), **{f"sampler_{k}": v for k, v in sampler_state.items()}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    return tensors, {"numpy": [kind, pos, has_gauss, cached], "python": [version, list(internal), gauss]}


def restore_rng(tensors: dict[str, torch.Tensor], state: dict) -> dict[str, torch.Tensor]:
    """Restore the global RNGs; return the sampler's part."""
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    return {k.removeprefix("sampler_"): v for k, v in tensors.items() if k.startswith("sampler_")}
