"""How a message tells its reader to act, in the words of where it is shown.

The core (weights lookup, hub) raises errors that say what happened and where a file is to be had; *how* to act
on that differs: on the command line the reader runs a command again (or a ``download`` command), in a webui the
reader cannot run commands in the webui's environment and must change a setting or restart it. The core takes an
:class:`Advice` and never names a webui; :data:`CLI` is the command line's, and the webui layer has its own
(:mod:`interposer.webui.advice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Advice:
    """The command line's words (the base for others)."""

    again: str = "run the command again"  # after changing HF_ENDPOINT (read when a process starts)
    env_where: str = ""  # where HF_ENDPOINT is set, if not in the reader's shell

    def where_to_put(self, get: str, folder: str | None, spec: Any, allow_download: bool) -> str:
        """``get`` ("Download NAME from URL and put it in") completed with where, and a runnable command."""
        target = f"the folder {folder}" if folder else "a folder passed with --weights-dir"
        command = f"python -m interposer download {spec.name}" + (f" --dir {folder}" if folder else "")
        return f"{get} {target} (or run `{command}`)."


CLI = Advice()
