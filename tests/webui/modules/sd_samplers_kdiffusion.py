"""Mirrors modules/sd_samplers_kdiffusion.py (1.10.1): KDiffusionSampler (sigmas, ``x * sigmas[0]``,
img2img ``xi = x + noise * sigma_sched[0]``, ``self.func(self.model_wrap_cfg, x, ...)``) and
CFGDenoiserKDiffusion, whose inner model wraps ``shared.sd_model`` like k-diffusion's
CompVisDenoiser (eps model -> x0 prediction, ``x = x0 + sigma * eps``)."""

from __future__ import annotations

import k_diffusion.sampling
import torch

from modules import sd_samplers_cfg_denoiser, sd_samplers_common, shared
from modules.shared import opts


class CompVisDenoiser(torch.nn.Module):
    """k-diffusion external.CompVisDenoiser: D(x, sigma) = x - sigma * eps(x / sqrt(sigma^2 + 1), t(sigma))."""

    def __init__(self, model):
        super().__init__()
        self.inner_model = model
        alphas_cumprod = model.alphas_cumprod.float()
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def sigma_to_t(self, sigma):
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        t = (1 - w) * low_idx + w * high_idx
        return t.view(sigma.shape)

    def forward(self, input, sigma, **kwargs):
        c_in = 1 / (sigma**2 + 1) ** 0.5
        eps = self.inner_model.apply_model(input * c_in.view(-1, 1, 1, 1), self.sigma_to_t(sigma), **kwargs)
        return input - eps * sigma.view(-1, 1, 1, 1)


class CFGDenoiserKDiffusion(sd_samplers_cfg_denoiser.CFGDenoiser):
    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = CompVisDenoiser(shared.sd_model)
        return self.model_wrap


class SamplerData:
    def __init__(self, name, constructor, aliases, options):
        self.name, self.constructor, self.aliases, self.options = name, constructor, aliases, options

    def total_steps(self, steps):
        return steps * 2 if self.options.get("second_order", False) else steps


samplers_k_diffusion = [
    ("DPM++ 2M", "sample_dpmpp_2m", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    (
        "DPM++ SDE",
        "sample_dpmpp_sde",
        ["k_dpmpp_sde"],
        {"scheduler": "karras", "second_order": True, "brownian_noise": True},
    ),
    ("Euler a", "sample_euler_ancestral", ["k_euler_a"], {"uses_ensd": True}),
    ("Euler", "sample_euler", ["k_euler"], {}),
]


class KDiffusionSampler(sd_samplers_common.Sampler):
    def __init__(self, funcname, sd_model, options=None):
        super().__init__(funcname)
        self.options = options or {}
        self.func = getattr(k_diffusion.sampling, funcname)
        self.model_wrap_cfg = CFGDenoiserKDiffusion(self)
        self.model_wrap = self.model_wrap_cfg.inner_model
        self.eta_option_field = "eta_ancestral"

    def get_sigmas(self, p, steps):
        scheduler = self.config.options.get("scheduler") if self.config else None
        if scheduler == "karras":
            return k_diffusion.sampling.get_sigmas_karras(steps, float(self.model_wrap.sigma_min),
                                                          float(self.model_wrap.sigma_max))  # fmt: skip
        ramp = torch.linspace(len(self.model_wrap.sigmas) - 1, 0, steps)
        sigmas = torch.exp(torch.tensor([float(self.model_wrap.log_sigmas[int(t)]) for t in ramp]))
        return k_diffusion.sampling.append_zero(sigmas)

    def _extra_kwargs(self, sigmas):
        kwargs = {}
        if "eta" in self.func.__code__.co_varnames:
            kwargs["eta"] = self.eta
        if "s_noise" in self.func.__code__.co_varnames:
            kwargs["s_noise"] = opts.s_noise
        return kwargs

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        steps = steps or p.steps
        sigmas = self.get_sigmas(p, steps)
        x = x * sigmas[0]
        self.initialize(p)
        self.last_latent = x
        self.sampler_extra_args = {"cond": conditioning, "image_cond": image_conditioning,
                                   "uncond": unconditional_conditioning, "cond_scale": p.cfg_scale, "s_min_uncond": 0.0}  # fmt: skip
        kwargs = self._extra_kwargs(sigmas)
        return self.launch_sampling(steps, lambda: self.func(self.model_wrap_cfg, x, sigmas,
                                                             extra_args=self.sampler_extra_args, disable=False,
                                                             callback=self.callback_state, **kwargs))  # fmt: skip

    def sample_img2img(
        self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None
    ):
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        sigmas = self.get_sigmas(p, steps)
        sigma_sched = sigmas[steps - t_enc - 1 :]
        xi = x + noise * sigma_sched[0]
        self.initialize(p)
        self.model_wrap_cfg.init_latent = x
        self.last_latent = x
        self.sampler_extra_args = {"cond": conditioning, "image_cond": image_conditioning,
                                   "uncond": unconditional_conditioning, "cond_scale": p.cfg_scale, "s_min_uncond": 0.0}  # fmt: skip
        kwargs = self._extra_kwargs(sigma_sched)
        return self.launch_sampling(t_enc + 1, lambda: self.func(self.model_wrap_cfg, xi, sigma_sched,
                                                                 extra_args=self.sampler_extra_args, disable=False,
                                                                 callback=self.callback_state, **kwargs))  # fmt: skip


samplers_data_k_diffusion = [
    SamplerData(label, lambda model, funcname=funcname: KDiffusionSampler(funcname, model), aliases, options)
    for label, funcname, aliases, options in samplers_k_diffusion
]
