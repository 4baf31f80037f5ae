"""The extension's settings in ``GET /sdapi/v1/options``, on webuis that build that reply's model too early.

The webuis answer ``GET /sdapi/v1/options`` through a pydantic model of every option (``modules.api.models.
OptionsModel``), built once when ``modules.api.models`` is first imported; the reply holds only the fields of
that model. Forge Neo imports the module while its built-in extensions load, before user extensions register
their settings, so without this the extension's settings are missing from the reply (``POST`` and
``override_settings`` work regardless). The API routes are registered after all scripts are loaded and read
``models.OptionsModel`` then, so replacing it with a subclass that has the extra fields is enough.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional


def extend_options_model(models: Any, opts: Any, settings: Iterable[Any]) -> bool:
    """Add each setting missing from ``models.OptionsModel`` (``models`` is the imported
    ``modules.api.models``, or ``None`` if nothing imported it yet: then the webui builds the model later, with
    the settings in it). Returns whether the model was replaced."""
    model = getattr(models, "OptionsModel", None)
    if model is None:
        return False
    known = set(getattr(model, "model_fields", None) or getattr(model, "__fields__", None) or ())
    missing = [s for s in settings if s.key not in known and s.key in getattr(opts, "data_labels", {})]
    if not missing:
        return False
    try:
        import pydantic
    except ImportError:
        return False
    fields = {}
    for setting in missing:
        info = opts.data_labels[setting.key]
        kind = type(info.default) if info.default is not None else Any
        fields[setting.key] = (Optional[kind], pydantic.Field(default=info.default, description=info.label))  # noqa: UP045
    models.OptionsModel = pydantic.create_model(model.__name__, __base__=model, **fields)
    return True
