"""Mirrors modules/api/api.py (Neo @ 3df257a): ``/sdapi/v1/txt2img`` and ``/latent-upscale-modes`` as in A1111 1.10.1
(the A1111 stand-in's file runs first: script lookup, ``script_args`` and ``alwayson_scripts`` placement, no UI
fallback); ``GET /sdapi/v1/options`` answers through ``models.OptionsModel`` (the route's ``response_model``), so
an option the model was built without is left out of the reply, as FastAPI does."""

from standin_reuse import reuse

reuse(globals(), "modules/api/api.py")

from modules import shared


def get_config():
    from modules.api import models

    data = {key: shared.opts.data.get(key, info.default) for key, info in shared.opts.data_labels.items()}
    return models.OptionsModel(**data).model_dump()
