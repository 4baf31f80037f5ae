"""The refiner switch across families in Forge Neo (SDXL base -> SD1.5 refiner), against the Neo stand-in: Neo's
``apply_refiner(self, x, sigma)`` (by sigma unless ``refiner_use_steps``, never with hires fix), every sampler Neo
lists converted completely or refused before the base pass, Neo's cond cache, and its timesteps samplers' scaled
copy of the state.

As in tests/webui/test_refiner.py: the "SDXL" base knows the photo; the "SD1.5" refiner knows only its details and must
take composition and colour from the latents it is handed."""

from __future__ import annotations

import sys

import pytest
import torch.nn.functional as F
from conftest import photo, requires_taesd
from neo_env import SIZE, add_checkpoint, boot, neo_modules
from test_neo_samplers import FLOW_ONLY, NEO_SAMPLERS

from interposer.images import psnr
from interposer.webui.forge import NEO_SAMPLERS as NEO_TABLE
from interposer.webui.generation import ATTRIBUTE

TITLE = "Latent Interposer"
REFUSED = {
    "LMS": "derivatives of up to four past steps, computed inside the sampler",
    "UniPC": "own corrected state and its own list of past x0 predictions",
    "ER SDE": "rate of change of its last two estimates (old_denoised_d), computed inside the sampler",
    "DPM++ 2M CFG++": "previous step's unconditional estimate",
}
# Kohaku makes three calls at one sigma per step (the second on -x): by steps the switch can fall inside a step.
REFUSED_BY_STEPS = {"Kohaku LoNyu Yog": "three model calls at one sigma, the second on the negated latent"}


@pytest.fixture
def neo(monkeypatch, tmp_path, tiny_vaes, linear_weights):
    with neo_modules():
        import fake_engines

        env = boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), linear_weights[0])
        refiner = lambda: fake_engines.StableDiffusion(tiny_vaes["v1"], env.photo, 0.1, detail_block=8)  # noqa: E731
        add_checkpoint("sd15_style", "sd15", refiner)
        yield env


def switch(webui, title=TITLE, **kwargs):
    """txt2img at 128 px (16x16 latents), 10 steps, SDXL base from noise, SD1.5 refiner, no hires fix (Neo runs
    no refiner with it). Neo switches at a sigma; ``refiner_use_steps`` makes 0.6 a step fraction as in A1111."""
    settings = dict(refiner_checkpoint="sd15_style", refiner_switch_at=0.6, steps=10, width=128, height=128,
                    enable_hr=False)  # fmt: skip
    settings.update(kwargs)
    processed = webui.generate(title, **settings)
    image = processed.images[0][None]
    return psnr(image, F.interpolate(webui.photo, size=image.shape[-2:], mode="area")), processed


def test_the_table_covers_neos_list_exactly():
    assert sorted(NEO_TABLE.samplers) == sorted(NEO_SAMPLERS)
    assert NEO_TABLE.support("Flux Realistic") is NEO_TABLE.support(FLOW_ONLY)  # Neo's other name for it


@requires_taesd  # a margin measured in the real latent spaces
@pytest.mark.parametrize("sampler", NEO_SAMPLERS)
def test_every_sampler_is_carried_across_completely_or_refused(neo, sampler):
    """Per sampler, switching by steps at 0.6 (Neo's refiner_use_steps): its whole state crosses the switch (the
    SD1.5 refiner then ends >= 5 dB closer to the photo than without the interposer), or the generation is
    refused before the base pass with a message naming the sampler and what to use instead."""
    from modules import shared

    shared.opts.data["refiner_use_steps"] = True
    refusal = REFUSED.get(sampler) or REFUSED_BY_STEPS.get(sampler)
    if refusal:
        with pytest.raises(Exception) as refused:
            switch(neo, sampler_name=sampler)
        message = str(refused.value)
        assert shared.sd_model.apply_calls == 0  # refused before the base pass; the refiner never loaded
        assert shared.sd_model.sd_checkpoint_info.short_title == "sdxl"
        assert f"cannot carry the {sampler} sampler across the xl-to-v1 refiner switch" in message
        assert refusal in message and "Euler, Euler a, DPM++ 2M" in message
        sys.stderr.write(f"\n{sampler}: refused: {message}\n")
        return
    if sampler == FLOW_ONLY:
        # Its flow-sigma formulas give NaN on an SD schedule (sigma > 1) before any switch, with or without the
        # interposer (Neo's behaviour); its conversion is checked where every sigma is below 1, in img2img below.
        return
    with_interposer, processed = switch(neo, sampler_name=sampler)
    assert 'Latent interposer refiner: "xl-to-v1, linear-fit, fp32, noise-preserving"' in processed.infotexts[0]
    assert "Refiner: sd15_style" in processed.infotexts[0]
    without, _ = switch(neo, title=None, sampler_name=sampler)
    sys.stderr.write(f"\n{sampler}: converted: {with_interposer:.2f} dB with, {without:.2f} dB without\n")
    assert with_interposer > without + 5.0, (sampler, with_interposer, without)


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M", "Kohaku LoNyu Yog", "DDIM"])
def test_the_default_switch_by_sigma(neo, sampler):
    """Neo's default: the first call whose sigma is <= the value (a UI slider of 0.1-1.0 'in sigmas'). Kohaku's
    three calls of a step share one sigma, so by sigma it always switches on a step's first call."""
    with_interposer, processed = switch(neo, sampler_name=sampler, refiner_switch_at=1.0)
    assert "Latent interposer refiner" in processed.infotexts[0]
    without, _ = switch(neo, title=None, sampler_name=sampler, refiner_switch_at=1.0)
    assert with_interposer > without + 5.0, (sampler, with_interposer, without)


def test_timesteps_samplers_convert_the_scaled_copy_the_refiner_runs_on(neo, monkeypatch):
    """DDIM/PLMS in Neo: forward scales the state into a new tensor before apply_refiner, and the refiner's first
    call runs on that copy; it must hold the converted state too (x' / sqrt(alpha))."""
    from modules import sd_samplers_common

    seen = {}
    original = sd_samplers_common.apply_refiner

    def spy(cfg_denoiser, x, sigma):
        switched = original(cfg_denoiser, x, sigma)
        if switched:
            seen["copy"] = x
        return switched

    monkeypatch.setattr(sd_samplers_common, "apply_refiner", spy)  # around the extension's own wrapper
    value, _ = switch(neo, sampler_name="DDIM", refiner_switch_at=1.0)
    assert "copy" in seen
    assert value > 17.0


@requires_taesd  # a margin measured in the real latent spaces
def test_the_flow_sampler_converts_in_img2img_below_sigma_one(neo):
    """DPM++ 2s a RF (Neo's "Flux Realistic") is convertible like DPM++ 2S a: x, and on its second call the step's
    main x. Its formulas need sigmas below 1: an img2img of the photo at low strength stays there."""
    from modules import shared

    shared.opts.data["latent_interposer_auto_apply"] = True
    image = F.interpolate(neo.photo, size=(128, 128), mode="area")
    settings = dict(init_images=[image], width=128, height=128, refiner_checkpoint="sd15_style", refiner_switch_at=0.5,
                    denoising_strength=0.2, steps=20, sampler_name=FLOW_ONLY)  # fmt: skip
    processed = neo.img2img(None, **settings)
    assert 'Latent interposer refiner: "xl-to-v1' in processed.infotexts[0]
    with_interposer = psnr(processed.images[0][None], image)
    shared.opts.data["latent_interposer_auto_apply"] = False
    without = psnr(neo.img2img(None, **settings).images[0][None], image)
    sys.stderr.write(f"\n{FLOW_ONLY} (img2img 0.2): {with_interposer:.2f} dB with, {without:.2f} dB without\n")
    assert with_interposer > without + 5.0, (with_interposer, without)


def test_a_second_identical_request_and_the_base_alone_work(neo, monkeypatch):
    """Neo computes the refiner's conds at the switch through its cond cache, keyed on the base checkpoint: without
    the extension's invalidation the SD1.5 refiner gets the SDXL conds (AssertionError), and the next SDXL
    generation the SD1.5 ones."""
    from interposer.webui.forge import ForgeNeo

    with monkeypatch.context() as without_fix:
        without_fix.setattr(ForgeNeo, "forget_cached_conds", lambda self, p: None)
        with pytest.raises(AssertionError):
            switch(neo, sampler_name="Euler", refiner_switch_at=1.0)
    for _ in range(2):
        value, _ = switch(neo, sampler_name="Euler", refiner_switch_at=1.0)
        assert value > 17.0
    plain = neo.generate(None, enable_hr=False, width=128, height=128, steps=10)
    assert len(plain.images) == 1
    assert ATTRIBUTE not in vars(neo.last_p)


def test_no_refiner_with_hires_fix_so_nothing_is_refused(neo):
    """Neo skips the refiner when hires fix is on ("[Error]Refiner does not support Hires. fix"): LMS is fine."""
    processed = neo.generate(TITLE, refiner_checkpoint="sd15_style", refiner_switch_at=1.0, sampler_name="LMS",
                             hr_checkpoint_name="Use same checkpoint")  # fmt: skip
    assert "Refiner:" not in processed.infotexts[0]
    assert any("Refiner does not support Hires. fix" in line for line in neo.console)


def test_reload_state_dict_only_is_refused_across_families(neo):
    from modules import shared

    shared.opts.data["refiner_fast_sd"] = True
    with pytest.raises(Exception, match=r"Reload \"state_dict\" Only' loads the refiner's UNet weights"):
        switch(neo, sampler_name="Euler", refiner_switch_at=1.0)
    assert shared.sd_model.apply_calls == 0


def test_a_channel_change_is_refused_early_with_hires_fix_suggested(neo):
    """Lumina 2 (FLUX.1 space, 16 channels) base, SD1.5 refiner: a running sampler's tensors cannot change shape."""
    from modules import shared

    with pytest.raises(Exception, match=r"changes the latent channels \(16 -> 4\).*Use hires fix"):
        switch(neo, sampler_name="Euler", refiner_switch_at=1.0,
               override_settings={"sd_model_checkpoint": "lumina2.safetensors"})  # fmt: skip
    assert shared.sd_model.apply_calls == 0


def test_restart_strategy_is_refused_for_a_two_call_sampler(neo):
    with pytest.raises(Exception, match="'Restart with fresh noise' refiner strategy cannot be used with Heun"):
        switch(neo, values=[True, "From settings", "From settings", "Restart with fresh noise"], sampler_name="Heun")


def test_img2img_refiner_through_the_companion(neo):
    from modules import shared

    shared.opts.data["latent_interposer_auto_apply"] = True
    image = F.interpolate(neo.photo, size=(128, 128), mode="area")
    settings = dict(init_images=[image], width=128, height=128, refiner_checkpoint="sd15_style", refiner_switch_at=1.0,
                    denoising_strength=0.75, steps=10)  # fmt: skip
    processed = neo.img2img(None, **settings)
    assert 'Latent interposer refiner: "xl-to-v1' in processed.infotexts[0]
    with_interposer = psnr(processed.images[0][None], image)
    shared.opts.data["latent_interposer_auto_apply"] = False
    without = psnr(neo.img2img(None, **settings).images[0][None], image)
    assert with_interposer > without + 5.0, (with_interposer, without)
