"""Mirrors modules/sd_samplers_cfg_denoiser.py (Neo @ 3df257a) ``CFGDenoiser.forward``, in Neo's order: interrupt
check; ``sd_samplers_common.apply_refiner(self, x, sigma[0])`` (module attribute; ``x`` is the sampler's live
tensor); the ``on_cfg_denoiser`` callback on ``x`` itself (not a copy, unlike A1111); ``hr_cfg`` as the CFG scale in
the hires pass; the model through ``sampling_function`` (cond, and uncond only when CFG != 1 and there is one);
the img2img blend with ``init_latent``; ``sampler.last_latent = denoised``; ``step + 1``."""

from __future__ import annotations

import torch

from modules import sd_samplers_common
from modules.script_callbacks import CFGDenoiserParams, cfg_denoiser_callback
from modules.shared import state


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

    def sampling_function(self, x, sigma, cond, uncond, cond_scale, image_cond):
        """sampling_function.py: the cond (and uncond) predictions of the loaded model, then CFG."""
        cond_pred = self.inner_model(x, sigma, cond={"c_crossattn": [cond], "c_concat": [image_cond]})
        if uncond is None or cond_scale == 1.0:
            return cond_pred, cond_pred, None
        uncond_pred = self.inner_model(x, sigma, cond={"c_crossattn": [uncond], "c_concat": [image_cond]})
        return uncond_pred + (cond_pred - uncond_pred) * cond_scale, cond_pred, uncond_pred

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond, **kwargs):
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException

        if sd_samplers_common.apply_refiner(self, x, sigma[0]):
            cond = self.sampler.sampler_extra_args["cond"]
            uncond = self.sampler.sampler_extra_args["uncond"]

        if self.mask is not None:
            x = x * self.nmask + (self.init_latent + torch.randn_like(self.init_latent) * sigma[0]) * self.mask

        denoiser_params = CFGDenoiserParams(x, image_cond, sigma, state.sampling_step, state.sampling_steps, cond,
                                            uncond, self)  # fmt: skip
        cfg_denoiser_callback(denoiser_params)
        if self.p.is_hr_pass:
            cond_scale = self.p.hr_cfg

        denoised, _, uncond_pred = self.sampling_function(x, sigma, cond, uncond, cond_scale, image_cond)
        if self.need_last_noise_uncond and uncond_pred is not None:
            self.last_noise_uncond = (x - uncond_pred) / sigma[:, None, None, None]
        if self.mask is not None:
            denoised = denoised * self.nmask + self.init_latent * self.mask

        self.sampler.last_latent = denoised
        self.step += 1
        return denoised
