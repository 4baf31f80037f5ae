"""The refiner switch across families (SDXL base -> SD1.5 refiner) inside the sampler.

Stand-in: the k-diffusion update rules (Euler, Euler a, DPM++ 2M, DPM++ SDE), A1111's DDIM and a
UniPC-shaped solver, driven by the webui stand-in's CFGDenoiser.forward -> apply_refiner. The "SDXL"
base knows the photo; the "SD1.5" refiner knows only its details (finer than 8 latent pixels) and must
take composition and colour from the latents it is handed, as a real refiner does.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import photo, requires_taesd
from webui_env import SIZE, add_checkpoint, boot

from interposer.images import psnr
from interposer.webui import refiner as refiner_module
from interposer.webui.a1111 import A1111_SAMPLERS
from interposer.webui.generation import ATTRIBUTE

TITLE = "Latent Interposer"
# The hires pass's switch (img2img inside hires fix) per kind of sampler: one-call, two-call, timesteps; every
# sampler's first-pass switch is covered by test_every_sampler_is_carried_across_completely_or_refused.
SAMPLERS = ["Euler", "DPM++ SDE", "DDIM"]
# Every sampler A1111 1.10.1 lists, in its order (k-diffusion, timesteps, LCM).
WEBUI_SAMPLERS = ["DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
                  "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM",
                  "DDIM CFG++", "PLMS", "UniPC", "LCM"]  # fmt: skip
REFUSED = {
    "LMS": "derivatives of up to four past steps, computed inside the sampler",
    "DPM adaptive": "previous accepted state and its controller's past errors",
    "UniPC": "own corrected state and its own list of past x0 predictions",
}


@pytest.fixture
def webui(monkeypatch, tmp_path, tiny_vaes, linear_weights):
    from fake_models import FakeModel

    env = boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), linear_weights[0])
    for name, kind, family in (("sd15_style", "v1", "v1"), ("sdxl_refiner", "xl-refiner", "xl")):
        add_checkpoint(
            name, kind, lambda family=family: FakeModel(family, tiny_vaes[family], env.photo, 0.1, detail_block=8)
        )
    return env


def refine(webui, title=TITLE, hires=True, **kwargs):
    """SDXL first pass, then a hires img2img pass from its latents plus noise, refiner at 0.6 in that pass."""
    settings = dict(refiner_checkpoint="sd15_style", refiner_switch_at=0.6, steps=20, hr_second_pass_steps=20,
                    denoising_strength=0.75, sampler_name="Euler")  # fmt: skip
    settings.update(kwargs)
    if hires:
        settings.setdefault("hr_checkpoint_name", "Use same checkpoint")
    else:
        settings["enable_hr"] = False
    processed = webui.generate(title, **settings)
    image = processed.images[0][None]
    return psnr(image, F.interpolate(webui.photo, size=image.shape[-2:], mode="area")), processed


def small_switch(webui, title=TITLE, **kwargs):
    """txt2img at 128 px (16x16 latents), 10 steps, SDXL base from noise, SD1.5 refiner at 0.6: quick."""
    settings = dict(refiner_checkpoint="sd15_style", refiner_switch_at=0.6, steps=10, width=128, height=128,
                    enable_hr=False)  # fmt: skip
    settings.update(kwargs)
    processed = webui.generate(title, **settings)
    image = processed.images[0][None]
    return psnr(image, F.interpolate(webui.photo, size=image.shape[-2:], mode="area")), processed


def refiner_lines(webui):
    return [line for line in webui.console if "refiner: " in line]


@requires_taesd  # a margin measured in the real latent spaces
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_noise_preserving_switch_ends_close_to_the_photo(webui, sampler):
    with_interposer, processed = refine(webui, sampler_name=sampler)
    assert len(refiner_lines(webui)) == 1
    assert 'Latent interposer refiner: "xl-to-v1, linear-fit, fp32, noise-preserving"' in processed.infotexts[0]
    assert "Refiner: sd15_style" in processed.infotexts[0]
    without, _ = refine(webui, title=None, sampler_name=sampler)
    assert with_interposer > 19.0, (sampler, with_interposer)
    assert with_interposer > without + 5.0, (sampler, with_interposer, without)


def test_the_list_is_the_webuis():
    from modules import sd_samplers

    assert [s.name for s in sd_samplers.all_samplers] == WEBUI_SAMPLERS
    assert sorted(A1111_SAMPLERS.samplers) == sorted(WEBUI_SAMPLERS)


@requires_taesd  # a margin measured in the real latent spaces
@pytest.mark.parametrize("sampler", WEBUI_SAMPLERS)
def test_every_sampler_is_carried_across_completely_or_refused(webui, sampler):
    """Per sampler: its whole state crosses the switch (the SD1.5 refiner then lands >= 5 dB closer to the
    photo than without the interposer), or the generation is refused with a message naming the sampler
    and what to use instead. LCM's sigma-based switch always falls on its first call (its 50-step
    schedule maps every sigma to a ratio >= 0.95), so it switches by steps here."""
    from modules import shared

    shared.opts.data["refiner_switch_by_sample_steps"] = sampler == "LCM"
    if sampler in REFUSED:
        with pytest.raises(refiner_module.RefinerSwitchError) as refused:
            small_switch(webui, sampler_name=sampler)
        message = str(refused.value)
        assert shared.sd_model.apply_calls == 0  # refused before the first pass, the refiner never loaded
        assert shared.sd_model.sd_checkpoint_info.short_title == "sdxl_base"
        assert f"cannot carry the {sampler} sampler across the xl-to-v1 refiner switch" in message
        assert REFUSED[sampler] in message and "Use Euler, Euler a, DPM++ 2M" in message
        sys.stderr.write(f"\n{sampler}: refused: {message}\n")
        return
    with_interposer, processed = small_switch(webui, sampler_name=sampler)
    assert 'Latent interposer refiner: "xl-to-v1, linear-fit, fp32, noise-preserving"' in processed.infotexts[0]
    without, _ = small_switch(webui, title=None, sampler_name=sampler)
    sys.stderr.write(f"\n{sampler}: converted: {with_interposer:.2f} dB with, {without:.2f} dB without\n")
    assert with_interposer > without + 5.0, (sampler, with_interposer, without)


def _spy_history(monkeypatch):
    """The kept calls (tensors and their values) at the switch, before and after the conversion, and the
    interposer applied to each value before (what a converted clean estimate must become)."""
    seen = {}
    original = refiner_module.carry_across_switch

    def spy(generation, denoiser, x, sigma, before, *rest):
        calls = list(denoiser.__dict__[refiner_module._HISTORY])
        seen.update(step=denoiser.step, calls=calls, x_before=[c.x.clone() for c in calls],
                    out_before=[c.out.clone() for c in calls], denoiser=denoiser)  # fmt: skip
        original(generation, denoiser, x, sigma, before, *rest)
        dirn = generation.reports[-1].direction
        seen["converted_out"] = [generation.converter.run(c, dirn)[0] for c in seen["out_before"]]
        seen["x_after"] = [c.x.clone() for c in calls]
        seen["out_after"] = [c.out.clone() for c in calls]

    monkeypatch.setattr(refiner_module, "carry_across_switch", spy)
    return seen


def test_lcm_switches_by_sigma_at_its_first_call(webui):
    """Why the sampler test switches LCM by steps: its 50-step schedule maps every sigma to a completed ratio
    of at least 0.95, so a sigma-based switch at 0.6 happens at the first call, on pure noise."""
    small_switch(webui, sampler_name="LCM")
    assert any("switch at the first step, the state is pure noise" in line for line in webui.console)
    assert not any("refiner: xl-to-v1" in line for line in webui.console)  # nothing to convert yet


def test_dpmpp_3m_sde_converts_both_past_estimates_in_place(webui, monkeypatch):
    """DPM++ 3M SDE keeps denoised_1 and denoised_2, the outputs of the two previous calls."""
    seen = _spy_history(monkeypatch)
    small_switch(webui, sampler_name="DPM++ 3M SDE")
    assert len(seen["calls"]) >= 2
    for index in (-1, -2):
        assert torch.allclose(seen["out_after"][index], seen["converted_out"][index], atol=1e-5), index
        assert not torch.allclose(seen["out_after"][index], seen["out_before"][index])


def test_dpm_fast_converts_the_steps_main_state_two_calls_back(webui, monkeypatch):
    """DPM fast with 10 model calls runs steps of order 3, 3, 3, 1; switching by steps at 0.8 falls on call 8,
    the third call of the third step, whose main x is the input of call 6 (two calls back)."""
    from modules import shared

    shared.opts.data["refiner_switch_by_sample_steps"] = True
    seen = _spy_history(monkeypatch)
    small_switch(webui, sampler_name="DPM fast", refiner_switch_at=0.8)
    assert seen["step"] == 8
    main = -2
    moved = seen["x_after"][main] - seen["x_before"][main]
    assert torch.allclose(moved, seen["converted_out"][main] - seen["out_before"][main], atol=1e-5)


def test_plms_restarts_its_eps_history_with_the_refiners_eps(webui, monkeypatch):
    """PLMS's old_eps are the eps the base model returned; after the switch call they hold the refiner's eps."""
    seen = _spy_history(monkeypatch)
    refiner_eps = []
    original = refiner_module._restart_eps_history
    monkeypatch.setattr(refiner_module, "_restart_eps_history",
                        lambda calls, eps: (refiner_eps.append(eps.clone()), original(calls, eps)))  # fmt: skip
    small_switch(webui, sampler_name="PLMS")
    assert len(seen["calls"]) == refiner_module.HISTORY_LENGTH and len(refiner_eps) == 1
    for call, before in zip(seen["calls"], seen["out_before"], strict=True):
        assert torch.equal(call.out, refiner_eps[0]) and not torch.equal(before, refiner_eps[0])


@pytest.mark.parametrize("sampler", ["Heun", "DPM++ SDE", "PLMS", "DPM fast"])
def test_restart_strategy_is_refused_where_the_sampler_keeps_old_noise(webui, sampler):
    from modules import shared

    shared.opts.data["latent_interposer_refiner_strategy"] = "Restart with fresh noise"
    with pytest.raises(refiner_module.RefinerSwitchError, match=re.escape(f"cannot be used with {sampler} across")):
        small_switch(webui, sampler_name=sampler)


@requires_taesd  # a margin measured in the real latent spaces
@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M"])
def test_first_pass_from_noise(webui, sampler):
    """txt2img without hires: the base samples from pure noise, the refiner takes over at 0.6."""
    with_interposer, _ = refine(webui, hires=False, sampler_name=sampler)
    without, _ = refine(webui, title=None, hires=False, sampler_name=sampler)
    assert with_interposer > 18.0 and with_interposer > without + 5.0, (with_interposer, without)


@requires_taesd  # a margin measured in the real latent spaces
@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M", "DDIM"])
def test_restart_strategy(webui, sampler):
    from modules import shared

    shared.opts.data["latent_interposer_refiner_strategy"] = "Restart with fresh noise"
    value, processed = refine(webui, sampler_name=sampler)
    assert value > 19.0
    assert processed.infotexts[0].count("restart") == 1
    again, _ = refine(webui, sampler_name=sampler)
    assert again == value  # the fresh noise is seeded: same seed, same image
    shared.opts.data["latent_interposer_refiner_noise_boost"] = 0.5
    boosted, _ = refine(webui, sampler_name=sampler)
    assert boosted != value


def _spy_switch(monkeypatch):
    """Record the sampler tensors at the switch, before and after the in-place conversion."""
    seen = {}
    original = refiner_module.carry_across_switch

    def spy(generation, denoiser, x, sigma, before, *rest):
        history = denoiser.__dict__[refiner_module._HISTORY]
        prev_x, prev_denoised = history[-1].x, history[-1].out
        seen.update(step=denoiser.step, x=x, x_before=x.clone(), prev_x=prev_x, prev_x_before=prev_x.clone(),
                    prev_denoised=prev_denoised, prev_denoised_before=prev_denoised.clone())  # fmt: skip
        original(generation, denoiser, x, sigma, before, *rest)
        seen["converted_x0"] = denoiser.sampler.last_latent

    monkeypatch.setattr(refiner_module, "carry_across_switch", spy)
    return seen


def test_dpmpp_2m_history_is_converted_in_place(webui, monkeypatch):
    """DPM++ 2M keeps the previous denoised tensor as old_denoised: it is the object forward returned,
    so it is converted in place together with x, and x keeps its noise part."""
    seen = _spy_switch(monkeypatch)
    refine(webui, sampler_name="DPM++ 2M")
    assert torch.equal(seen["prev_denoised"], seen["converted_x0"])
    assert not torch.allclose(seen["prev_denoised_before"], seen["converted_x0"])
    noise_before = seen["x_before"] - seen["prev_denoised_before"]
    noise_after = seen["x"] - seen["converted_x0"]
    assert torch.allclose(noise_before, noise_after, atol=1e-5)


def test_second_order_switch_on_the_midpoint_call_converts_the_steps_main_state(webui, monkeypatch):
    """DPM++ SDE calls the model twice per step. A switch on the second call must also convert the step's
    main x (the first call's input), which the sampler combines with the second call's output."""
    from modules import shared

    shared.opts.data["refiner_switch_by_sample_steps"] = True  # switch at a step count we choose
    seen = _spy_switch(monkeypatch)
    # The hires pass runs its 20 steps (of a 26-step schedule), 40 model calls; switch at call 21 (odd).
    value, _ = refine(webui, sampler_name="DPM++ SDE", refiner_switch_at=20.5 / 40)
    assert seen["step"] % 2 == 1  # the second model call of a step
    assert seen["prev_x"] is not seen["x"]
    moved = seen["prev_x"] - seen["prev_x_before"]
    expected = seen["converted_x0"] - seen["prev_denoised_before"]
    assert torch.allclose(moved, expected, atol=1e-5)
    assert value > 19.0


def test_unipc_is_refused_with_a_clear_message(webui):
    with pytest.raises(Exception, match="cannot carry the UniPC sampler across the xl-to-v1 refiner switch"):
        refine(webui, sampler_name="UniPC")
    assert ATTRIBUTE not in vars(webui.last_p)
    assert not webui.hires_inputs  # before the first pass, not after it


def test_channel_changing_refiner_is_refused(webui):
    with pytest.raises(Exception, match=r"changes the latent channels \(4 -> 16\)"):
        refine(webui, refiner_checkpoint="sd3_medium")


@requires_taesd  # a margin measured in the real latent spaces
def test_same_family_refiner_is_left_alone(webui):
    value, processed = refine(webui, refiner_checkpoint="sdxl_refiner")
    assert not refiner_lines(webui)
    assert "Latent interposer refiner" not in processed.infotexts[0]
    assert value > 19.0


def test_hook_is_inactive_without_the_interposer(webui):
    from modules import sd_samplers_cfg_denoiser

    created = []
    original_init = sd_samplers_cfg_denoiser.CFGDenoiser.__init__

    def track(self, sampler):
        original_init(self, sampler)
        created.append(self)

    sd_samplers_cfg_denoiser.CFGDenoiser.__init__ = track
    try:
        _, processed = refine(webui, title=None)
    finally:
        sd_samplers_cfg_denoiser.CFGDenoiser.__init__ = original_init
    assert "Refiner: sd15_style" in processed.infotexts[0]  # the webui's own switch still happened
    assert created and all(refiner_module._HISTORY not in vars(d) for d in created)
    assert not refiner_lines(webui)


def test_repeated_generations_convert_once_each(webui):
    refine(webui)
    refine(webui, n_iter=2)
    assert len(refiner_lines(webui)) == 3  # one per batch: 1 + 2


def test_refiner_in_the_first_pass_then_hires_back_to_the_base(webui):
    """hires_fix_refiner_pass = first pass: xl -> v1 at the switch, then the hires pass reloads the SDXL
    base and the interposer converts v1 -> xl for it, from the family the latents are really in."""
    from modules import shared

    shared.opts.data["hires_fix_refiner_pass"] = "first pass"
    value, _ = refine(webui)
    lines = [line for line in webui.console if "xl-to-v1" in line or "v1-to-xl" in line]
    assert "refiner: xl-to-v1" in lines[0] and "hires: v1-to-xl" in lines[1]
    assert value > 15.0


@requires_taesd  # a margin measured in the real latent spaces
def test_interrupt_right_after_the_switch_returns_converted_latents(webui, monkeypatch):
    from modules import shared

    original = refiner_module.carry_across_switch

    def switch_then_interrupt(*args):
        original(*args)
        shared.state.interrupted = True

    monkeypatch.setattr(refiner_module, "carry_across_switch", switch_then_interrupt)
    try:
        value, _ = refine(webui, hires=False)
    finally:
        shared.state.interrupted = False
    assert value > 17.0  # the sampler's last_latent (decoded by the SD1.5 VAE) is the converted estimate


def test_pasting_restores_the_refiner_strategy(webui):
    from modules import shared
    from modules.infotext_utils import apply_paste, parse_generation_parameters

    shared.opts.data["latent_interposer_refiner_strategy"] = "Restart with fresh noise"
    _, processed = refine(webui)
    params = parse_generation_parameters(processed.infotexts[0])
    updates = {c.label: v for c, v in apply_paste(webui.runner.infotext_fields, params).items()}
    assert updates["Interposer refiner strategy"] == "Restart with fresh noise"
    assert updates["Script"] == TITLE


def test_hook_is_removed_on_script_reload_and_never_stacked(webui):
    from modules import script_callbacks, scripts, sd_samplers_cfg_denoiser, sd_samplers_common

    assert getattr(sd_samplers_cfg_denoiser.CFGDenoiser.forward, refiner_module._MARK, None) is not None
    script_callbacks.script_unloaded_callback()
    assert getattr(sd_samplers_cfg_denoiser.CFGDenoiser.forward, refiner_module._MARK, None) is None
    assert getattr(sd_samplers_common.apply_refiner, refiner_module._MARK, None) is None
    for _ in range(2):  # loading twice (e.g. after a failed unload) still wraps only once
        scripts.load_scripts()
    forward = sd_samplers_cfg_denoiser.CFGDenoiser.forward
    assert getattr(forward, refiner_module._MARK, None) is not None
    assert getattr(forward.__wrapped__, refiner_module._MARK, None) is None
    script_callbacks.script_unloaded_callback()


@requires_taesd  # a margin measured in the real latent spaces
def test_after_a_pixel_upscaler_the_latents_are_in_the_hires_models_space(webui):
    """Pixel upscalers re-encode with the hires VAE: an SD1.5 hires pass switching to an SDXL refiner
    must convert v1 -> xl, whatever the first pass was."""
    value, processed = refine(webui, hr_upscaler="Lanczos", hr_checkpoint_name="sd15_style",
                              refiner_checkpoint="sdxl_refiner")  # fmt: skip
    assert any("refiner: v1-to-xl" in line for line in refiner_lines(webui))
    assert "Latent interposer:" not in processed.infotexts[0]  # no hires conversion: pixels crossed
    without, _ = refine(webui, title=None, hr_upscaler="Lanczos", hr_checkpoint_name="sd15_style",
                        refiner_checkpoint="sdxl_refiner")  # fmt: skip
    assert value > without + 3.0, (value, without)


def test_a_same_config_refiner_is_loaded_into_the_same_model_object(webui, tiny_vaes):
    """The webui loads a same-config checkpoint's weights into the loaded model object, so what the base
    model was must be read before the switch. Here the base is of a kind the webui does not flag (no
    family), the refiner an SD1.5 checkpoint of the same config: the refusal must name the base."""
    from fake_models import FakeModel
    from modules import shared

    def unflagged():
        model = FakeModel("v1", tiny_vaes["v1"], webui.photo)
        model.is_sd1 = False  # e.g. a model type the webui loads with the SD1 config but does not flag
        return model

    add_checkpoint("mystery_base", "v1", unflagged)
    seen = []
    original = refiner_module.carry_across_switch
    refiner_module.carry_across_switch = lambda *args: (seen.append(shared.sd_model), original(*args))
    try:
        with pytest.raises(Exception, match="involves 'mystery_base', whose latent space is unknown"):
            refine(webui, override_settings={"sd_model_checkpoint": "mystery_base"})
    finally:
        refiner_module.carry_across_switch = original
    assert seen[0] is webui.hires_inputs[-1].model  # the hires pass started on this very object
    assert seen[0].sd_checkpoint_info.short_title == "sd15_style"


def _img2img(webui, title=None, side=128, **kwargs):
    """img2img of the photo on the SDXL base, SD1.5 refiner at 0.6; PSNR of the result against the photo."""
    image = F.interpolate(webui.photo, size=(side, side), mode="area")
    settings = dict(init_images=[image], width=side, height=side, refiner_checkpoint="sd15_style",
                    refiner_switch_at=0.6, denoising_strength=0.75)  # fmt: skip
    settings.update(kwargs)
    processed = webui.img2img(title, **settings)
    return psnr(processed.images[0][None], image), processed


def test_img2img_refiner_is_converted_by_the_companion(webui):
    """1.10.1 has the Refiner in img2img too: with Apply automatically, the companion script converts there."""
    from modules import shared

    assert TITLE not in [s.title() for s in webui.runner_img2img.selectable_scripts]  # the dropdown: txt2img only
    assert "Latent Interposer (automatic)" in [s.title() for s in webui.runner_img2img.alwayson_scripts]
    shared.opts.data["latent_interposer_auto_apply"] = True
    with_interposer, processed = _img2img(webui)
    assert 'Latent interposer refiner: "xl-to-v1, linear-fit, fp32, noise-preserving"' in processed.infotexts[0]
    assert ATTRIBUTE not in vars(webui.last_p) and "sample" not in vars(webui.last_p)  # detached afterwards
    shared.opts.data["latent_interposer_auto_apply"] = False
    without, processed = _img2img(webui)
    assert "Latent interposer" not in processed.infotexts[0]
    sys.stderr.write(f"\nimg2img: {with_interposer:.2f} dB with, {without:.2f} dB without\n")
    assert with_interposer > without + 5.0, (with_interposer, without)


def test_img2img_inpainting_blends_the_converted_init_latents(webui):
    """With a mask, the webui blends p.init_latent (encoded by the SDXL VAE) into the result outside the mask,
    after sampling: it must be in the refiner's space then, and back in the base's for the next image."""
    from modules import shared

    mask = torch.zeros(1, 1, 128, 128)
    mask[..., :, 64:] = 1.0  # repaint the right half, keep the left half from the init image
    shared.opts.data["latent_interposer_auto_apply"] = True
    with_interposer, _ = _img2img(webui, mask=mask)
    p = webui.last_p
    image = F.interpolate(webui.photo, size=(128, 128), mode="area")
    assert torch.allclose(p.init_latent, webui.vaes["xl"].encode(image), atol=1e-3)  # the base's, put back
    assert ATTRIBUTE not in vars(p)
    shared.opts.data["latent_interposer_auto_apply"] = False
    without, _ = _img2img(webui, mask=mask)
    sys.stderr.write(f"\nimg2img inpainting: {with_interposer:.2f} dB with, {without:.2f} dB without\n")
    assert with_interposer > without + 5.0, (with_interposer, without)


def test_img2img_batch_count_two_starts_each_batch_on_the_base(webui):
    """img2img keeps one sampler for all batches; after the first batch's switch its denoiser wraps the SD1.5
    refiner, which the webui unloads when it reloads the SDXL base for the second batch (different config)."""
    from modules import shared

    shared.opts.data["latent_interposer_auto_apply"] = True
    value, processed = _img2img(webui, n_iter=2)
    assert len(processed.images) == 2 and len(refiner_lines(webui)) == 2
    second = psnr(processed.images[1][None], F.interpolate(webui.photo, size=(128, 128), mode="area"))
    assert value > 17.0 and second > 17.0, (value, second)


@pytest.fixture
def counted(webui):
    """Refiner and inpainting checkpoints of known kinds; returns a function telling what ran."""
    from fake_models import FakeModel
    from modules import sd_models, shared

    inpainting = lambda: FakeModel("v1", webui.vaes["v1"], webui.photo, conditioning_key="hybrid")  # noqa: E731
    add_checkpoint("sd15_inpainting", "v1-inpainting", inpainting)
    sd_models.reload_model_weights()  # the base, as the webui has it loaded at start-up
    start = sd_models.load_count

    def ran():
        return {"model calls": shared.sd_model.apply_calls, "loads": sd_models.load_count - start,
                "model": shared.sd_model.sd_checkpoint_info.short_title}  # fmt: skip

    return ran


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sampler_name": "UniPC"}, "cannot carry the UniPC sampler across the xl-to-v1 refiner switch"),
        ({"sampler_name": "LMS"}, "cannot carry the LMS sampler"),
        ({"refiner_checkpoint": "sd3_medium"}, r"changes the latent channels \(4 -> 16\)"),
        ({"refiner_checkpoint": "sd15_inpainting"}, "'sd15_inpainting' is an inpainting"),
        ({"sampler_name": "Heun", "strategy": "Restart with fresh noise"}, "strategy cannot be used with Heun"),
    ],
    ids=["unipc", "lms", "channels", "inpainting", "restart-heun"],
)
@pytest.mark.parametrize("mode", ["script", "automatic"])
def test_refusals_come_before_the_first_pass(webui, counted, settings, message, mode):
    """Known before sampling: the base (loaded), the refiner's family (its file's keys), sampler, strategy."""
    from modules import shared

    settings = dict(settings)
    shared.opts.data["latent_interposer_refiner_strategy"] = settings.pop("strategy", "Noise-preserving")
    shared.opts.data["latent_interposer_auto_apply"] = mode == "automatic"
    with pytest.raises(refiner_module.RefinerSwitchError, match=message):
        small_switch(webui, title=TITLE if mode == "script" else None, **settings)
    assert counted() == {"model calls": 0, "loads": 0, "model": "sdxl_base"}
    assert ATTRIBUTE not in vars(webui.last_p) and "sample" not in vars(webui.last_p)


def test_hires_pass_refusal_uses_the_hires_checkpoint_and_sampler(webui, counted):
    """Refiner in the hires pass: SD1.5 hires checkpoint, SDXL refiner, UniPC only as the hires sampler."""
    with pytest.raises(refiner_module.RefinerSwitchError, match="cannot carry the UniPC sampler across the v1-to-xl"):
        refine(webui, hr_checkpoint_name="sd15_style", refiner_checkpoint="sdxl_refiner", hr_sampler_name="UniPC")
    assert counted()["model calls"] == 0 and not webui.hires_inputs


def test_no_refusal_where_the_webui_does_not_switch_across_families(webui, counted):
    """UniPC is fine when no switch crosses families: the hires checkpoint *is* the refiner (the webui does not
    switch in that pass), or the refiner is of the base's family."""
    refine(webui, sampler_name="UniPC", hr_checkpoint_name="sd15_style", refiner_checkpoint="sd15_style")
    assert not refiner_lines(webui)
    value, _ = small_switch(webui, sampler_name="UniPC", refiner_checkpoint="sdxl_refiner")
    assert value > 15.0


def test_a_refiner_whose_family_is_not_known_early_is_refused_at_the_switch(webui, counted, tmp_path):
    """A config file next to the checkpoint decides its architecture in the webui, so its keys prove nothing:
    not refused early, but at the switch (the backstop), once the refiner is loaded and flagged."""
    from modules import sd_models

    info = sd_models.get_closet_checkpoint_match("sd15_style")
    (Path(info.filename).with_suffix(".yaml")).write_text("model: {}\n")
    with pytest.raises(refiner_module.RefinerSwitchError, match="cannot carry the UniPC sampler"):
        small_switch(webui, sampler_name="UniPC")
    assert counted() == {"model calls": 0, "loads": 1, "model": "sd15_style"}  # refused once the refiner loaded


def _header_file(folder, name, tensors):
    from safetensors.torch import save_file

    path = folder / name
    save_file({key: torch.zeros(shape, dtype=torch.float16) for key, shape in tensors.items()}, str(path))
    return path


def test_checkpoint_kinds_from_real_key_names_and_shapes(tmp_path):
    """Key names and UNet input shapes as the published checkpoints have them (other tensors left out)."""
    from interposer.webui.families import checkpoint_kind

    clip_l = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
    unet_in = "model.diffusion_model.input_blocks.0.0.weight"
    cases = {
        "sd15.safetensors": ({clip_l: [77, 768], unet_in: [320, 4, 3, 3]}, ("v1", False)),
        "sd15_inpaint.safetensors": ({clip_l: [77, 768], unet_in: [320, 9, 3, 3]}, ("v1", True)),
        "ip2p.safetensors": ({clip_l: [77, 768], unet_in: [320, 8, 3, 3]}, ("v1", True)),
        "sd21.safetensors": ({"cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": [3072, 1024],
                              unet_in: [320, 4, 3, 3]}, ("v1", False)),
        "sdxl.safetensors": ({"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": [768],
                              "conditioner.embedders.1.model.ln_final.weight": [1280], unet_in: [320, 4, 3, 3]},
                             ("xl", False)),
        "sdxl_inpaint.safetensors": ({"conditioner.embedders.1.model.ln_final.weight": [1280],
                                      unet_in: [320, 9, 3, 3]}, ("xl", True)),
        "sdxl_refiner.safetensors": ({"conditioner.embedders.0.model.ln_final.weight": [1280],
                                      unet_in: [384, 4, 3, 3]}, ("xl", False)),
        "sd3.safetensors": ({"model.diffusion_model.x_embedder.proj.weight": [1536, 16, 2, 2]}, ("v3", False)),
        "flux.safetensors": ({"model.diffusion_model.double_blocks.0.img_attn.proj.weight": [8, 8]}, None),
        "lora.safetensors": ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [4, 320]}, None),
    }  # fmt: skip
    for name, (tensors, expected) in cases.items():
        kind = checkpoint_kind(_header_file(tmp_path, name, tensors))
        assert (None if kind is None else (kind.family.key, kind.image_conditioned)) == expected, name
    pickle = tmp_path / "sd15.ckpt"
    pickle.write_bytes(b"PK\x03\x04 a zip of pickles")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert checkpoint_kind(pickle) is None and checkpoint_kind(broken) is None and checkpoint_kind(None) is None
