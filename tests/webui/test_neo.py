"""The extension in Forge Neo, against the Neo stand-in (tests/standins/neo): hires conversion in both directions and
from the FLUX.1 family, ``Latent (NN)`` with Neo's empty mode list, Neo's cond cache, unsupported families, and
everything else a user touches (settings, API, infotext, X/Y/Z)."""

from __future__ import annotations

import pytest
import torch
from conftest import photo
from neo_env import SIZE, add_checkpoint, boot, neo_modules

from interposer.runtime import Converter, ModelCache
from interposer.webui import options as li_options
from interposer.webui.generation import ATTRIBUTE
from interposer.weights import WeightsQuery

TITLE = "Latent Interposer"
NN = "Latent (NN)"
ON = [True, "From settings", "From settings", "From settings"]
HIRES = (SIZE * 3 // 2) // 8  # 36 latents


@pytest.fixture
def neo(monkeypatch, tmp_path, tiny_vaes, linear_upscalers):
    with neo_modules():
        yield boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), linear_upscalers)


@pytest.fixture
def neo_empty_modes(monkeypatch, tmp_path, tiny_vaes, linear_upscalers):
    """Neo 2.2x: ``shared.latent_upscale_modes`` ships empty (no Latent modes at all), default "None"."""
    with neo_modules():
        yield boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), linear_upscalers, empty_modes=True)


def first(checkpoint: str) -> dict:
    """The request field that makes ``checkpoint`` the first-pass model (as the API's override_settings does)."""
    return {"override_settings": {"sd_model_checkpoint": f"{checkpoint}.safetensors"}}


def test_the_adapter_is_neos_and_the_script_loads_without_errors(neo):
    from modules import errors

    from interposer.webui.detect import detect_webui
    from interposer.webui.forge import ForgeNeo

    assert isinstance(detect_webui(), ForgeNeo)
    assert not errors.exception_records  # nothing was reported while the scripts loaded
    assert TITLE in [s.title() for s in neo.runner.selectable_scripts]
    assert "Latent Interposer (automatic)" in [s.title() for s in neo.runner.alwayson_scripts]


@pytest.mark.parametrize(("base", "hires", "family"), [("sdxl", "sd15", "v1"), ("sd15", "sdxl", "xl")])
def test_hires_across_families_lands_on_the_photo(neo, base, hires, family):
    processed = neo.generate(TITLE, hr_checkpoint_name=hires, **first(base))
    converted = neo.hires_psnr(family=family)
    assert type(neo.hires_inputs[-1].model).__name__ == ("StableDiffusion" if family == "v1" else "StableDiffusionXL")
    direction = f"{'xl' if base == 'sdxl' else 'v1'}-to-{family}"
    assert f'Latent interposer: "{direction}, linear-fit, fp32"' in processed.infotexts[0]
    assert sum(f"hires: {direction} (1, 4, 24, 24) -> (1, 4, 24, 24)" in line for line in neo.console) == 1
    neo.generate(None, hr_checkpoint_name=hires, **first(base))
    unconverted = neo.hires_psnr(family=family)
    assert converted > 15.0 and converted > unconverted + 5.0, (converted, unconverted)
    assert ATTRIBUTE not in vars(neo.last_p) and "sample_hr_pass" not in vars(neo.last_p)


@pytest.mark.parametrize(("hires", "family"), [("sdxl", "xl"), ("sd15", "v1")])
def test_a_flux_family_first_pass_is_converted_to_four_channels(neo, hires, family):
    """Lumina 2 (FLUX.1's 16-channel space) -> SDXL / SD1.5: the hires noise and latents follow the conversion."""
    processed = neo.generate(TITLE, hr_checkpoint_name=hires, **first("lumina2"))
    hires_input = neo.hires_inputs[-1]
    assert hires_input.x.shape == (1, 4, HIRES, HIRES) and hires_input.noise.shape == (1, 4, HIRES, HIRES)
    assert f'Latent interposer: "fx-to-{family}, linear-fit, fp32"' in processed.infotexts[0]
    assert any(f"hires: fx-to-{family} (1, 16, 24, 24) -> (1, 4, 24, 24)" in line for line in neo.console)
    assert neo.hires_psnr(family=family) > 15.0


def test_a_flux_family_first_pass_without_the_interposer_says_so_before_neo_fails(neo):
    """Unconverted, Neo's 4-channel UNet gets 16 channels (a RuntimeError in Neo and here): the console says why
    first, and what to do."""
    with pytest.raises(RuntimeError):
        neo.generate(None, **first("lumina2"))
    said = [line for line in neo.console if "the interposer is off" in line]
    assert len(said) == 1 and "from the FLUX.1 family to Stable Diffusion 1.x / 2.x" in said[0]


def test_apply_automatically_converts_the_flux_pass_without_the_script(neo):
    from modules import shared

    shared.opts.data["latent_interposer_auto_apply"] = True
    processed = neo.generate(None, hr_checkpoint_name="sdxl", **first("lumina2"))
    assert 'Latent interposer: "fx-to-xl' in processed.infotexts[0] and "Script:" not in processed.infotexts[0]
    assert neo.hires_psnr(family="xl") > 15.0


@pytest.mark.parametrize(("base", "hires"), [("qwen", "sd15"), ("sd15", "qwen")])
def test_a_family_without_an_interposer_is_refused_in_one_line_before_sampling(neo, base, hires):
    """Qwen-Image samples in Wan 2.1's latent space. Nothing samples, nothing is converted."""
    from modules import shared

    with pytest.raises(Exception) as info:
        neo.generate(TITLE, hr_checkpoint_name=hires, **first(base))
    message = str(info.value)
    assert "which no interposer converts" in message and "cannot be converted" in message
    assert shared.sd_model.apply_calls == 0 and not neo.hires_inputs
    said = [line for line in neo.console if "which no interposer converts" in line]
    assert len(said) == 1 and info.value.__cause__ is None


def test_without_its_bundled_file_a_flux_family_hires_checkpoint_is_refused_before_sampling(neo, monkeypatch,
                                                                                              tmp_path):  # fmt: skip
    """xl-to-fx ships with the extension; an install that lost the file cannot finish an SDXL first pass in
    Lumina 2 with latents. The hires checkpoint's family is read from its file, so this is said before the first
    pass."""
    from modules import shared

    from interposer import lookup

    monkeypatch.setattr(lookup, "BUNDLED_DIR", tmp_path / "bundled-removed")
    with pytest.raises(Exception, match=r"No weights for xl-to-fx: the file the extension ships, .* is missing"):
        neo.generate(TITLE, hr_checkpoint_name="lumina2")
    assert shared.sd_model.apply_calls == 0 and not neo.hires_inputs


def test_a_mugen_file_and_a_loaded_mugen_are_one_family_and_not_sdxl(neo):
    """Mugen's checkpoint has SDXL's text encoders and a 32-channel UNet: read from its header before loading, it
    must be the family the loaded engine reports (FLUX.2's space, 32 channels as is), or a Mugen first pass with a
    Mugen hires checkpoint would be refused as crossing, and an SDXL one with a Mugen hires checkpoint let through."""
    import fake_engines
    from modules import sd_models

    from interposer.webui.detect import detect_webui
    from interposer.webui.families import checkpoint_kind

    from_file = checkpoint_kind(sd_models.get_closet_checkpoint_match("mugen").filename).family
    loaded = detect_webui().family(fake_engines.Mugen(None, neo.photo))
    assert from_file.same_as(loaded) and loaded.key == "f2" and loaded.space.channels == 32 and not loaded.layout


def test_a_vae_with_other_factors_is_refused_not_converted(neo, tiny_vaes):
    """A FLUX.1-format model whose VAE scales by something else: converting would give garbage."""
    import fake_engines
    from modules import shared

    def odd_vae():
        engine = fake_engines.Lumina2(tiny_vaes["fx"], neo.photo)
        engine.forge_objects.vae.first_stage_model.scaling_factor = 0.5
        return engine

    add_checkpoint("odd_flux", "lumina2", odd_vae)
    with pytest.raises(Exception, match=r"scales its FLUX\.1 latents by 0\.5 \(shift 0\.1159\).*0\.3611"):
        neo.generate(TITLE, **first("odd_flux"))
    assert shared.sd_model.apply_calls == 0


def test_cond_cache_crash_without_the_fix_and_none_with_it(neo, monkeypatch):
    """Neo keys cached conds on the loading parameters, reset to the first-pass checkpoint after the hires load: the
    SDXL hires conds of request 1 are stored under the SD1.5 key, and request 2 ("Use same checkpoint") gets them
    for its SD1.5 hires pass. The extension drops them around every pass on another checkpoint."""
    from interposer.webui.forge import ForgeNeo

    requests = [dict(hr_checkpoint_name="sdxl", **first("sd15")), dict(hr_checkpoint_name="Use same checkpoint",
                                                                       **first("sd15"))]  # fmt: skip
    with monkeypatch.context() as without_fix:
        without_fix.setattr(ForgeNeo, "forget_cached_conds", lambda self, p: None)
        neo.generate(TITLE, **requests[0])
        with pytest.raises(AssertionError):
            neo.generate(TITLE, **requests[1])
    neo.generate(TITLE, **requests[0])
    processed = neo.generate(TITLE, **requests[1])
    assert len(processed.images) == 1
    neo.generate(TITLE, **requests[0])  # and back: the SD1.5 conds of request 2 do not reach SDXL either
    assert neo.hires_psnr(family="xl") > 15.0


def test_cond_cache_stays_valid_with_the_interposer_off_and_across_batches(neo):
    """Apply automatically off and no script: the companion still keeps Neo's caches valid."""
    neo.generate(None, hr_checkpoint_name="sdxl", hr_upscaler="Lanczos", n_iter=2, **first("sd15"))
    processed = neo.generate(None, hr_checkpoint_name="Use same checkpoint", n_iter=2, **first("sd15"))
    assert len(processed.images) == 2


def test_latent_nn_is_registered_where_neo_ships_no_latent_modes(neo_empty_modes):
    from modules import scripts, shared
    from modules.api import api

    assert list(shared.latent_upscale_modes) == [NN]
    assert api.get_latent_upscale_modes() == [{"name": NN}]
    xyz = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    axis = next(option for option in xyz.axis_options if option.label == "Hires upscaler")
    assert axis.choices()[0] == NN


def test_latent_nn_in_one_family_and_across_families(neo_empty_modes, linear_upscalers):
    neo = neo_empty_modes
    same = neo.generate(None, hr_upscaler=NN, hr_checkpoint_name="Use same checkpoint")
    assert neo.hires_inputs[-1].x.shape == (1, 4, HIRES, HIRES)
    assert 'Latent upscaler: "xl x1.5, linear-fit, fp32"' in same.infotexts[0]
    across = neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name="sd15")
    assert 'Latent interposer: "xl-to-v1' in across.infotexts[0]
    assert 'Latent upscaler: "v1 x1.5' in across.infotexts[0]
    assert neo.hires_psnr(family="v1") > 15.0


def generate_keeping_the_first_pass(neo, **kwargs):
    """One generation, and the latents the first pass's sampler returned (what the hires pass starts from)."""
    from modules import sd_samplers_kdiffusion

    seen = []
    original = sd_samplers_kdiffusion.KDiffusionSampler.sample

    def spy(self, *args, **kwargs):
        seen.append(original(self, *args, **kwargs))
        return seen[-1]

    sd_samplers_kdiffusion.KDiffusionSampler.sample = spy
    try:
        processed = neo.generate(TITLE, **kwargs)
    finally:
        sd_samplers_kdiffusion.KDiffusionSampler.sample = original
    return processed, seen


def test_latent_nn_from_a_flux_first_pass_converts_then_upscales(neo, linear_upscalers):
    processed, seen = generate_keeping_the_first_pass(
        neo, hr_upscaler=NN, hr_checkpoint_name="sdxl", **first("lumina2")
    )
    converter = Converter(weights=WeightsQuery(folders=(str(linear_upscalers),), allow_download=False), device="cpu",
                          precision="fp32", cache=ModelCache())  # fmt: skip
    expected = converter.upscale(converter.convert(seen[0], "fx", "xl"), "xl", size=(HIRES, HIRES))
    assert torch.allclose(neo.hires_inputs[-1].x, expected, atol=1e-5)
    text = processed.infotexts[0]
    assert 'Latent interposer: "fx-to-xl' in text and 'Latent upscaler: "xl x1.5' in text


def test_latent_nn_on_a_flux_first_pass_in_one_family_interpolates_and_says_so(neo_empty_modes):
    """Nobody publishes a FLUX.1 latent upscaler: on Neo 2.2x (no Latent modes) Latent (NN) is still the latent hires
    route, so it interpolates (bicubic, as the learned plans resize) and the console and infotext say so."""
    import torch.nn.functional as F

    neo = neo_empty_modes
    processed, seen = generate_keeping_the_first_pass(
        neo, hr_upscaler=NN, hr_checkpoint_name="Use same checkpoint", **first("lumina2")
    )
    expected = F.interpolate(seen[0], size=(HIRES, HIRES), mode="bicubic", align_corners=False)
    assert torch.allclose(neo.hires_inputs[-1].x, expected, atol=1e-6)
    assert 'Latent upscaler: "fx interpolated, -, fp32"' in processed.infotexts[0]
    said = [line for line in neo.console if "hires upscale: fx interpolated" in line]
    assert len(said) == 1 and "no fx latent upscaler exists: bicubic interpolation" in said[0]


def test_settings_section_and_the_api_options_reply(neo):
    """Neo builds GET /sdapi/v1/options' model before user extensions register settings; the reply lists them."""
    from modules import shared
    from modules.api import api

    for setting in li_options.SETTINGS:
        info = shared.opts.data_labels[setting.key]
        assert info.section == ("latent_interposer", "Latent Interposer") and info.category_id == "sd"
    config = api.get_config()
    for setting in li_options.SETTINGS:
        assert config[setting.key] == shared.opts.data[setting.key], setting.key


def test_api_script_name_and_alwayson_and_override_settings(neo):
    from modules.api import api

    request = {
        "prompt": "a photo", "seed": 1, "steps": 6, "width": SIZE, "height": SIZE, "sampler_name": "Euler",
        "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.5,
        "hr_second_pass_steps": 4, "hr_checkpoint_name": "sd15", "hr_additional_modules": ["Use same choices"],
        "script_name": "latent interposer", "script_args": ON,
    }  # fmt: skip
    assert 'Latent interposer: "xl-to-v1' in api.text2imgapi(request).infotexts[0]
    request = {k: v for k, v in request.items() if k not in ("script_name", "script_args")}
    request["override_settings"] = {"latent_interposer_auto_apply": True}
    assert 'Latent interposer: "xl-to-v1' in api.text2imgapi(request).infotexts[0]
    request["alwayson_scripts"] = {"Latent Interposer (automatic)": {"args": []}}
    request["override_settings"] = {"latent_interposer_auto_apply": False}
    assert "Latent interposer:" not in api.text2imgapi(request).infotexts[0]


def test_infotext_paste_restores_the_script(neo):
    from modules.infotext_utils import apply_paste, parse_generation_parameters

    processed = neo.generate(TITLE, values=[True, "Auto", "fp32", "From settings"])
    params = parse_generation_parameters(processed.infotexts[0])
    updates = {c.label: v for c, v in apply_paste(neo.runner.infotext_fields, params).items()}
    assert updates["Script"] == TITLE and updates["Enable Latent Interposer"] is True
    assert updates["Interposer direction"] == "Auto" and updates["Interposer precision"] == "fp32"


def test_xyz_axis_off_and_on(neo):
    from modules import scripts

    xyz = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    axis = next(option for option in xyz.axis_options if option.label == "Latent interposer")
    assert {"fx-to-xl", "fx-to-v1"} <= set(axis.choices())
    p = neo.make_p()
    p.scripts = neo.runner
    p.script_args = tuple(neo.script_args())
    off, on = xyz.run_cells(p, axis, ["Off", "On"])
    assert "Latent interposer" not in off.infotexts[0] and "Latent interposer" in on.infotexts[0]


def test_a_shipped_direction_on_the_xyz_axis_and_pasted_back(neo):
    """xl-to-fx (shipped with the extension) is an axis value like the published directions; the image it makes
    pastes the explicit direction back into the script's dropdown."""
    from modules import scripts
    from modules.infotext_utils import apply_paste, parse_generation_parameters

    xyz = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    axis = next(option for option in xyz.axis_options if option.label == "Latent interposer")
    assert {"xl-to-fx", "v1-to-fx", "f2-to-v1"} <= set(axis.choices()) and "f2-to-xl" not in axis.choices()
    p = neo.make_p(hr_checkpoint_name="lumina2")
    p.scripts = neo.runner
    p.script_args = tuple(neo.script_args())
    (cell,) = xyz.run_cells(p, axis, ["xl-to-fx"])
    assert 'Latent interposer: "xl-to-fx, li-4, fp32, explicit"' in cell.infotexts[0]
    assert neo.hires_inputs[-1].x.shape[1] == 16
    params = parse_generation_parameters(cell.infotexts[0])
    updates = {c.label: v for c, v in apply_paste(neo.runner.infotext_fields, params).items()}
    assert updates["Enable Latent Interposer"] is True and updates["Interposer direction"] == "xl-to-fx"


def test_settings_exist_without_any_ui_settings_callback(neo):
    """--nowebui: no on_ui_settings callback ever runs; the options and their API reply must exist anyway."""
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
    assert all(config[s.key] == s.default for s in li_options.SETTINGS)
