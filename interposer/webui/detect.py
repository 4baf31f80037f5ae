"""Which webui this is: a Forge when ``modules_forge`` exists (Neo or lllyasviel's Forge by its version tag), else
AUTOMATIC1111. Feature checks only, never an import that would fail on the other webui; the one module that knows
every adapter, so that no adapter imports this choice back.
"""

from __future__ import annotations

import importlib
import importlib.util

from .a1111 import A1111
from .adapter import Webui
from .forge import forge_for


def forge_version() -> str | None:
    """The Forge flavour's version string (``neo``, ``neo 2.21``, ``classic``, ``f2.0.1...``), ``None`` outside a
    Forge. Read from ``modules_forge.forge_version`` only if that package exists: no import can fail here."""
    if importlib.util.find_spec("modules_forge") is None:
        return None
    try:
        module = importlib.import_module("modules_forge.forge_version")
    except Exception:
        return ""
    return str(getattr(module, "version", "") or "")


def detect_webui() -> Webui:
    """The adapter for the webui this runs in."""
    version = forge_version()
    return A1111() if version is None else forge_for(version)
