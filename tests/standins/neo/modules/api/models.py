"""Mirrors modules/api/models.py (Neo @ 3df257a) for ``/sdapi/v1/options``: ``OptionsModel`` is a pydantic model with
one field per option **registered when this module is first imported** (models.py 193-204). Neo's built-in
ControlNet imports it while the built-in extensions load, before user extensions register their settings."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field, create_model

from modules.shared import opts

fields = {}
for key, metadata in opts.data_labels.items():
    optType = opts.typemap.get(type(metadata.default), type(metadata.default)) if metadata.default else Any
    fields[key] = (Optional[optType], Field(default=metadata.default, description=metadata.label))  # noqa: UP045

OptionsModel = create_model("Options", **fields)
