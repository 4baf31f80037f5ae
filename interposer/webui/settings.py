"""The webui's settings as the extension reads them, and the converter they configure.

Read when a generation starts (after the request's ``override_settings`` are applied), from the webui's ``shared``
and ``paths`` modules that the script hands over once: the decision layer gets one object instead of callables
threaded through the script.
"""

from __future__ import annotations

from typing import Any

from ..runtime import Converter
from ..weights import WeightsQuery
from .advice import WEBUI
from .options import GenerationOptions, resolve


class WebuiSettings:
    """``shared.opts`` and ``paths.models_path``, read at call time."""

    def __init__(self, shared: Any, paths: Any) -> None:
        self.shared = shared
        self.paths = paths

    def option(self, key: str, default: Any = None) -> Any:
        return getattr(self.shared.opts, key, default)

    def generation_options(self, **ui_values: Any) -> GenerationOptions:
        """The settings, the script's controls (``ui_values``) and the request's overrides combined."""
        return resolve(self.option, self.paths.models_path, **ui_values)

    def converter(self, options: GenerationOptions) -> Converter:
        folder = options.weights_dir
        query = WeightsQuery(folders=(folder,), allow_download=options.allow_download, download_dir=folder,
                             advice=WEBUI)  # fmt: skip
        # Latent (NN) on a family nobody publishes an upscaler for interpolates (and says so) rather than refusing.
        return Converter(weights=query, device=options.device, precision=options.precision,
                         interpolate_without_upscaler=True)  # fmt: skip
