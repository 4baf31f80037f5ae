"""The webui's words for the core's advice: its settings instead of commands, a restart instead of running again.

The webui's Python and folder are not the user's shell's, and the package is not installed in its venv, so a
message shown in the webui gives the URL(s), the exact folder and the setting that lets the webui download the file,
never a command (:class:`interposer.advice.Advice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..advice import Advice

# The webui's settings as its Settings page shows them (labels in interposer/webui/options.py).
DOWNLOAD_SETTING = "Settings → Latent Interposer → Download missing weights from the Hugging Face hub"
WEIGHTS_FOLDER_SETTING = "Settings → Latent Interposer → Weights folder"


@dataclass(frozen=True)
class WebuiAdvice(Advice):
    again: str = "restart the webui"
    env_where: str = " in webui-user.bat / webui-user.sh"

    def where_to_put(self, get: str, folder: str | None, spec: Any, allow_download: bool) -> str:
        target = f"the folder {folder}" if folder else f"the webui's weights folder ({WEIGHTS_FOLDER_SETTING})"
        setting = "" if allow_download else f" Or turn on {DOWNLOAD_SETTING} to let the webui fetch it."
        return f"{get} {target}.{setting}"


WEBUI = WebuiAdvice()
