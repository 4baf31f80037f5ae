"""WebUI entry point of the Latent Interposer (a thin adapter over ``interposer.webui``).

Runs in AUTOMATIC1111 1.10 and in the Forges (Forge Neo, lllyasviel's Forge); ``detect_webui`` picks the
adapter by feature checks. This file only wires the webui's hooks to the decision layer:

* "Latent Interposer" in the txt2img *Script* dropdown converts the first pass's latents into the hires
  checkpoint's latent space (SDXL <-> SD1.5, SD3, and FLUX.1-family first passes on the Forges) right before the
  hires pass, and the sampler's state at a refiner switch to another family.
* "Latent Interposer (automatic)" is an always-visible companion without UI, in txt2img and img2img: it does
  the same when Settings > Latent Interposer > "Apply automatically" is on (the default), or when an X/Y/Z
  plot axis asks for it, so it also works in X/Y/Z plots, API calls that select no script, and the img2img
  refiner; when it is off it still says, once per generation, when latents cross families unconverted.
"""

from __future__ import annotations

import os
import sys

import gradio as gr
from modules import paths, processing, script_callbacks, scripts, sd_samplers_cfg_denoiser, sd_samplers_common, shared

try:
    from interposer.directions import direction as parse_direction
    from interposer.lookup import find_local
    from interposer.webui import options as li_options
    from interposer.webui.api_options import extend_options_model
    from interposer.webui.detect import detect_webui
    from interposer.webui.generation import Generation, clear_infotext
    from interposer.webui.refiner import RefinerHook
    from interposer.webui.settings import WebuiSettings

    WEBUI = detect_webui()
    SETTINGS = WebuiSettings(shared, paths)
    IMPORT_ERROR = None
except Exception as exc:  # a broken install must not take the webui down with it
    IMPORT_ERROR = (
        f"Latent Interposer could not load its package ({type(exc).__name__}: {exc}). Restart the webui so that "
        "the extension's install.py can install what is missing, or reinstall the extension."
    )
    print(IMPORT_ERROR)

XYZ_ATTRIBUTE = "latent_interposer_xyz"
AXIS_LABEL = "Latent interposer"


def _option(key, default=None):
    return getattr(shared.opts, key, default)


def _attach(p, owner: str, **ui_values) -> Generation:
    generation = Generation(p, WEBUI, SETTINGS, ui_values)
    generation.owner = owner
    return generation.attach()


def _status_html() -> str:
    if IMPORT_ERROR:
        return f"<p style='color: var(--error-text-color, #c00)'>{IMPORT_ERROR}</p>"
    options = SETTINGS.generation_options()
    names = ("xl-to-v1", "v1-to-xl")
    found = [name for name in names if find_local(parse_direction(name), [options.weights_dir])]
    missing = [name for name in names if name not in found]
    where = f"<code>{options.weights_dir}</code>"
    if not missing:
        return f"<p>Weights for {' and '.join(names)} are in {where}.</p>"
    then = "downloaded on first use" if options.allow_download else "needed (automatic download is off in Settings)"
    return f"<p>Weights for {', '.join(missing)} are not in {where} yet: they will be {then}.</p>"


# --------------------------------------------------------------------------- settings and X/Y/Z


def register_settings() -> None:
    """Add the settings to ``shared.opts`` (idempotent).

    Called when the script loads, not only from ``on_ui_settings``: with ``--nowebui`` the webui never runs
    ``on_ui_settings`` callbacks, and API users must still be able to read and set these options
    (``/sdapi/v1/options``, ``override_settings``). The callback runs it again when a UI is built."""
    if IMPORT_ERROR:
        return
    components = {"checkbox": gr.Checkbox, "radio": gr.Radio, "dropdown": gr.Dropdown, "textbox": gr.Textbox,
                  "slider": gr.Slider}  # fmt: skip
    default_folder = os.path.join(paths.models_path, "LatentInterposer")
    for setting in li_options.SETTINGS:
        args = {"choices": list(setting.choices)} if setting.choices else None
        if setting.component == "textbox":
            args = {"placeholder": default_folder}
        if setting.slider:
            args = dict(zip(("minimum", "maximum", "step"), setting.slider, strict=True))
        info = shared.OptionInfo(setting.default, setting.label, components[setting.component], args,
                                 section=li_options.SECTION, category_id=li_options.CATEGORY)  # fmt: skip
        if setting.info:
            info = info.info(setting.info)
        shared.opts.add_option(setting.key, info)


def on_before_ui() -> None:
    """Add the "Latent interposer" axis to X/Y/Z plot (values Off, On, or a direction)."""
    if IMPORT_ERROR:
        return
    xyz = next((d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py"), None)
    if xyz is None or any(getattr(option, "label", None) == AXIS_LABEL for option in xyz.axis_options):
        return
    choices = ["Off", "On", *li_options.WEBUI_DIRECTIONS]

    def apply(p, value, values):
        setattr(p, XYZ_ATTRIBUTE, value)

    def confirm(p, values):
        for value in values:
            if value not in choices:
                raise RuntimeError(f"Latent interposer axis: unknown value {value!r}; use {', '.join(choices)}.")

    xyz.axis_options.append(xyz.AxisOptionTxt2Img(AXIS_LABEL, str, apply, confirm=confirm, choices=lambda: choices))


def register_upscale_mode() -> None:
    """The hires *Upscaler* entry ``Latent (NN)``: in the dropdown, ``/sdapi/v1/latent-upscale-modes``, X/Y/Z.

    The webui builds those lists from ``shared.latent_upscale_modes`` after scripts are loaded; Forge Neo 2.x
    ships that dict empty (no ``Latent`` modes at all), so nothing else may be assumed in it. Without the
    package (IMPORT_ERROR) the entry is not offered: it would silently be bilinear."""
    if not IMPORT_ERROR:
        if getattr(shared, "latent_upscale_modes", None) is None:
            shared.latent_upscale_modes = {}
        mode = dict(li_options.LEARNED_UPSCALE_SETTINGS)
        shared.latent_upscale_modes.setdefault(li_options.LEARNED_UPSCALE_MODE, mode)


def register_api_options() -> None:
    """``GET /sdapi/v1/options`` answers through a model of every option, built when ``modules.api.models`` is
    first imported. Forge Neo imports it (its built-in ControlNet does) before extensions register settings,
    so the extension's settings would be missing from the reply; they are added to that model here."""
    if not IMPORT_ERROR:
        extend_options_model(sys.modules.get("modules.api.models"), shared.opts, li_options.SETTINGS)


register_settings()
register_upscale_mode()
register_api_options()
script_callbacks.on_ui_settings(register_settings, name="latent_interposer")
script_callbacks.on_before_ui(on_before_ui, name="latent_interposer")

if not IMPORT_ERROR:
    # Wraps CFGDenoiser.forward / apply_refiner for the whole session; inactive unless a generation has the
    # interposer attached. Removed when the webui unloads scripts (Reload UI), re-installed on load.
    refiner_hook = RefinerHook(sd_samplers_cfg_denoiser.CFGDenoiser, sd_samplers_common)
    refiner_hook.install()
    script_callbacks.on_script_unloaded(refiner_hook.uninstall, name="latent_interposer_refiner")


# --------------------------------------------------------------------------- scripts


class LatentInterposerScript(scripts.Script):
    """The dropdown script: wraps this generation's hires pass and runs it."""

    def title(self):
        return li_options.TITLE if not IMPORT_ERROR else "Latent Interposer"

    def show(self, is_img2img):
        return not is_img2img

    def ui(self, is_img2img):
        if IMPORT_ERROR:
            gr.HTML(_status_html())
            enabled = gr.Checkbox(label="Enable Latent Interposer", value=False, interactive=False)
            return [enabled]
        with gr.Group():
            enabled = gr.Checkbox(label="Enable Latent Interposer", value=True, elem_id=self.elem_id("enabled"))
            direction = gr.Dropdown(
                label="Interposer direction", choices=[li_options.FROM_SETTINGS, li_options.AUTO,
                                                       *li_options.WEBUI_DIRECTIONS],
                value=li_options.FROM_SETTINGS, elem_id=self.elem_id("direction"),
            )  # fmt: skip
            precision = gr.Dropdown(
                label="Interposer precision", choices=[li_options.FROM_SETTINGS, *li_options.PRECISION_CHOICES],
                value=li_options.FROM_SETTINGS, elem_id=self.elem_id("precision"),
            )  # fmt: skip
            strategy = gr.Dropdown(
                label="Interposer refiner strategy", choices=[li_options.FROM_SETTINGS, *li_options.REFINER_STRATEGIES],
                value=li_options.FROM_SETTINGS, elem_id=self.elem_id("refiner_strategy"),
            )  # fmt: skip
            gr.HTML(_status_html(), elem_id=self.elem_id("status"))
        self.infotext_fields = [
            (enabled, _pasted_enabled),
            (direction, lambda d: _pasted(d, "direction")),
            (precision, lambda d: _pasted(d, "precision")),
            (strategy, lambda d: _pasted(d, "strategy")),
        ]
        self.paste_field_names = [li_options.INFOTEXT_KEY, li_options.REFINER_INFOTEXT_KEY]
        return [enabled, direction, precision, strategy]

    def run(self, p, enabled=True, direction=None, precision=None, refiner_strategy=None, *rest):
        if IMPORT_ERROR:
            raise RuntimeError(IMPORT_ERROR)
        p.extra_generation_params["Script"] = self.title()
        # Unticked: attached all the same, converting nothing, so Apply automatically does not convert either.
        generation = _attach(p, "script", enabled=bool(enabled), direction=direction, precision=precision,
                             refiner_strategy=refiner_strategy, selected=True)  # fmt: skip
        try:
            return processing.process_images(p)
        finally:
            generation.detach()


def _pasted_enabled(params: dict):
    """Tick *Enable* when the pasted image was made with the interposer; otherwise leave it alone.

    The webui turns every non-``None`` value into an update, so returning ``False`` for an image made without
    the script would untick a selected script and let the next cross-family hires pass run unconverted."""
    ran = li_options.INFOTEXT_KEY in params or li_options.REFINER_INFOTEXT_KEY in params
    return True if ran or params.get("Script") == li_options.TITLE else None


def _pasted(params: dict, field: str):
    """The control value an infotext implies (``None``: leave the control as it is)."""
    if field == "strategy":
        parsed = li_options.parse_infotext(params.get(li_options.REFINER_INFOTEXT_KEY))
        return None if parsed is None else parsed["strategy"]
    parsed = li_options.parse_infotext(
        params.get(li_options.INFOTEXT_KEY) or params.get(li_options.REFINER_INFOTEXT_KEY)
    )
    if parsed is None:
        return None
    if field == "direction":
        return parsed["direction"] if parsed["explicit"] else li_options.AUTO
    # "Auto" wrote what it picked on that machine (fp32 on a CPU): only a hand-chosen precision is restored.
    return parsed["precision"] if parsed["precision_explicit"] and parsed["precision"] else li_options.FROM_SETTINGS


class LatentInterposerAutomatic(scripts.Script):
    """Always-visible companion: applies the interposer per Settings or an X/Y/Z axis, no UI."""

    def title(self):
        return "Latent Interposer (automatic)"

    def show(self, is_img2img):
        return scripts.AlwaysVisible  # img2img has the Refiner too

    def ui(self, is_img2img):
        return []

    def process(self, p, *args):
        if IMPORT_ERROR:
            return
        clear_infotext(p)  # X/Y/Z cells share one extra_generation_params dict
        if Generation.of(p) is not None:  # the dropdown script is running this generation
            return
        mode = getattr(p, XYZ_ATTRIBUTE, None)
        convert = not (mode == "Off" or (mode is None and not _option("latent_interposer_auto_apply", True)))
        # Attached also when not converting: Latent (NN) is the user's hires upscaler choice and runs anyway, a
        # crossing left unconverted is said once, and the Forges' cond caches are kept valid across switches.
        direction = mode if mode in li_options.WEBUI_DIRECTIONS else li_options.FROM_SETTINGS
        _attach(p, "automatic", direction=direction, enabled=convert)

    def postprocess(self, p, processed, *args):
        generation = None if IMPORT_ERROR else Generation.of(p)
        if generation is not None and generation.owner == "automatic":
            generation.detach()
