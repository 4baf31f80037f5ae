"""The webui script against the A1111 1.10.1 stand-in: SDXL first pass -> SD1.5 hires pass."""

from __future__ import annotations

import pytest
import torch
from conftest import photo
from webui_env import SIZE, boot

from interposer.webui import options as li_options
from interposer.webui.generation import ATTRIBUTE

TITLE = "Latent Interposer"


@pytest.fixture
def webui(monkeypatch, tmp_path, tiny_vaes, linear_weights):
    return boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), linear_weights[0])


def test_selected_script_makes_the_sd15_hires_pass_see_the_photo(webui):
    processed = webui.generate(TITLE)
    converted = webui.hires_psnr()
    assert webui.hires_inputs[-1].model.is_sd1  # the hires model was loaded before the conversion ran
    webui.generate(None)  # the same job without the script
    unconverted = webui.hires_psnr()
    assert converted > 15.0
    assert converted > unconverted + 4.0, (converted, unconverted)
    assert len(processed.images) == 1
    lines = [line for line in webui.console if "hires: xl-to-v1" in line]
    assert len(lines) == 1
    assert "(1, 4, 24, 24) -> (1, 4, 24, 24) on cpu, fp32, weights linear-fit" in lines[0] and " ms" in lines[0]


def test_infotext_is_written_and_pasting_restores_the_script(webui):
    from modules.infotext_utils import apply_paste, parse_generation_parameters

    processed = webui.generate(TITLE, values=[True, "Auto", "fp32", "From settings"])
    text = processed.infotexts[0]
    assert 'Latent interposer: "xl-to-v1, linear-fit, fp32, explicit precision"' in text
    assert "Script: Latent Interposer" in text
    params = parse_generation_parameters(text)
    assert li_options.parse_infotext(params["Latent interposer"]) == {
        "direction": "xl-to-v1", "version": "linear-fit", "precision": "fp32", "explicit": False,
        "precision_explicit": True, "strategy": None,
    }  # fmt: skip
    updates = apply_paste(webui.runner.infotext_fields, params)
    by_label = {component.label: value for component, value in updates.items()}
    assert by_label["Script"] == TITLE
    assert by_label["Enable Latent Interposer"] is True
    assert by_label["Interposer direction"] == "Auto"
    assert by_label["Interposer precision"] == "fp32"


def test_pasting_an_auto_precision_restores_from_settings(webui):
    """Auto wrote what it picked on that machine (fp32 on this CPU): pasting must not pin a GPU to fp32."""
    from modules.infotext_utils import apply_paste, parse_generation_parameters

    processed = webui.generate(TITLE)  # precision "From settings" -> Auto -> fp32 on the CPU
    text = processed.infotexts[0]
    assert 'Latent interposer: "xl-to-v1, linear-fit, fp32"' in text and "explicit precision" not in text
    params = parse_generation_parameters(text)
    updates = {c.label: v for c, v in apply_paste(webui.runner.infotext_fields, params).items()}
    assert updates["Interposer precision"] == "From settings"
    assert updates["Enable Latent Interposer"] is True


def test_explicit_direction_round_trips_through_the_infotext(webui):
    from modules.infotext_utils import apply_paste, parse_generation_parameters

    processed = webui.generate(TITLE, values=[True, "xl-to-v1", "From settings", "From settings"])
    params = parse_generation_parameters(processed.infotexts[0])
    updates = {c.label: v for c, v in apply_paste(webui.runner.infotext_fields, params).items()}
    assert updates["Interposer direction"] == "xl-to-v1"


def test_pixel_upscaler_is_left_alone(webui):
    webui.generate(TITLE, hr_upscaler="Lanczos")
    assert "Latent interposer" not in webui.last_p.extra_generation_params
    assert sum("works on pixels" in line for line in webui.console) == 1
    assert webui.hires_psnr() > 15  # the webui re-encoded with the hires VAE itself


@pytest.mark.parametrize("hires_checkpoint", ["Use same checkpoint", "sdxl_base"])
def test_same_family_is_left_alone(webui, hires_checkpoint):
    webui.generate(TITLE, hr_checkpoint_name=hires_checkpoint)
    assert "Latent interposer" not in webui.last_p.extra_generation_params
    assert any("both passes are Stable Diffusion XL: nothing to convert" in line for line in webui.console)
    assert webui.hires_psnr(family="xl") > 15


def test_hooks_are_removed_after_success(webui):
    webui.generate(TITLE)
    p = webui.last_p
    assert ATTRIBUTE not in vars(p) and "sample" not in vars(p) and "sample_hr_pass" not in vars(p)


def test_hooks_are_removed_after_a_failure_and_nothing_unconverted_is_produced(webui, tmp_path):
    from modules import shared

    shared.opts.data["latent_interposer_weights_dir"] = str(tmp_path / "empty")
    with pytest.raises(Exception) as info:
        webui.generate(TITLE)
    message = str(info.value)
    assert "xl-to-v1_interposer-v4.0.safetensors" in message and str(tmp_path / "empty") in message
    assert "https://huggingface.co/city96/SD-Latent-Interposer/resolve/main/v4.0/" in message
    assert not webui.hires_inputs  # the hires pass never ran on unconverted latents
    p = webui.last_p
    assert ATTRIBUTE not in vars(p) and "sample_hr_pass" not in vars(p)


def test_interrupt_during_the_first_pass(webui):
    """Interrupted: the webui returns the first-pass latents from sample_hr_pass and decodes them with
    the hires VAE. They were converted on the way in, so even that image is an SD1.5-decodable one."""
    from modules import sd_samplers_kdiffusion, shared

    original = sd_samplers_kdiffusion.KDiffusionSampler.sample

    def interrupting(self, p, *args, **kwargs):
        result = original(self, p, *args, **kwargs)
        shared.state.interrupted = True
        return result

    sd_samplers_kdiffusion.KDiffusionSampler.sample = interrupting
    try:
        processed = webui.generate(TITLE)
    finally:
        sd_samplers_kdiffusion.KDiffusionSampler.sample = original
        shared.state.interrupted = False
    p = webui.last_p
    assert ATTRIBUTE not in vars(p) and "sample_hr_pass" not in vars(p)
    assert not webui.hires_inputs
    reference = torch.nn.functional.interpolate(webui.photo, size=processed.images[0].shape[-2:], mode="area")
    from interposer.images import psnr

    assert psnr(processed.images[0][None], reference) > 15


def test_one_conversion_per_hires_pass_with_batches(webui):
    processed = webui.generate(TITLE, batch_size=2, n_iter=2)
    assert len(processed.images) == 4
    lines = [line for line in webui.console if "hires: xl-to-v1 (2, 4, 24, 24)" in line]
    assert len(lines) == 2
    assert [tuple(h.x.shape) for h in webui.hires_inputs] == [(2, 4, 36, 36)] * 2
    assert all(t.count("Latent interposer:") == 1 for t in processed.infotexts)


def test_firstpass_image_upscale_button_path(webui):
    """The ✨ button: the image is encoded with the first-pass (SDXL) VAE, then the hires pass runs."""
    webui.generate(TITLE, firstpass_image=webui.photo)
    converted = webui.hires_psnr()
    webui.generate(None, firstpass_image=webui.photo)
    assert converted > webui.hires_psnr() + 4


def test_sd3_hires_checkpoint_gets_sixteen_channels_and_matching_noise(webui):
    webui.generate(TITLE, hr_checkpoint_name="sd3_medium")
    hires = webui.hires_inputs[-1]
    assert hires.x.shape[1] == 16 and hires.noise.shape[1] == 16  # the hires RNG follows the converted latents
    assert webui.hires_psnr(family="v3") > 15
    assert any("hires: xl-to-v3" in line for line in webui.console)


def test_settings_are_registered_in_their_section_with_defaults(webui):
    from modules import shared

    expected = {
        "latent_interposer_direction": "Auto",
        "latent_interposer_precision": "Auto",
        "latent_interposer_device": "Auto",
        "latent_interposer_weights_dir": "",
        "latent_interposer_allow_download": True,
        "latent_interposer_auto_apply": True,
        "latent_interposer_warn_vae_override": True,
        "latent_interposer_refiner_strategy": "Noise-preserving",
        "latent_interposer_refiner_noise_boost": 0.0,
    }
    for key, default in expected.items():
        info = shared.opts.data_labels[key]
        assert info.section == ("latent_interposer", "Latent Interposer"), key
        assert info.category_id == "sd", key
        assert info.default == default, key
    assert (
        shared.opts.data_labels["latent_interposer_weights_dir"]
        .component_args["placeholder"]
        .endswith("LatentInterposer")
    )


def test_settings_are_read_at_generation_time_and_override_settings_apply(webui):
    from modules import shared

    webui.generate(TITLE, override_settings={"latent_interposer_precision": "bf16"})
    assert "bf16" in webui.last_p.extra_generation_params["Latent interposer"]
    assert shared.opts.latent_interposer_precision == "Auto"  # restored after the job
    shared.opts.data["latent_interposer_precision"] = "fp32"
    webui.generate(TITLE)
    assert webui.last_p.extra_generation_params["Latent interposer"].endswith("fp32")


def test_explicit_direction_is_not_applied_when_both_passes_share_a_family(webui):
    values = [True, "xl-to-v1", "From settings", "From settings"]
    webui.generate(TITLE, values=values, hr_checkpoint_name="Use same checkpoint")
    assert "Latent interposer" not in webui.last_p.extra_generation_params
    assert any("explicit xl-to-v1 is not applied" in line for line in webui.console)


def test_explicit_direction_that_contradicts_the_checkpoints_is_used_and_said(webui):
    """The user's explicit choice wins over the detected families, with one console line saying so."""
    values = [True, "v1-to-xl", "From settings", "From settings"]
    webui.generate(TITLE, values=values)
    assert webui.last_p.extra_generation_params["Latent interposer"].startswith("v1-to-xl, ")
    said = [line for line in webui.console if "look like xl-to-v1" in line]
    assert len(said) == 1 and "v1-to-xl is used as chosen" in said[0]
    assert any("hires: v1-to-xl" in line for line in webui.console)


def test_disabled_checkbox_runs_the_plain_generation(webui):
    webui.generate(TITLE, values=[False, "From settings", "From settings", "From settings"])
    assert "Latent interposer" not in webui.last_p.extra_generation_params
    assert webui.last_p.extra_generation_params["Script"] == TITLE


def test_warns_once_about_a_global_vae_override(webui):
    from modules import shared

    shared.opts.data["sd_vae"] = "sdxl_vae.safetensors"
    webui.generate(TITLE, batch_size=1, n_iter=2)
    assert sum("forces one VAE onto every checkpoint" in line for line in webui.console) == 1
    shared.opts.data["latent_interposer_warn_vae_override"] = False
    webui.console.clear()
    webui.generate(TITLE)
    assert not any("forces one VAE" in line for line in webui.console)


def test_automatic_mode_without_selecting_the_script(webui):
    from modules import shared

    webui.generate(None)
    assert "Latent interposer" not in webui.last_p.extra_generation_params
    shared.opts.data["latent_interposer_auto_apply"] = True
    processed = webui.generate(None)
    assert "Latent interposer" in webui.last_p.extra_generation_params
    assert "Script:" not in processed.infotexts[0]
    assert webui.hires_psnr() > 15
    assert ATTRIBUTE not in vars(webui.last_p)


def test_crossing_families_unconverted_is_never_silent(webui):
    """Apply automatically off and no script (e.g. after pasting another image's parameters): the SD1.5 hires
    pass gets SDXL latents, and the console says so once per generation, with the fix."""
    webui.generate(None, batch_size=1, n_iter=2)
    said = [line for line in webui.console if "the interposer is off" in line]
    assert len(said) == 1
    assert "from Stable Diffusion XL to Stable Diffusion 1.x / 2.x" in said[0] and "Apply automatically" in said[0]
    assert "Latent interposer" not in webui.last_p.extra_generation_params
    webui.console.clear()
    webui.generate(None, hr_checkpoint_name="Use same checkpoint")
    assert not any("Latent Interposer" in line for line in webui.console)  # nothing crossed: nothing said


def test_apply_automatically_is_on_by_default_and_quiet_when_nothing_crosses(webui):
    from modules import shared

    shared.opts.data["latent_interposer_auto_apply"] = shared.opts.data_labels["latent_interposer_auto_apply"].default
    processed = webui.generate(None)
    assert 'Latent interposer: "xl-to-v1' in processed.infotexts[0]
    assert webui.hires_psnr() > 15
    webui.console.clear()
    webui.generate(None, hr_checkpoint_name="Use same checkpoint")
    webui.generate(None, hr_upscaler="Lanczos", hr_checkpoint_name="Use same checkpoint")
    assert not any("Latent Interposer" in line for line in webui.console)


def test_api_script_name_and_script_args(webui):
    from modules.api import api

    request = {
        "prompt": "a photo", "seed": 1, "steps": 6, "width": SIZE, "height": SIZE, "sampler_name": "Euler",
        "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.5,
        "hr_second_pass_steps": 4, "hr_checkpoint_name": "sd15_style",
        "script_name": "latent interposer", "script_args": [True, "Auto", "From settings", "From settings"],
    }  # fmt: skip
    processed = api.text2imgapi(request)
    assert 'Latent interposer: "xl-to-v1' in processed.infotexts[0]
    assert webui.hires_psnr() > 15


def test_api_override_settings_turn_on_the_automatic_mode(webui):
    from modules.api import api

    request = {
        "prompt": "a photo", "seed": 1, "steps": 6, "width": SIZE, "height": SIZE, "sampler_name": "Euler",
        "enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.5, "hr_second_pass_steps": 4,
        "hr_checkpoint_name": "sd15_style", "override_settings": {"latent_interposer_auto_apply": True},
    }  # fmt: skip
    processed = api.text2imgapi(request)
    assert "Latent interposer:" in processed.infotexts[0]


def test_xyz_axis_compares_off_and_on_without_leaking_between_cells(webui):
    from modules import scripts

    xyz = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    axis = next(option for option in xyz.axis_options if option.label == "Latent interposer")
    assert axis.choices() == ["Off", "On", *li_options.WEBUI_DIRECTIONS]
    p = webui.make_p()
    p.scripts = webui.runner
    p.script_args = tuple(webui.script_args())
    off, on, off_again, explicit = xyz.run_cells(p, axis, ["Off", "On", "Off", "xl-to-v1"])
    assert "Latent interposer" not in off.infotexts[0]
    assert "Latent interposer" in on.infotexts[0]
    assert "Latent interposer" not in off_again.infotexts[0]  # the shared dict was cleaned for this cell
    assert "explicit" in explicit.infotexts[0]
    assert ATTRIBUTE not in vars(p) and "sample_hr_pass" not in vars(p)
    with pytest.raises(RuntimeError, match="unknown value 'maybe'"):
        xyz.run_cells(p, axis, ["maybe"])


def test_ui_is_side_effect_free_and_has_tooltips_for_every_label(webui):
    import re

    from modules import shared

    script = webui.script(TITLE)
    labels = [c.label for c in script.ui(False)]
    settings = [shared.opts.data_labels[s.key].label for s in li_options.SETTINGS]
    js = (webui_js := (__import__("webui_env").REPO / "javascript" / "latent_interposer.js").read_text())
    tooltips = dict(re.findall(r'^\s*"([^"]+)":\s*"([^"]+)"', js, flags=re.MULTILINE))
    for label in [*labels, *settings, TITLE, "Latent interposer"]:
        assert tooltips.get(label), f"no tooltip for {label!r}"
    assert "setInterval" not in webui_js and "MutationObserver" not in webui_js and "onUiUpdate" not in webui_js


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, None),  # another image's parameters: leave the control alone
        ({"Script": "Latent Interposer"}, True),  # made with the script, nothing needed converting
        ({"Latent interposer": "xl-to-v1, v4.0, fp16"}, True),
        ({"Latent interposer refiner": "xl-to-v1, v4.0, fp16, noise-preserving"}, True),
    ],
)
def test_pasting_never_unticks_enable(webui, extra, expected):
    """infotext_utils turns every non-None value into an update: False would untick a selected script."""
    from modules.infotext_utils import apply_paste, parse_generation_parameters

    text = "a photo\nSteps: 6, Sampler: Euler, CFG scale: 5.0, Seed: 1, Size: 192x192, Model: sdxl_base"
    extras = "".join(f', {k}: "{v}"' for k, v in extra.items())
    params = parse_generation_parameters(text + extras)
    updates = {c.label: v for c, v in apply_paste(webui.runner.infotext_fields, params).items()}
    assert updates.get("Enable Latent Interposer") is expected


def test_settings_exist_without_any_ui_settings_callback(webui):
    """--nowebui: settings registered only in on_ui_settings were missing from /sdapi/v1/options in 1.10.1.
    Here the scripts are reloaded and no UI is built: the options must exist anyway."""
    from modules import script_callbacks, scripts, shared
    from modules.api import api

    for key in [k for k in shared.opts.data_labels if k.startswith("latent_interposer_")]:
        del shared.opts.data_labels[key]
        shared.opts.data.pop(key, None)
    fired = []
    original = script_callbacks.ui_settings_callback
    script_callbacks.ui_settings_callback = lambda: fired.append(True)
    try:
        scripts.load_scripts()
    finally:
        script_callbacks.ui_settings_callback = original
    assert not fired
    config = api.get_config()
    for setting in li_options.SETTINGS:
        assert setting.key in shared.opts.data_labels
        assert config[setting.key] == setting.default


def test_a_missing_package_is_worded_for_the_webui(webui, monkeypatch):
    """The core says `pip install NAME`; in the webui the way is a restart (install.py adds it)."""
    from interposer.errors import MissingDependencyError, require
    from interposer.runtime import Converter

    def missing(*args, **kwargs):
        require("a_package_that_is_not_there", "a-package")

    monkeypatch.setattr(Converter, "prepare", missing)
    with pytest.raises(MissingDependencyError) as info:
        webui.generate("Latent Interposer", enable_hr=True)
    assert str(info.value) == ("The Python package 'a-package' is not installed: restart the webui so that the "
                               "extension's install.py adds it.")  # fmt: skip
    assert "pip install" not in str(info.value)
