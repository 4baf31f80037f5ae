"""Where the tests' data is: the project's data folder, the cache, and which TAESD folder to use.

Shared by ``conftest.py`` and ``fetch_taesd.py`` (which must not draw images or make fixtures just to decide
whether to download): nothing here touches the disk beyond looking for files.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
SHARED = Path(os.environ.get("INTERPOSER_SHARED") or REPO.parent / "shared")
TAESD_CACHE = CACHE / "taesd"


def taesd_dir() -> Path | None:
    """``$INTERPOSER_TAESD_DIR``, else the data folder's TAESD, else the cache: the first with the files."""
    for folder in (os.environ.get("INTERPOSER_TAESD_DIR"), SHARED / "vae" / "taesd", TAESD_CACHE):
        if folder and (Path(folder) / "taesd_encoder.safetensors").is_file():
            return Path(folder)
    return None
