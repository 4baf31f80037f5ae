"""Mirrors modules/api/api.py (1.10.1) for /sdapi/v1/txt2img: script lookup by title
(case-insensitive, selectable scripts only for ``script_name``), default script args read from
each script's ``ui()`` (called twice, inside a throwaway Blocks), ``script_args`` placed by slice
assignment, ``alwayson_scripts`` by title, ``p.is_api = True`` and ``scripts.run`` without the UI's
fallback to ``process_images``."""

from __future__ import annotations

from contextlib import closing

import gradio as gr

from modules import processing, scripts, shared


class HTTPException(Exception):
    def __init__(self, status_code, detail):
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def script_name_to_index(name, scripts_list):
    try:
        return [script.title().lower() for script in scripts_list].index(name.lower())
    except Exception as e:
        raise HTTPException(status_code=422, detail=f"Script '{name}' not found") from e


def get_script(script_name, script_runner):
    if script_name is None or script_name == "":
        return None, None
    script_idx = script_name_to_index(script_name, script_runner.selectable_scripts)
    return script_runner.selectable_scripts[script_idx], script_idx


def init_default_script_args(script_runner):
    last_arg_index = 1
    for script in script_runner.scripts:
        if last_arg_index < script.args_to:
            last_arg_index = script.args_to
    script_args = [None] * last_arg_index
    script_args[0] = 0
    with gr.Blocks():
        for script in script_runner.scripts:
            if script.ui(script.is_img2img):
                ui_default_values = [c.value for c in script.ui(script.is_img2img)]
                script_args[script.args_from : script.args_to] = ui_default_values
    return script_args


def init_script_args(request, default_script_args, selectable_scripts, selectable_idx, script_runner):
    script_args = default_script_args.copy()
    if selectable_scripts:
        script_args[selectable_scripts.args_from : selectable_scripts.args_to] = request.get("script_args", [])
        script_args[0] = selectable_idx + 1
    for alwayson_script_name, payload in request.get("alwayson_scripts", {}).items():
        matches = [s for s in script_runner.scripts if s.title().lower() == alwayson_script_name.lower()]
        if not matches:
            raise HTTPException(status_code=422, detail=f"always on script {alwayson_script_name} not found")
        alwayson_script = matches[0]
        if not alwayson_script.alwayson:
            raise HTTPException(
                status_code=422, detail="Cannot have a selectable script in the always on scripts params"
            )
        if "args" in payload:
            for idx in range(0, min((alwayson_script.args_to - alwayson_script.args_from), len(payload["args"]))):
                script_args[alwayson_script.args_from + idx] = payload["args"][idx]
    return script_args


def text2imgapi(request: dict):
    script_runner = scripts.scripts_txt2img
    selectable_scripts, selectable_script_idx = get_script(request.get("script_name"), script_runner)
    args = {k: v for k, v in request.items()
            if k not in ("script_name", "script_args", "alwayson_scripts", "infotext", "send_images", "save_images")}  # fmt: skip
    default_args = init_default_script_args(script_runner)
    script_args = init_script_args(request, default_args, selectable_scripts, selectable_script_idx, script_runner)
    with closing(processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **args)) as p:
        p.is_api = True
        p.scripts = script_runner
        if selectable_scripts is not None:
            p.script_args = script_args
            processed = scripts.scripts_txt2img.run(p, *p.script_args)
        else:
            p.script_args = tuple(script_args)
            processed = processing.process_images(p)
    return processed


def get_latent_upscale_modes():
    """GET /sdapi/v1/latent-upscale-modes: the keys of shared.latent_upscale_modes, as the webui lists them."""
    return [{"name": upscale_mode} for upscale_mode in [*(shared.latent_upscale_modes or {})]]


def get_config():
    """GET /sdapi/v1/options: every key of opts.data (not data_labels), as in the webui."""
    options = {}
    for key in shared.opts.data:
        metadata = shared.opts.data_labels.get(key)
        options[key] = (
            shared.opts.data.get(key, metadata.default) if metadata is not None else shared.opts.data.get(key)
        )
    return options
