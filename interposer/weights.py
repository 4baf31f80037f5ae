"""Finding, checking and loading interposer weights files (safetensors only, never pickles).

Resolution order for a direction: an explicit path, then local folders (``NAME`` or
``v4.0/NAME`` inside each, the layouts people already have from the ComfyUI node), then the
Hugging Face hub through ``huggingface_hub`` (so ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and its
cache behave as everywhere else). Every file is validated before use; a broken file that we
would pick up again automatically is moved out of the way.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .atomic_files import save_safetensors
from .directions import HUB_REPO_ID, HUB_REVISION, HUB_SUBFOLDER, WEIGHTS_VERSION, Direction, published_list
from .errors import CorruptWeightsError, InterposerError, WeightsNotFoundError, require
from .model import InterposerConfig, expected_state_dict_shapes
from .safetensors_header import read_safetensors_header

log = logging.getLogger(__name__)

FORMAT_NAME = "interposer-v4"
_WEIGHT_DTYPES = {"F32", "F16", "BF16"}


@dataclass
class LoadedWeights:
    """A validated state dict with what we know about it."""

    path: Path
    config: InterposerConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """``v4.0`` for published files, the exported tag for trained ones, else ``custom``."""
        if self.metadata.get("version"):
            return self.metadata["version"]
        match = re.search(r"_interposer-(.+)\.safetensors$", self.path.name)
        return match.group(1) if match else "custom"


# --------------------------------------------------------------------------- file checks


def config_for(
    path: Path, header: dict[str, dict], metadata: dict[str, str], direction: Direction | None
) -> InterposerConfig:
    """The constructor arguments of a file: its metadata, else the layout its shapes imply."""
    if "constructor" in metadata:
        try:
            return InterposerConfig.from_dict(json.loads(metadata["constructor"]))
        except (ValueError, TypeError) as exc:
            raise CorruptWeightsError(f"{path}: unreadable 'constructor' metadata ({exc}).") from exc
    try:
        ch_mid, ch_in = header["head.short.weight"]["shape"][:2]
        ch_out = header["tail.weight"]["shape"][0]
    except (KeyError, ValueError) as exc:
        raise CorruptWeightsError(
            f"{path} is not an interposer v4 file: it lacks 'head.short.weight' or 'tail.weight'."
        ) from exc
    blocks = len({key.split(".")[1] for key in header if re.match(r"core\.\d+\.norm\.weight$", key)})
    scale = direction.default_config().scale if direction is not None else 1.0
    return InterposerConfig(ch_in=ch_in, ch_out=ch_out, ch_mid=ch_mid, scale=scale, blocks=blocks)


def check_layout(path: Path, header: dict[str, dict], config: InterposerConfig) -> None:
    """Every expected key with its expected shape, nothing else."""
    expected = expected_state_dict_shapes(config)
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[:3]})")
        raise CorruptWeightsError(f"{path} does not match the interposer layout {config}: " + "; ".join(parts) + ".")
    for key, shape in expected.items():
        got = tuple(header[key]["shape"])
        if got != shape:
            raise CorruptWeightsError(f"{path}: tensor {key!r} has shape {got}, the layout needs {shape}.")
        if not key.endswith("num_batches_tracked") and header[key]["dtype"] not in _WEIGHT_DTYPES:
            raise CorruptWeightsError(f"{path}: tensor {key!r} has dtype {header[key]['dtype']}, expected a float.")


def check_direction(path: Path, config: InterposerConfig, metadata: dict[str, str], direction: Direction) -> None:
    """The file must convert the direction it is used for."""
    meta_src, meta_dst = metadata.get("src"), metadata.get("dst")
    if meta_src and meta_dst and (meta_src, meta_dst) != (direction.src.name, direction.dst.name):
        raise CorruptWeightsError(f"{path} converts {meta_src}-to-{meta_dst}, not {direction.name}.")
    if (config.ch_in, config.ch_out) != (direction.src.channels, direction.dst.channels):
        raise CorruptWeightsError(
            f"{path} maps {config.ch_in} to {config.ch_out} channels, but {direction.name} needs "
            f"{direction.src.channels} to {direction.dst.channels}."
        )


def load_weights(path: str | os.PathLike, direction: Direction | None = None) -> LoadedWeights:
    """Validate and load a weights file onto the CPU (safetensors, no pickle)."""
    load_file = require("safetensors.torch", "safetensors").load_file
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"Weights file {path} does not exist.")
    header, metadata = read_safetensors_header(path)
    config = config_for(path, header, metadata, direction)
    check_layout(path, header, config)
    if direction is not None:
        check_direction(path, config, metadata, direction)
    try:
        state_dict = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise CorruptWeightsError(f"{path} could not be read as safetensors: {exc}") from exc
    return LoadedWeights(path=path, config=config, state_dict=state_dict, metadata=metadata)


def quarantine(path: Path) -> str:
    """Move a broken file where no lookup will find it again; return what was done.

    A file in the Hugging Face cache is a link to a blob: both go, so the next download
    fetches a fresh copy. Any other file is renamed to ``*.corrupt`` (kept for inspection).
    """
    try:
        if path.is_symlink():
            blob = path.resolve()
            path.unlink()
            if blob.parent.name == "blobs" and blob.exists():
                blob.unlink()
            return f"removed it from the Hugging Face cache ({path})"
        if path.parent.name == "snapshots" or "blobs" in path.parts:
            path.unlink()
            return f"removed it from the Hugging Face cache ({path})"
        target = path.with_name(path.name + ".corrupt")
        os.replace(path, target)
        return f"renamed it to {target}"
    except OSError as exc:
        return f"could not move it away ({exc}); delete it by hand"


# --------------------------------------------------------------------------- resolution


def local_candidates(
    direction: Direction, folders: Iterable[str | os.PathLike], version: str = WEIGHTS_VERSION
) -> list[Path]:
    """Where a direction's file may sit in each folder: ``NAME`` and ``<version>/NAME``."""
    name = direction.filename(version)
    return [p for folder in folders if folder for p in (Path(folder) / name, Path(folder) / version / name)]


def find_local(
    direction: Direction, folders: Iterable[str | os.PathLike], version: str = WEIGHTS_VERSION
) -> Path | None:
    return next((p for p in local_candidates(direction, folders, version) if p.is_file()), None)


def _hub_errors():
    require("huggingface_hub", "huggingface-hub")
    from huggingface_hub.utils import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    return LocalEntryNotFoundError, EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError


def download_from_hub(
    direction: Direction,
    *,
    local_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    revision: str = HUB_REVISION,
    repo_id: str = HUB_REPO_ID,
    local_files_only: bool = False,
) -> Path:
    """Fetch a published file with ``huggingface_hub`` (into ``local_dir`` or the hub cache).

    ``huggingface_hub`` downloads to a temporary ``.incomplete`` file and renames it only when
    complete, so an interrupted transfer never leaves a file under the final name.
    """
    if not direction.is_published:
        raise WeightsNotFoundError(f"There are no published weights for {direction.name}. {published_list()}")
    hf_hub_download = require("huggingface_hub", "huggingface-hub").hf_hub_download
    path = hf_hub_download(
        repo_id=repo_id,
        filename=direction.filename(),
        subfolder=HUB_SUBFOLDER,
        revision=revision,
        local_dir=str(local_dir) if local_dir else None,
        cache_dir=str(cache_dir) if cache_dir else None,
        local_files_only=local_files_only,
    )
    return Path(path)


@dataclass
class WeightsQuery:
    """Everything that decides which file a direction uses (one object, passed around whole)."""

    path: str | None = None
    folders: Sequence[str] = ()
    allow_download: bool = True
    download_dir: str | None = None
    cache_dir: str | None = None
    revision: str = HUB_REVISION
    repo_id: str = HUB_REPO_ID
    version: str = WEIGHTS_VERSION

    def where_to_put(self, direction: Direction) -> str:
        folder = self.download_dir or (self.folders[0] if self.folders else None)
        target = f"the folder {folder}" if folder else "a folder passed with --weights-dir"
        return (
            f"Download {direction.filename(self.version)} from {direction.hub_url(self.revision, self.repo_id)} "
            f"and put it in {target} (or run `python -m interposer download {direction.name}"
            + (f" --dir {folder}`)." if folder else "`).")
        )


def resolve(direction: Direction, query: WeightsQuery) -> Path:
    """Path of the file to use for ``direction``; download it if allowed and needed."""
    if query.path:
        path = Path(query.path)
        if not path.is_file():
            raise WeightsNotFoundError(f"Weights file {path} (given explicitly for {direction.name}) does not exist.")
        return path
    local = find_local(direction, query.folders, query.version)
    if local is not None:
        return local
    looked = [str(p) for p in local_candidates(direction, query.folders, query.version)]
    looked_text = f" Looked in: {', '.join(looked)}." if looked else ""
    if not direction.is_published:
        raise WeightsNotFoundError(
            f"No weights for {direction.name}: there are no published weights for it and no local file "
            f"{direction.filename(query.version)}.{looked_text} {published_list()} "
            "Train your own with `python -m training` and put the exported file in a weights folder."
        )
    if query.version != WEIGHTS_VERSION:
        raise WeightsNotFoundError(f"No local weights file {direction.filename(query.version)}.{looked_text}")
    local_missing, entry_missing, repo_missing, revision_missing = _hub_errors()
    try:
        return download_from_hub(
            direction,
            local_dir=query.download_dir,
            cache_dir=query.cache_dir,
            revision=query.revision,
            repo_id=query.repo_id,
            local_files_only=not query.allow_download,
        )
    except local_missing as exc:
        why = (
            "automatic download is off"
            if not query.allow_download
            else "it is not in the Hugging Face cache and the hub cannot be reached (offline, or HF_HUB_OFFLINE=1)"
        )
        raise WeightsNotFoundError(
            f"Interposer weights {direction.filename()} not found: {why}.{looked_text} {query.where_to_put(direction)}"
        ) from exc
    except (entry_missing, repo_missing, revision_missing) as exc:
        raise WeightsNotFoundError(
            f"The hub has no {HUB_SUBFOLDER}/{direction.filename()} in {query.repo_id} at revision {query.revision!r} "
            f"({type(exc).__name__}). {query.where_to_put(direction)}"
        ) from exc
    except InterposerError:
        raise
    except Exception as exc:  # network errors of whatever HTTP client huggingface_hub uses
        raise WeightsNotFoundError(
            f"Downloading {direction.filename()} failed: {exc}.{looked_text} {query.where_to_put(direction)}"
        ) from exc


def resolve_and_load(direction: Direction, query: WeightsQuery) -> LoadedWeights:
    """Resolve, validate and load; a corrupt automatic pick is quarantined (and re-fetched once)."""
    path = resolve(direction, query)
    try:
        return load_weights(path, direction)
    except CorruptWeightsError as exc:
        if query.path:  # the user named this file: report, do not touch it
            raise
        action = quarantine(path)
        log.warning("%s; %s", exc, action)
        message = f"{exc} The broken file was {action}."
        if not query.allow_download or not direction.is_published:
            raise CorruptWeightsError(f"{message} {query.where_to_put(direction)}") from exc
    # One fresh attempt: the folder copy is gone, so this goes to the hub.
    retry = resolve(direction, query)
    try:
        return load_weights(retry, direction)
    except CorruptWeightsError as exc:
        action = quarantine(retry)
        raise CorruptWeightsError(
            f"{exc} A fresh download is corrupt too, so it was {action}. {query.where_to_put(direction)}"
        ) from exc


def save_weights(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    config: InterposerConfig,
    *,
    direction: Direction | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a weights file that :func:`load_weights` reads back unchanged (atomically)."""
    require("safetensors.torch", "safetensors")  # a clear message if it is missing
    path = Path(path)
    meta = {"format": FORMAT_NAME, "constructor": json.dumps(config.to_dict())}
    if direction is not None:
        meta.update(src=direction.src.name, dst=direction.dst.name)
    meta.update(metadata or {})
    return save_safetensors(path, state_dict, meta)
