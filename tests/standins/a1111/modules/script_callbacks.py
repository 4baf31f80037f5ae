"""Mirrors modules/script_callbacks.py (1.10.1): registration functions (with ``name=``), the
firing functions the webui calls, ``CFGDenoiserParams``, and clearing on script reload."""

from __future__ import annotations

from collections import defaultdict

callback_map = defaultdict(list)


class CFGDenoiserParams:
    def __init__(
        self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None
    ):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


def _add(category, callback, name=None):
    callback_map[category].append((callback, name))


def on_ui_settings(callback, *, name=None):
    _add("ui_settings", callback, name)


def on_before_ui(callback, *, name=None):
    _add("before_ui", callback, name)


def on_script_unloaded(callback, *, name=None):
    _add("script_unloaded", callback, name)


def on_model_loaded(callback, *, name=None):
    _add("model_loaded", callback, name)


def on_cfg_denoiser(callback, *, name=None):
    _add("cfg_denoiser", callback, name)


def on_app_started(callback, *, name=None):
    _add("app_started", callback, name)


def ui_settings_callback():
    for callback, _ in callback_map["ui_settings"]:
        callback()


def before_ui_callback():
    for callback, _ in reversed(callback_map["before_ui"]):
        callback()


def script_unloaded_callback():
    for callback, _ in reversed(callback_map["script_unloaded"]):
        callback()


def cfg_denoiser_callback(params):
    for callback, _ in callback_map["cfg_denoiser"]:
        callback(params)


def clear_callbacks():
    callback_map.clear()
