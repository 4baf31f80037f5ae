"""Finding, checking and loading weights files (safetensors only, never pickles), for every model kind.

A *spec* says which file is wanted: a :class:`~interposer.directions.Direction` (an interposer)
or an :class:`~interposer.upscalers.UpscalerSpec` (a latent upscaler). Resolution order: an
explicit path, then local folders (``NAME`` or ``<version>/NAME`` inside each, the layouts people
already have from the ComfyUI nodes), then the hub cache, then the Hugging Face hub through
:mod:`interposer.hub` (one quick request, no retries, failures remembered: no network never stalls
the webui). A lookup that may not download touches nothing on disk. Every file is validated
before use; a broken file that we would pick up again automatically is moved out of the way.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import hub
from .advice import CLI, Advice
from .atomic_files import save_safetensors
from .directions import HUB_REVISION, Direction, published_list
from .errors import CorruptWeightsError, WeightsNotFoundError, require
from .kinds import UPSCALER, ModelKind, kind_of, kind_of_config, kind_of_file, upscaler_layout
from .lookup import bundled_path, find_local, local_candidates, quarantine
from .safetensors_header import read_safetensors_header
from .upscalers import PUBLISHED_FACTORS, PUBLISHED_SPACES, UpscalerSpec, parse_filename

log = logging.getLogger(__name__)

Spec = Direction | UpscalerSpec
TRAINED_KEY = "trained"  # metadata key `python -m training export` sets to "true"
_WEIGHT_DTYPES = {"F32", "F16", "BF16"}


@dataclass
class LoadedWeights:
    """A validated state dict with what we know about it."""

    path: Path
    config: Any  # InterposerConfig or UpscalerConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    kind: str = "interposer"

    @property
    def version(self) -> str:
        """``v4.0``/``v2.1`` for published files, the exported tag for trained ones, else ``custom``."""
        if self.metadata.get("version"):
            return self.metadata["version"]
        match = re.search(r"_interposer-(.+)\.safetensors$", self.path.name)
        if match:
            return match.group(1)
        parsed = parse_filename(self.path.name)
        return parsed[0] if parsed else "custom"

    @property
    def trained(self) -> bool:
        """True for files made by ``python -m training export`` (not city96's published weights)."""
        return self.metadata.get(TRAINED_KEY) == "true" or "training" in self.metadata


# --------------------------------------------------------------------------- file checks


def check_layout(path: Path, header: dict[str, dict], config: Any, kind: ModelKind | None = None) -> None:
    """Every expected key with its expected shape, nothing else."""
    kind = kind or kind_of_config(config)
    expected = kind.expected_shapes(config)
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[:3]})")
        raise CorruptWeightsError(f"{path} does not match the {kind.layout} layout {config}: " + "; ".join(parts) + ".")
    for key, shape in expected.items():
        got = tuple(header[key]["shape"])
        if got != shape:
            raise CorruptWeightsError(f"{path}: tensor {key!r} has shape {got}, the layout needs {shape}.")
        if not key.endswith("num_batches_tracked") and header[key]["dtype"] not in _WEIGHT_DTYPES:
            raise CorruptWeightsError(f"{path}: tensor {key!r} has dtype {header[key]['dtype']}, expected a float.")


def load_weights(path: str | os.PathLike, spec: Spec | None = None) -> LoadedWeights:
    """Validate and load a weights file onto the CPU (safetensors, no pickle).

    With ``spec`` the file must be of its kind and fit it (direction, channels, factor); without,
    the kind is read from the file (its ``format`` metadata, else its keys).
    """
    load_file = require("safetensors.torch", "safetensors").load_file
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"Weights file {path} does not exist.")
    header, metadata = read_safetensors_header(path)
    found = kind_of_file(path, header, metadata)
    kind = kind_of(spec) if spec is not None else found
    if found is not kind:
        raise CorruptWeightsError(
            f"{path} holds {_a(found.layout)} model, not {_a(kind.layout)} model for {spec.name}."
        )
    config = kind.config_for(path, header, metadata, spec)
    check_layout(path, header, config, kind)
    if spec is not None:
        kind.check_spec(path, config, metadata, spec)
    try:
        state_dict = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise CorruptWeightsError(f"{path} could not be read as safetensors: {exc}") from exc
    return LoadedWeights(path=path, config=config, state_dict=state_dict, metadata=metadata, kind=kind.name)


def upscaler_factor(path: str | os.PathLike, given: float | None = None) -> float:
    """The factor an upscaler file upscales by: its metadata, else its published-style name, else ``given``
    (the factor the user asked for: a renamed or home-made file does not say it). Either way the file must
    be an upscaler whose tensors fit the layout."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"Weights file {path} does not exist.")
    header, metadata = read_safetensors_header(path)
    found = kind_of_file(path, header, metadata)
    if found is not UPSCALER:
        raise CorruptWeightsError(f"{path} holds {_a(found.layout)} model, not {_a(UPSCALER.layout)} model.")
    if "constructor" in metadata:
        config = UPSCALER.config_for(path, header, metadata)
    else:
        config = upscaler_layout(path, header, given)
    check_layout(path, header, config, UPSCALER)
    return config.factor


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def download_from_hub(
    spec: Spec,
    *,
    local_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    revision: str = HUB_REVISION,
    repo_id: str | None = None,
) -> Path:
    """Fetch a published file (into ``local_dir``, else the hub cache): one quick request first, no retries.

    Raises :class:`~interposer.hub.HubUnreachableError` or :class:`~interposer.hub.HubEntryMissingError`.
    ``huggingface_hub`` downloads to a temporary ``.incomplete`` file and renames it only when complete, so
    an interrupted transfer never leaves a file under the final name.
    """
    if not spec.is_published:
        raise WeightsNotFoundError(f"There are no published weights for {spec.name}. {published_names(spec)}")
    return hub.download(spec.hub_file(revision, repo_id), local_dir=local_dir, cache_dir=cache_dir)


def published_names(spec: Spec) -> str:
    if spec.kind == "upscaler":
        factors = ", ".join(f"{f:g}" for f in PUBLISHED_FACTORS)
        return f"Published upscalers: {', '.join(PUBLISHED_SPACES)} at factors {factors}."
    return published_list()


@dataclass
class WeightsQuery:
    """Everything that decides which file a spec uses (one object, passed around whole).

    ``repo_id`` and ``version`` default to the spec's own (city96's interposer or upscaler repository
    and version), so one query serves both model kinds. ``path`` names the interposer file explicitly,
    ``upscaler_path`` the upscaler file (a chain of both kinds can use one of each). ``advice`` only
    words what messages tell the reader to do (:mod:`interposer.advice`: the command line's by default); it does
    not change which file is used, so :meth:`key` leaves it out.
    """

    path: str | None = None
    upscaler_path: str | None = None
    folders: Sequence[str] = ()
    allow_download: bool = True
    download_dir: str | None = None
    cache_dir: str | None = None
    revision: str = HUB_REVISION
    repo_id: str | None = None
    version: str | None = None
    advice: Advice = CLI

    def path_for(self, spec: Spec) -> str | None:
        """The explicit file for this spec's kind, if one was given."""
        return self.upscaler_path if spec.kind == "upscaler" else self.path

    def version_for(self, spec: Spec) -> str:
        return self.version or spec.default_version

    def where_to_put(self, spec: Spec) -> str:
        """How to get the file by hand, in the words of where the message is shown (:attr:`advice`)."""
        folder = self.download_dir or (self.folders[0] if self.folders else None)
        urls = spec.hub_file(self.revision, self.repo_id).urls_text
        get = f"Download {spec.filename(self.version_for(spec))} from {urls} and put it in"
        return self.advice.where_to_put(get, folder, spec, self.allow_download)

    def key(self, spec: Spec) -> tuple:
        """Cache key: the spec and every field that changes the answer."""
        return (spec.kind, spec.name, self.path_for(spec), tuple(self.folders), self.allow_download, self.download_dir,
                self.cache_dir, self.revision, self.repo_id, self.version_for(spec))  # fmt: skip


def resolve(spec: Spec, query: WeightsQuery) -> Path:
    """Path of the file to use for ``spec``; download it if allowed and needed."""
    label = spec.label
    explicit = query.path_for(spec)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise WeightsNotFoundError(f"Weights file {path} (given explicitly for {spec.name}) does not exist.")
        return path
    version = query.version_for(spec)
    local = find_local(spec, query.folders, version)
    if local is not None:
        return local
    looked = [str(p) for p in local_candidates(spec, query.folders, version)]
    looked_text = f" Looked in: {', '.join(looked)}." if looked else ""
    filename = spec.filename(version)
    bundled = bundled_path(spec, version)
    if bundled is not None:
        if bundled.is_file():
            return bundled
        raise WeightsNotFoundError(
            f"No weights for {spec.name}: the file the extension ships, {bundled}, is missing, and there is no "
            f"local file {filename}.{looked_text} Update or reinstall the extension (git pull, or Extensions > "
            "Install from URL again) to get it back."
        )
    if not spec.is_published:
        raise WeightsNotFoundError(
            f"No weights for {spec.name}: there are no published weights for it and no local file "
            f"{filename}.{looked_text} {published_names(spec)} "
            "Train your own with `python -m training` and put the exported file in a weights folder."
        )
    if version != spec.default_version:
        raise WeightsNotFoundError(f"No local weights file {filename}.{looked_text}")
    hub_file = spec.hub_file(query.revision, query.repo_id)
    if not query.download_dir:  # the hub cache is where a download would go: read it without side effects
        cached = hub.cached(hub_file, query.cache_dir)
        if cached is not None:
            return cached
    if not query.allow_download or hub.offline():
        why = "automatic download is off" if not query.allow_download else "HF_HUB_OFFLINE is set"
        raise WeightsNotFoundError(
            f"{label} {filename} not found: {why}, and it is not in the Hugging Face cache.{looked_text} "
            f"{query.where_to_put(spec)}"
        )
    try:
        return download_from_hub(
            spec, local_dir=query.download_dir, cache_dir=query.cache_dir, revision=query.revision,
            repo_id=query.repo_id,
        )  # fmt: skip
    except hub.HubEntryMissingError as exc:
        raise WeightsNotFoundError(f"{exc} {query.where_to_put(spec)}") from exc
    except hub.HubUnreachableError as exc:
        raise WeightsNotFoundError(
            f"{label} {filename} not found: it is not here and {exc}.{looked_text} {query.where_to_put(spec)} "
            f"{hub.mirror_hint(query.advice)}"
        ) from exc


def resolve_and_load(spec: Spec, query: WeightsQuery) -> LoadedWeights:
    """Resolve, validate and load; a corrupt automatic pick is quarantined (and re-fetched once)."""
    path = resolve(spec, query)
    try:
        return load_weights(path, spec)
    except CorruptWeightsError as exc:
        if query.path_for(spec):  # the user named this file: report, do not touch it
            raise
        if path == bundled_path(spec, query.version_for(spec)):  # the package's own file: never moved away
            raise CorruptWeightsError(
                f"{exc} It is a file the extension ships: update or reinstall the extension to repair it."
            ) from exc
        action = quarantine(path)
        log.warning("%s The file was %s.", exc, action)
        message = f"{exc} The broken file was {action}."
        if not query.allow_download or not spec.is_published:
            raise CorruptWeightsError(f"{message} {query.where_to_put(spec)}") from exc
    # One fresh attempt: the folder copy is gone, so this goes to the hub.
    retry = resolve(spec, query)
    try:
        return load_weights(retry, spec)
    except CorruptWeightsError as exc:
        action = quarantine(retry)
        raise CorruptWeightsError(
            f"{exc} A fresh download is corrupt too, so it was {action}. {query.where_to_put(spec)}"
        ) from exc


def save_weights(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    config: Any,
    *,
    direction: Spec | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a weights file that :func:`load_weights` reads back unchanged (atomically).

    ``config`` decides the kind (an InterposerConfig or an UpscalerConfig); ``direction`` is the spec
    the file is for (a Direction or an UpscalerSpec), recorded in the metadata.
    """
    require("safetensors.torch", "safetensors")  # a clear message if it is missing
    kind = kind_of_config(config)
    meta = {"format": kind.format, "constructor": json.dumps(config.to_dict())}
    if direction is not None:
        meta.update(kind_of(direction).spec_metadata(direction))
    meta.update(metadata or {})
    return save_safetensors(Path(path), state_dict, meta)


def missing_weights_error(
    missing: Sequence[tuple[Spec | None, Exception]], query: WeightsQuery
) -> WeightsNotFoundError:
    """One error that names every file a run lacks (a chained upscale, or an interposer and an upscaler), so
    the user fetches them all at once instead of meeting them one per attempt: the first file's full message
    (why it is missing, where to get it), then where to get each of the others. ``missing`` holds each spec with
    the error its lookup raised; the specs travel on the error as ``.missing``."""
    first = str(missing[0][1])
    if len(missing) == 1:
        error = WeightsNotFoundError(first)
    else:
        files = [spec.filename(query.version_for(spec)) for spec, _ in missing if spec is not None]
        others = " ".join(query.where_to_put(spec) if spec is not None else str(exc) for spec, exc in missing[1:])
        error = WeightsNotFoundError(f"{len(missing)} weights files are missing: {', '.join(files)}. {first} {others}")
    error.missing = list(missing)
    return error
