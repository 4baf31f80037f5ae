"""Mirrors modules/sd_samplers_cfg_denoiser.py (Neo @ 3df257a) ``CFGDenoiser.forward(x, sigma, uncond, cond,
cond_scale, s_min_uncond, image_cond, **kwargs)``, in Neo's order (cfgd.py 102-176):

1. interrupt check;
2. the DDIM/PLMS denoiser (``classic_ddim_eps_estimation``): the timestep the sampler passed as "sigma" becomes the
   real sigma of ``inner_model.inner_model.alphas_cumprod`` and ``x`` becomes a **new** tensor
   ``x * sqrt(real_sigma^2 + 1)`` (k-diffusion space); ``sigma`` is the real sigma from then on;
3. ``sd_samplers_common.apply_refiner(self, x, sigma[0])`` (module attribute): ``x`` is the sampler's live tensor
   for the k-diffusion samplers, that scaled copy for DDIM/PLMS; on a switch cond/uncond are re-read from
   ``sampler.sampler_extra_args``;
4. img2img mask: ``x = x * nmask + predictor.noise_scaling(sigma, fresh noise, init_latent) * mask`` (a new tensor);
5. the ``on_cfg_denoiser`` callback gets ``x`` itself (not a copy, unlike A1111);
6. ``hr_cfg`` as the CFG scale in the hires pass;
7. the module-level ``sampling_function(self, denoiser_params=..., cond_scale=..., cond_composition=...,
   extra_model_options=kwargs.get("model_options", {}))``: a sampler's ``model_options`` (the CFG++ samplers put
   theirs in ``extra_args``) reach it through ``**kwargs``;
8. ``last_noise_uncond`` when ``need_last_noise_uncond``; 9. the img2img blend with ``init_latent``;
10. ``sampler.last_latent = denoised``; 11. ``step + 1``;
12. DDIM/PLMS get ``eps = (x - denoised) / sigma`` (from the scaled ``x``), the others ``denoised``.

Not here: prompt schedules, skip-early-CFG, NGMS, after-CFG callbacks, ``on_mask_blend`` (nothing in these tests
sets them)."""

from __future__ import annotations

import math

import k_diffusion.external
import torch

from modules import sd_samplers_common
from modules.script_callbacks import CFGDenoiserParams, cfg_denoiser_callback
from modules.shared import state


def _join_options(base: dict | None, update: dict | None) -> dict:
    """backend/utils.py ``join_dicts``: nested dicts merged, lists concatenated, anything else replaced."""
    result = dict(base or {})
    for key, value in (update or {}).items():
        if isinstance(result.get(key), dict) and isinstance(value, dict):
            result[key] = _join_options(result[key], value)
        elif isinstance(result.get(key), list) and isinstance(value, list):
            result[key] = result[key] + value
        else:
            result[key] = value
    return result


def sampling_function(self, denoiser_params, cond_scale, cond_composition, extra_model_options=None):
    """backend/sampling/sampling_function.py (``sampling_function`` + ``sampling_function_inner``, sf.py 297-364),
    reduced to what the samplers see: the model ``self.inner_model.inner_model`` (Neo: its
    ``forge_objects.unet.model``, k-diffusion ``x`` and ``sigma`` in, denoised out) predicts cond and, unless CFG is
    1 without ``disable_cfg1_optimization``, uncond (skipped, ``uncond_pred`` is zeros, as in Neo); CFG; then every
    ``sampler_post_cfg_function`` of the model options replaces the result. Returns ``(denoised, cond_pred,
    uncond_pred)``, ``uncond_pred`` being the tensor the post-CFG functions got as ``uncond_denoised``."""
    model = self.inner_model.inner_model
    model_options = _join_options({}, extra_model_options)  # the stand-in's UNet patcher has no options of its own
    denoiser = k_diffusion.external.ForgeScheduleLinker(model.forge_objects.unet.model.predictor)
    denoiser.inner_model = model
    x, sigma, image_cond = denoiser_params.x, denoiser_params.sigma, denoiser_params.image_cond
    cond, uncond = denoiser_params.text_cond, denoiser_params.text_uncond

    def predict(conditioning):
        return denoiser(x, sigma, cond={"c_crossattn": [conditioning], "c_concat": [image_cond]})

    skip_uncond = math.isclose(cond_scale, 1.0) and not model_options.get("disable_cfg1_optimization", False)
    cond_pred = predict(cond)
    uncond_pred = torch.zeros_like(x) if skip_uncond or uncond is None else predict(uncond)
    denoised = uncond_pred + (cond_pred - uncond_pred) * cond_scale
    for fn in model_options.get("sampler_post_cfg_function", []):
        args = {"denoised": denoised, "cond": cond, "uncond": uncond, "cond_scale": cond_scale, "model": model,
                "uncond_denoised": uncond_pred, "cond_denoised": cond_pred, "sigma": sigma,
                "model_options": model_options, "input": x}  # fmt: skip
        denoised = fn(args)
    return denoised, cond_pred, uncond_pred


class CFGDenoiser(torch.nn.Module):
    def __init__(self, sampler):
        super().__init__()
        self.model_wrap = None
        self.mask = None
        self.nmask = None
        self.init_latent = None
        self.steps = None
        self.total_steps = None
        self.step = 0
        self.image_cfg_scale = None
        self.sampler = sampler
        self.p = None
        self.need_last_noise_uncond = False
        self.last_noise_uncond = None
        self.mask_before_denoising = False
        self.classic_ddim_eps_estimation = False

    @property
    def inner_model(self):
        raise NotImplementedError()

    def update_inner_model(self):
        self.model_wrap = None
        c, uc = self.p.get_conds()
        self.sampler.sampler_extra_args["cond"] = c
        self.sampler.sampler_extra_args["uncond"] = uc

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond, **kwargs):
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException

        original_x_device, original_x_dtype = x.device, x.dtype
        if self.classic_ddim_eps_estimation:
            acd = self.inner_model.inner_model.alphas_cumprod
            fake_sigmas = ((1 - acd) / acd) ** 0.5
            real_sigma = fake_sigmas[sigma.round().long().clip(0, int(fake_sigmas.shape[0]))]
            x = x * ((real_sigma**2.0 + 1.0) ** 0.5)[:, None, None, None]
            sigma = real_sigma

        switched = (sd_samplers_common.apply_refiner(self, x) if sd_samplers_common.FLAVOUR == "forge"
                    else sd_samplers_common.apply_refiner(self, x, sigma[0]))  # fmt: skip
        if switched:
            cond = self.sampler.sampler_extra_args["cond"]
            uncond = self.sampler.sampler_extra_args["uncond"]

        if self.mask is not None:
            predictor = self.inner_model.inner_model.forge_objects.unet.model.predictor
            noisy_initial_latent = predictor.noise_scaling(sigma[:, None, None, None],
                                                           torch.randn_like(self.init_latent), self.init_latent)  # fmt: skip
            x = x * self.nmask + noisy_initial_latent * self.mask

        denoiser_params = CFGDenoiserParams(x, image_cond, sigma, state.sampling_step, state.sampling_steps, cond,
                                            uncond, self)  # fmt: skip
        cfg_denoiser_callback(denoiser_params)
        if self.p.is_hr_pass:
            cond_scale = self.p.hr_cfg

        denoised, _, uncond_pred = sampling_function(self, denoiser_params=denoiser_params, cond_scale=cond_scale,
                                                     cond_composition=None,
                                                     extra_model_options=kwargs.get("model_options", {}))  # fmt: skip
        if self.need_last_noise_uncond:
            self.last_noise_uncond = (x - uncond_pred) / sigma[:, None, None, None]
        if self.mask is not None:
            denoised = denoised * self.nmask + self.init_latent * self.mask

        self.sampler.last_latent = denoised
        self.step += 1
        if self.classic_ddim_eps_estimation:
            return (x - denoised) / sigma[:, None, None, None]
        return denoised.to(device=original_x_device, dtype=original_x_dtype)
