"""Run by the webui at every start-up (not with --skip-install): install what is missing and
prefetch the SDXL <-> SD1.5 weights (and, on a Forge, FLUX.1-family -> SDXL/SD1.5) into the weights folder.

It must never stop the webui from starting and must be quick and quiet when everything is there,
so it imports neither torch nor the webui's modules beyond ``launch`` and ``paths_internal``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

EXTENSION_DIR = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = {"huggingface_hub": "huggingface-hub>=0.20", "safetensors": "safetensors>=0.4"}
PREFETCH = ("xl-to-v1", "v1-to-xl")
# The Forges load FLUX.1, Chroma, Z-Image and Lumina 2 (FLUX.1's latent space): first passes to finish in SDXL/SD1.5.
PREFETCH_FORGE = ("fx-to-xl", "fx-to-v1")


def prefetch_names() -> tuple[str, ...]:
    """The interposers to fetch at start-up: a Forge (``modules_forge`` on the path, found without importing it)
    also gets the FLUX.1-family ones."""
    import importlib.util

    try:
        forge = importlib.util.find_spec("modules_forge") is not None
    except (ImportError, ValueError):
        forge = False
    return PREFETCH + PREFETCH_FORGE if forge else PREFETCH


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
    """Fetch the interposer and upscaler files the webui uses by default, if any is missing.

    One quick request (short timeout, no retries, see ``interposer.hub``) decides whether the hub can
    be reached at all; offline, the webui starts after a few seconds with one paragraph that says
    where the files go and where to get them.
    """
    sys.path.insert(0, EXTENSION_DIR)
    from interposer import hub
    from interposer.directions import direction
    from interposer.errors import InterposerError
    from interposer.lookup import find_local, quarantine
    from interposer.safetensors_header import read_safetensors_header
    from interposer.upscalers import published_upscalers
    from interposer.webui.advice import WEBUI as WEBUI_ADVICE

    wanted = [direction(name) for name in prefetch_names()]
    wanted += [u for u in published_upscalers() if u.space.name in ("v1", "xl")]
    missing = [spec for spec in wanted if find_local(spec, [folder]) is None]
    downloads_on = settings.get("latent_interposer_allow_download") is not False
    if not missing or not downloads_on:
        return  # all there (or the user keeps weights by hand): stay silent
    failed, reason = [], ""
    for spec in missing:
        if reason:  # the hub was unreachable once: do not ask again for every file
            failed.append(spec)
            continue
        try:
            path = str(hub.download(spec.hub_file(), local_dir=folder))
        except InterposerError as exc:  # offline, blocked, or missing on the hub: said once, below
            failed.append(spec)
            reason = str(exc) if isinstance(exc, hub.HubUnreachableError) else ""
            continue
        try:
            read_safetensors_header(path)
        except InterposerError as exc:  # never leave a broken file under the name we look for
            print(f"Latent Interposer: {exc} The file was {quarantine(Path(path))}.")
            failed.append(spec)
            continue
        print(f"Latent Interposer: downloaded {spec.filename()} to {os.path.dirname(path)}")
    if failed:
        names = ", ".join(spec.filename() for spec in failed)
        why = f" ({reason})" if reason else ""
        examples = {}
        for spec in failed:  # one example file per hub repository
            examples.setdefault(spec.hub_repo_id, spec.hub_file())
        print(
            f"Latent Interposer: could not download {names}{why}. Generation with the interposer or the "
            f"'Latent (NN)' hires upscaler needs them: put them in {folder} (interposers may also go in "
            f"{os.path.join(folder, 'v4.0')}); get them from {_sources(list(examples.values()))} (the others "
            f"sit next to them). {hub.mirror_hint(WEBUI_ADVICE)} The webui starts anyway and tries again at the "
            "next start."
        )


def _sources(files: list) -> str:
    """Download URLs of ``files`` (hub.HubFile) for the message: the configured endpoint's, and with a mirror
    set huggingface.co's too (the mirror may be what is down)."""
    from interposer import hub

    text = " and ".join(file.url for file in files)
    if hub.mirror_set():
        text += " (or from huggingface.co: " + " and ".join(file.url_on(hub.DEFAULT_ENDPOINT) for file in files) + ")"
    return text


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
