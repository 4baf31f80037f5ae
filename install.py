"""Run by the webui at every start-up (not with --skip-install): install what is missing and
prefetch the SDXL <-> SD1.5 weights into the weights folder.

It must never stop the webui from starting and must be quick and quiet when everything is there,
so it imports neither torch nor the webui's modules beyond ``launch`` and ``paths_internal``.
"""

from __future__ import annotations

import json
import os
import sys

EXTENSION_DIR = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = {"huggingface_hub": "huggingface-hub>=0.20", "safetensors": "safetensors>=0.4"}
PREFETCH = ("xl-to-v1", "v1-to-xl")


def install_missing(launch) -> None:
    for module, requirement in REQUIREMENTS.items():
        if not launch.is_installed(module):
            launch.run_pip(f'install "{requirement}"', f"{requirement} for Latent Interposer")


def _settings() -> dict:
    """The webui's saved settings (config.json), if readable; the weights folder may be set there."""
    try:
        from modules import paths_internal

        data_path = paths_internal.data_path
    except Exception:
        return {}
    try:
        with open(os.path.join(data_path, "config.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def weights_folder(settings: dict) -> str:
    folder = str(settings.get("latent_interposer_weights_dir") or "").strip()
    if folder:
        return folder
    from modules import paths_internal

    return os.path.join(paths_internal.models_path, "LatentInterposer")


def prefetch(folder: str, settings: dict) -> None:
    sys.path.insert(0, EXTENSION_DIR)
    from interposer.directions import HUB_REPO_ID, HUB_SUBFOLDER, direction
    from interposer.errors import InterposerError
    from interposer.safetensors_header import read_safetensors_header

    wanted = [direction(name) for name in PREFETCH]
    missing = [
        d
        for d in wanted
        if not any(os.path.isfile(os.path.join(folder, sub, d.filename())) for sub in ("", HUB_SUBFOLDER))
    ]
    if not missing or settings.get("latent_interposer_allow_download") is False:
        return  # all there (or the user keeps weights by hand): stay silent
    failed = []
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        failed = missing
    for dirn in [] if failed else missing:
        try:
            path = hf_hub_download(HUB_REPO_ID, dirn.filename(), subfolder=HUB_SUBFOLDER,
                                   local_dir=folder, etag_timeout=5)  # fmt: skip
        except Exception:  # offline or hub unreachable: said once, below
            failed.append(dirn)
            continue
        try:
            read_safetensors_header(path)
        except InterposerError as exc:
            os.replace(path, path + ".corrupt")  # never leave a broken file under the name we look for
            print(f"Latent Interposer: {exc} Renamed it to {path}.corrupt.")
            failed.append(dirn)
            continue
        print(f"Latent Interposer: downloaded {dirn.filename()} to {os.path.dirname(path)}")
    if failed:
        names = ", ".join(d.filename() for d in failed)
        print(
            f"Latent Interposer: could not download {names} (offline?). Generation with the interposer needs them: "
            f"put them in {folder} (or {os.path.join(folder, HUB_SUBFOLDER)}); get them from "
            f"{failed[0].hub_url()} (and the same folder for the others), or enable downloads and restart "
            "when online."
        )


def main() -> None:
    try:
        import launch
    except Exception as exc:
        print(f"Latent Interposer: install.py must run inside the webui ({exc}); nothing done.")
        return
    if getattr(getattr(launch, "args", None), "skip_install", False):
        return
    try:
        install_missing(launch)
    except Exception as exc:  # the webui must start anyway
        print(f"Latent Interposer: could not install its requirements ({exc}); the script will say what is missing.")
    try:
        settings = _settings()
        prefetch(weights_folder(settings), settings)
    except Exception as exc:
        print(f"Latent Interposer: skipped prefetching weights ({exc}).")


main()
