"""Forge Neo's samplers on the Neo stand-in (tests/standins/neo): the list Neo serves, every sampler running a plain
txt2img onto the photo, and the model-call structure a refiner switch in the middle of sampling depends on
(Kohaku's negated state, DDIM/PLMS's scaled copy, LCM's fresh tensors)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import photo
from neo_env import SIZE, boot, neo_modules

from interposer.images import psnr

# Neo's all_samplers (= GET /sdapi/v1/samplers): k-diffusion (kdiff.py 14-31), timesteps (ts.py 13-16), CFG++
# (forge_alter_samplers.py 46-50), in that order.
NEO_SAMPLERS = ["DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 3M SDE", "DPM++ 2s a RF", "Euler a", "Euler",
                "ER SDE", "LCM", "LMS", "Heun", "DPM2", "Res Multistep", "Kohaku LoNyu Yog", "Restart", "UniPC",
                "DDIM", "PLMS", "DPM++ 2M CFG++", "Euler a CFG++", "Euler CFG++"]  # fmt: skip
# Its formulas are for flow sigmas in [0, 1]: log((1 - sigma) / sigma) is NaN for sigma > 1, so on an SD-like
# schedule (sigma_max ~14.6) Neo's DPM++ 2s a RF produces NaN latents from its first step.
FLOW_ONLY = "DPM++ 2s a RF"
STEPS = 10


@pytest.fixture
def neo(monkeypatch, tmp_path, tiny_vaes):
    """test_neo.py's ``neo`` with an empty weights folder: a plain txt2img never reads one, and fitting the
    ``linear_weights`` would cost more than this whole file."""
    (tmp_path / "weights").mkdir()
    with neo_modules():
        yield boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), tmp_path / "weights")


def plain_txt2img(webui, sampler: str, **kwargs):
    """txt2img at 128 px (16x16 latents), 10 steps, no hires fix, no refiner, on the SDXL stand-in."""
    settings = dict(sampler_name=sampler, steps=STEPS, width=128, height=128, enable_hr=False)
    settings.update(kwargs)
    return webui.generate(None, **settings)


def image_psnr(webui, processed) -> float:
    image = processed.images[0][None]
    return psnr(image, F.interpolate(webui.photo, size=image.shape[-2:], mode="area"))


def spy_forward(monkeypatch):
    """Every ``CFGDenoiser.forward`` call: the tensor it got, its sigma (both the objects) and what it returned,
    with the values at the time of the call."""
    from modules import sd_samplers_cfg_denoiser

    calls = []
    original = sd_samplers_cfg_denoiser.CFGDenoiser.forward

    def forward(denoiser, x, sigma, *args, **kwargs):
        x_value = x.clone()
        out = original(denoiser, x, sigma, *args, **kwargs)
        calls.append({"x": x, "x_value": x_value, "sigma": sigma.clone(), "out": out, "out_value": out.clone()})
        return out

    monkeypatch.setattr(sd_samplers_cfg_denoiser.CFGDenoiser, "forward", forward)
    return calls


def test_the_list_is_neos(neo):
    from modules import sd_samplers
    from modules_forge import forge_alter_samplers

    assert [s.name for s in sd_samplers.all_samplers] == NEO_SAMPLERS
    options = {s.name: s.options for s in sd_samplers.all_samplers}
    for data in forge_alter_samplers.samplers_data_alter:  # copied from the base sampler's entry
        assert data.options == options[data.name.removesuffix(" CFG++")]
    assert options["DPM++ 2M CFG++"] == {"scheduler": "karras"}


@pytest.mark.parametrize("sampler", NEO_SAMPLERS)
def test_every_sampler_runs_a_plain_txt2img_onto_the_photo(neo, monkeypatch, sampler):
    from modules import sd_samplers_common, shared

    results = []
    original = sd_samplers_common.Sampler.launch_sampling

    def launch_sampling(self, steps, func):
        results.append(original(self, steps, func))
        return results[-1]

    monkeypatch.setattr(sd_samplers_common.Sampler, "launch_sampling", launch_sampling)
    processed = plain_txt2img(neo, sampler)
    assert len(results) == 1 and shared.sd_model.apply_calls > 0
    if sampler == FLOW_ONLY:
        assert not torch.isfinite(results[0]).any(), "Neo's DPM++ 2s a RF gives NaN on an SD schedule"
        return
    assert torch.isfinite(results[0]).all()
    assert image_psnr(neo, processed) > 15.0, sampler


def test_kohaku_calls_the_model_on_the_negated_state_three_times_per_step_at_one_sigma(neo, monkeypatch):
    calls = spy_forward(monkeypatch)
    plain_txt2img(neo, "Kohaku LoNyu Yog")
    first_half = STEPS // 2 + 1  # steps i <= N / 2
    assert len(calls) == 3 * first_half + (STEPS - first_half)
    for step in range(first_half):
        main, mirrored, third = calls[3 * step : 3 * step + 3]
        assert mirrored["x"] is not main["x"] and torch.equal(mirrored["x_value"], -main["x_value"])
        assert torch.equal(main["sigma"], mirrored["sigma"]) and torch.equal(main["sigma"], third["sigma"])
        assert third["x"] is not main["x"] and third["x"] is not mirrored["x"]
    sigmas = [float(call["sigma"][0]) for call in calls[3 * first_half :]]
    assert sigmas == sorted(sigmas, reverse=True) and len(set(sigmas)) == len(sigmas)


@pytest.mark.parametrize("sampler", ["DDIM", "PLMS"])
def test_ddim_and_plms_refine_a_scaled_copy_and_their_denoiser_has_no_alphas(neo, monkeypatch, sampler):
    from modules import sd_samplers_common, shared

    calls = spy_forward(monkeypatch)
    seen = []
    original = sd_samplers_common.apply_refiner

    def apply_refiner(cfg_denoiser, x, sigma):
        seen.append((x, x.clone(), sigma.clone(), cfg_denoiser))
        return original(cfg_denoiser, x, sigma)

    monkeypatch.setattr(sd_samplers_common, "apply_refiner", apply_refiner)
    processed = plain_txt2img(neo, sampler)
    assert image_psnr(neo, processed) > 15.0
    assert len(seen) == len(calls) == STEPS - 1 + (sampler == "PLMS")  # PLMS: a second call in its first step
    denoiser = seen[0][3]
    assert not hasattr(denoiser, "alphas") and denoiser.classic_ddim_eps_estimation
    assert denoiser.inner_model.inner_model is shared.sd_model
    predictor = shared.sd_model.forge_objects.unet.model.predictor
    assert torch.allclose(shared.sd_model.alphas_cumprod, 1 / (predictor.sigmas**2 + 1))
    for call, (x, x_value, sigma, _) in zip(calls, seen, strict=True):
        assert x is not call["x"]  # a new tensor made in forward, not the sampler's
        assert float(call["sigma"][0]) == int(call["sigma"][0]) and float(sigma) < 15  # a timestep in, a sigma out
        assert torch.allclose(x_value, call["x_value"] * (sigma**2 + 1) ** 0.5)


def test_lcm_never_hands_the_returned_tensor_back_nor_changes_it(neo, monkeypatch):
    calls = spy_forward(monkeypatch)
    processed = plain_txt2img(neo, "LCM")
    assert image_psnr(neo, processed) > 15.0 and len(calls) == STEPS
    outputs = {id(call["out"]) for call in calls}
    assert not any(id(call["x"]) in outputs for call in calls)
    assert all(torch.equal(call["out"], call["out_value"]) for call in calls)


def test_cfg_pp_samplers_get_the_uncond_prediction_through_model_options(neo, monkeypatch):
    from modules import sd_samplers_cfg_denoiser, shared

    seen = []
    original = sd_samplers_cfg_denoiser.sampling_function

    def sampling_function(denoiser, **kwargs):
        result = original(denoiser, **kwargs)
        seen.append((kwargs["extra_model_options"], result))
        return result

    monkeypatch.setattr(sd_samplers_cfg_denoiser, "sampling_function", sampling_function)
    processed = plain_txt2img(neo, "DPM++ 2M CFG++", cfg_scale=1.5)
    assert image_psnr(neo, processed) > 15.0 and len(seen) == STEPS
    assert shared.sd_model.apply_calls == 2 * STEPS  # cond and uncond on every call
    for options, (_, _, uncond_pred) in seen:
        assert options["disable_cfg1_optimization"] and len(options["sampler_post_cfg_function"]) == 1
        assert options["sampler_post_cfg_function"][0]({"denoised": 1, "uncond_denoised": uncond_pred}) == 1
