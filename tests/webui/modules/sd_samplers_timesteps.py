"""Mirrors modules/sd_samplers_timesteps.py (1.10.1): CompVisSampler for DDIM and UniPC. Its
denoiser returns eps, inherits ``CFGDenoiser.forward`` (so ``apply_refiner`` runs there too),
keeps ``self.alphas`` from the model loaded when it was built, and predicts
``x0 = (x - sqrt(1 - a) eps) / sqrt(a)``. img2img starts from ``x * sqrt(a) + noise * sqrt(1 - a)``."""

from __future__ import annotations

import numpy as np
import torch

from modules import sd_samplers_cfg_denoiser, sd_samplers_common, sd_samplers_timesteps_impl, shared
from modules.sd_samplers_kdiffusion import SamplerData


class CompVisTimestepsDenoiser(torch.nn.Module):
    def __init__(self, model, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inner_model = model

    def forward(self, input, timesteps, **kwargs):
        return self.inner_model.apply_model(input, timesteps, **kwargs)


class CFGDenoiserTimesteps(sd_samplers_cfg_denoiser.CFGDenoiser):
    def __init__(self, sampler):
        super().__init__(sampler)
        self.alphas = shared.sd_model.alphas_cumprod
        self.mask_before_denoising = True

    def get_pred_x0(self, x_in, x_out, sigma):
        ts = sigma.to(dtype=int)
        a_t = self.alphas[ts][:, None, None, None]
        sqrt_one_minus_at = (1 - a_t).sqrt()
        return (x_in - sqrt_one_minus_at * x_out) / a_t.sqrt()

    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = CompVisTimestepsDenoiser(shared.sd_model)
        return self.model_wrap


class CompVisSampler(sd_samplers_common.Sampler):
    def __init__(self, funcname, sd_model):
        super().__init__(funcname)
        self.eta_option_field = "eta_ddim"
        self.func = getattr(sd_samplers_timesteps_impl, funcname)
        self.model_wrap_cfg = CFGDenoiserTimesteps(self)
        self.model_wrap = self.model_wrap_cfg.inner_model

    def get_timesteps(self, p, steps):
        timesteps = np.clip(np.arange(0, 1000, 1000 // steps) + 1, 0, 999)
        return torch.from_numpy(timesteps).to(torch.long)

    @staticmethod
    def _extra_args(p, conditioning, unconditional_conditioning, image_conditioning):
        return {
            "cond": conditioning,
            "image_cond": image_conditioning,
            "uncond": unconditional_conditioning,
            "cond_scale": p.cfg_scale,
            "s_min_uncond": 0.0,
        }

    def _kwargs(self, is_img2img):
        if self.funcname == "ddim":
            return {"eta": self.eta}
        return {"is_img2img": is_img2img}

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        steps = steps or p.steps
        timesteps = self.get_timesteps(p, steps)
        self.initialize(p)
        self.last_latent = x
        self.sampler_extra_args = self._extra_args(p, conditioning, unconditional_conditioning, image_conditioning)
        kwargs = self._kwargs(False)
        return self.launch_sampling(
            steps,
            lambda: self.func(
                self.model_wrap_cfg,
                x,
                timesteps,
                extra_args=self.sampler_extra_args,
                disable=False,
                callback=self.callback_state,
                **kwargs,
            ),
        )

    def sample_img2img(
        self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None
    ):
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        timesteps = self.get_timesteps(p, steps)
        timesteps_sched = timesteps[:t_enc]
        alphas_cumprod = shared.sd_model.alphas_cumprod
        xi = x * alphas_cumprod[timesteps[t_enc]].sqrt() + noise * (1 - alphas_cumprod[timesteps[t_enc]]).sqrt()
        self.initialize(p)
        self.model_wrap_cfg.init_latent = x
        self.last_latent = x
        self.sampler_extra_args = self._extra_args(p, conditioning, unconditional_conditioning, image_conditioning)
        kwargs = self._kwargs(True)
        return self.launch_sampling(
            t_enc + 1,
            lambda: self.func(
                self.model_wrap_cfg,
                xi,
                timesteps_sched,
                extra_args=self.sampler_extra_args,
                disable=False,
                callback=self.callback_state,
                **kwargs,
            ),
        )


samplers_timesteps = [
    ("DDIM", sd_samplers_timesteps_impl.ddim, ["ddim"], {}),
    ("UniPC", sd_samplers_timesteps_impl.unipc, ["unipc"], {}),
]

samplers_data_timesteps = [
    SamplerData(label, lambda model, funcname=funcname: CompVisSampler(funcname.__name__, model), aliases, options)
    for label, funcname, aliases, options in samplers_timesteps
]
