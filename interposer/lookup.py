"""Where a weights file sits, and moving a broken one out of the way: the part of the lookup that needs no torch.

``install.py`` runs at every webui start-up and must stay quick, so it imports this instead of
:mod:`interposer.weights` (which loads and validates files with torch); both use the same rules.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .directions import BUNDLED_TAG


def local_candidates(spec: Any, folders: Iterable[str | os.PathLike], version: str | None = None) -> list[Path]:
    """Where a spec's file (a Direction or an UpscalerSpec) may sit in each folder: ``NAME`` and
    ``<version>/NAME`` (the layouts people already have from the ComfyUI nodes)."""
    version = version or spec.default_version
    name = spec.filename(version)
    return [p for folder in folders if folder for p in (Path(folder) / name, Path(folder) / version / name)]


def find_local(spec: Any, folders: Iterable[str | os.PathLike], version: str | None = None) -> Path | None:
    return next((p for p in local_candidates(spec, folders, version) if p.is_file()), None)


BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"


def bundled_path(spec: Any, version: str | None = None) -> Path | None:
    """The package's own file for a bundled direction (``spec.is_bundled``), looked up only for the default
    version: a request for another tag means a file of the user's. None when the spec has none."""
    if not getattr(spec, "is_bundled", False) or (version or spec.default_version) != spec.default_version:
        return None
    return BUNDLED_DIR / spec.filename(BUNDLED_TAG)


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
            return f"removed from the Hugging Face cache ({path})"
        if path.parent.name == "snapshots" or "blobs" in path.parts:
            path.unlink()
            return f"removed from the Hugging Face cache ({path})"
        target = path.with_name(path.name + ".corrupt")
        os.replace(path, target)
        return f"renamed to {target}"
    except OSError as exc:
        return f"could not be moved away ({exc}); delete it by hand"
