"""Mirrors modules/sd_samplers_cfg_denoiser.py (1.10.1): ``CFGDenoiser.forward`` in the webui's order:
interrupt check, ``apply_refiner``, the img2img mask blend of ``x`` with ``init_latent`` (before the model
for timesteps samplers), a *concatenated copy* of x for the cond/uncond batch, the ``on_cfg_denoiser``
callback on that copy, the model, ``last_noise_uncond`` (DDIM CFG++), CFG with ``cond_scale_miltiplier``,
the blend of the result with ``init_latent`` (after, for k-diffusion), ``sampler.last_latent``, step + 1."""

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
        self.padded_cond_uncond = False
        self.sampler = sampler
        self.p = None
        self.cond_scale_miltiplier = 1.0
        self.need_last_noise_uncond = False
        self.last_noise_uncond = None
        self.mask_before_denoising = False

    @property
    def inner_model(self):
        raise NotImplementedError()

    def combine_denoised(self, x_out, uncond, cond_scale):
        denoised_uncond = x_out[-uncond.shape[0] :]
        denoised = denoised_uncond.clone()
        for i in range(denoised.shape[0]):
            denoised[i] += (x_out[i] - denoised_uncond[i]) * cond_scale
        return denoised

    def get_pred_x0(self, x_in, x_out, sigma):
        return x_out

    def update_inner_model(self):
        self.model_wrap = None
        c, uc = self.p.get_conds()
        self.sampler.sampler_extra_args["cond"] = c
        self.sampler.sampler_extra_args["uncond"] = uc

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException

        if sd_samplers_common.apply_refiner(self, sigma):
            cond = self.sampler.sampler_extra_args["cond"]
            uncond = self.sampler.sampler_extra_args["uncond"]

        def apply_blend(current_latent):
            blended_latent = current_latent * self.nmask + self.init_latent * self.mask
            if self.p.scripts is not None:
                from modules import scripts

                mba = scripts.MaskBlendArgs(current_latent, self.nmask, self.init_latent, self.mask, blended_latent,
                                            denoiser=self, sigma=sigma)  # fmt: skip
                self.p.scripts.on_mask_blend(self.p, mba)
                blended_latent = mba.blended_latent
            return blended_latent

        if self.mask_before_denoising and self.mask is not None:
            x = apply_blend(x)

        batch = x.shape[0]
        x_in = torch.cat([torch.stack([x[i]]) for i in range(batch)] + [x])
        sigma_in = torch.cat([torch.stack([sigma[i]]) for i in range(batch)] + [sigma])
        image_cond_in = torch.cat([torch.stack([image_cond[i]]) for i in range(batch)] + [image_cond])

        denoiser_params = CFGDenoiserParams(x_in, image_cond_in, sigma_in, state.sampling_step, state.sampling_steps,
                                            cond, uncond, self)  # fmt: skip
        cfg_denoiser_callback(denoiser_params)
        x_in, sigma_in = denoiser_params.x, denoiser_params.sigma

        x_out = self.inner_model(x_in, sigma_in, cond={"c_crossattn": [cond], "c_concat": [image_cond_in]})
        if self.need_last_noise_uncond:
            self.last_noise_uncond = torch.clone(x_out[batch:])
        denoised = self.combine_denoised(x_out, x_out[batch:], cond_scale * self.cond_scale_miltiplier)

        if not self.mask_before_denoising and self.mask is not None:
            denoised = apply_blend(denoised)

        self.sampler.last_latent = self.get_pred_x0(x_in[:batch], x_out[:batch], sigma)
        self.step += 1
        return denoised
