"""What files that leave this machine may say about where a model came from.

An exported weights file, a run's ``summary.json`` and its ``config.json`` get published and shared;
the trainer's locations (their home folder, where the data and the VAEs were) must not travel with
them. They record what *identifies* the data and the VAEs instead: kinds, families, file names and
SHA-256 hashes of the contents. Locations stay in local working state only: the data folder's
``manifest.json`` (``train`` and ``eval`` rebuild the VAEs from it) and the run's checkpoints (a
``--resume`` on the same machine needs the data folder).
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from interposer.spaces import get_space
from interposer.taesd import TAESD_NAMES, find_in_folder

from .encode import MANIFEST, folder_labels

# TrainConfig fields that say where things are on this machine (given on the command line).
LOCATION_FIELDS = ("data", "out", "init")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w.-]+)*$")  # org/name[/subfolder], what load_vae takes
_VAE_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def portable_config(config: dict) -> dict:
    """A training configuration without this machine's locations: ``data``, ``out`` and ``init`` are emptied
    (``train --config`` then asks for ``--data``, as it must on another machine; a run's ``init`` stage is kept
    as a record of its own, see ``training.train.load_init``)."""
    return {**config, **{key: "" for key in LOCATION_FIELDS if key in config}}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's contents (cached per path, size and modification time: a VAE is hashed once)."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_identity(folder: str | Path, manifest: dict) -> dict:
    """What identifies an encoded data folder: its counts, the names of the image folders, the hash of
    its manifest (which lists every image and setting) and its VAEs; not where it is."""
    return {
        "name": Path(folder).resolve().name, "manifest_sha256": file_sha256(Path(folder) / MANIFEST),
        "images": len(manifest["train_images"]), "crops": manifest["crops"], "holdout": len(manifest["holdout"]),
        "crop_px": manifest["settings"]["crop"], "hue": manifest["settings"].get("hue", 0.0),
        "folders": folder_labels(manifest["folders"]),
        "vaes": {family: vae_identity(recorded) for family, recorded in manifest["vaes"].items()},
    }  # fmt: skip


def shareable_data(data: dict | None) -> dict | None:
    """A checkpoint's data summary as a shared file may carry it. Checkpoints written before the
    summaries were made portable recorded each VAE's location: those become identities here."""
    if not data:
        return data
    return {**data, "vaes": {family: vae_identity(v) for family, v in data.get("vaes", {}).items()}}


def vae_identity(recorded: dict) -> dict:
    """A VAE as the data manifest records it (``VAE.describe()``: family, kind, source) -> family, kind,
    ``name`` (the file or folder name, the hub id, or ``taesd``) and, for local files, their SHA-256s."""
    if "source" not in recorded:
        return dict(recorded)  # already an identity
    source, family = recorded["source"], recorded["family"]
    identity = {"family": family, "kind": recorded["kind"]}
    files = _vae_files(Path(source).expanduser(), recorded["kind"], family)
    if files:
        return {**identity, "name": _base_name(source), "files": {f.name: file_sha256(f) for f in files}}
    if source == "taesd" and family in TAESD_NAMES:
        return {**identity, "name": "taesd", "hub": f"madebyollin/{TAESD_NAMES[family]}"}
    if _HUB_ID.match(source) and not Path(source).is_absolute():
        return {**identity, "name": source, "hub": source}
    return {**identity, "name": _base_name(source)}  # a location that is gone from this machine: its name only


def _base_name(source: str) -> str:
    """The last part of a path written on any system (a Windows path read on Linux too)."""
    return re.split(r"[\\/]", source.rstrip("\\/"))[-1]


def _vae_files(path: Path, kind: str, family: str) -> list[Path]:
    """The local files a VAE was built from: the single file, TAESD's encoder and decoder, or a
    diffusers folder's config and weights. None when the source is not here (a hub id, or moved)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    if kind == "taesd":
        space = get_space(family)
        return [p for p in (find_in_folder(path, space, part) for part in ("encoder", "decoder")) if p is not None]
    folder = path if (path / "config.json").is_file() else path / "vae"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _VAE_FILE_SUFFIXES)
