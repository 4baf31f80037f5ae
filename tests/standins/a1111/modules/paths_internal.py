"""Mirrors modules/paths_internal.py (1.10.1): the webui's folders. Tests point them at tmp dirs."""

import os

script_path = os.environ.get("WEBUI_STUB_ROOT", os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
data_path = os.environ.get("WEBUI_STUB_DATA", script_path)
models_path = os.environ.get("WEBUI_STUB_MODELS", os.path.join(data_path, "models"))
extensions_dir = os.path.join(data_path, "extensions")
extensions_builtin_dir = os.path.join(script_path, "extensions-builtin")
