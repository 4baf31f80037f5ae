"""Mirrors modules/sd_samplers_common.py (1.10.1): ``SamplerData`` (``total_steps``: twice the steps for
second-order samplers), ``setup_img2img_steps``, the Sampler base (``last_latent``, ``launch_sampling``
returning ``last_latent`` on interrupt, ``initialize`` with the img2img mask, eta and TorchHijack of
k-diffusion's torch, ``create_noise_sampler`` for the Brownian-tree samplers), ``apply_refiner``
(sigma-based switch, hires_fix_refiner_pass, reload + conds) and the VAE helpers."""

from __future__ import annotations

import inspect
from collections import namedtuple

import k_diffusion.sampling
import torch

from modules import devices, sd_models, shared
from modules.shared import opts, state

SamplerDataTuple = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])


class SamplerData(SamplerDataTuple):
    def total_steps(self, steps):
        if self.options.get("second_order", False):
            steps = steps * 2
        return steps


class InterruptedException(BaseException):
    pass


def setup_img2img_steps(p, steps=None):
    """img2img runs ``int(strength * steps)`` steps of a ``steps`` schedule; the hires pass (which passes
    ``steps``) or ``img2img_fix_steps`` runs exactly the requested steps of a longer schedule instead."""
    if opts.img2img_fix_steps or steps is not None:
        requested_steps = steps or p.steps
        steps = int(requested_steps / min(p.denoising_strength, 0.999)) if p.denoising_strength > 0 else 0
        t_enc = requested_steps - 1
    else:
        steps = p.steps
        t_enc = int(min(p.denoising_strength, 0.999) * steps)
    return steps, t_enc


def samples_to_images_tensor(sample, approximation=None, model=None):
    model = model or shared.sd_model
    with torch.no_grad(), devices.without_autocast():
        return model.decode_first_stage(sample)


def decode_first_stage(model, x):
    return samples_to_images_tensor(x, None, model)


def images_tensor_to_samples(image, approximation=None, model=None):
    """Image in [0, 1] -> the model's (scaled) latents."""
    model = model or shared.sd_model
    image = image.to(shared.device or devices.device, dtype=devices.dtype_vae) * 2 - 1
    return model.get_first_stage_encoding(model.encode_first_stage(image))


def sample_to_image(samples, index=0, approximation=None):
    return samples_to_images_tensor(samples[index : index + 1], approximation)[0]


def apply_refiner(cfg_denoiser, sigma=None):
    if opts.refiner_switch_by_sample_steps or sigma is None:
        completed_ratio = cfg_denoiser.step / cfg_denoiser.total_steps
        cfg_denoiser.p.extra_generation_params["Refiner switch by sampling steps"] = True
    else:
        try:
            timestep = torch.argmin(torch.abs(cfg_denoiser.inner_model.sigmas.to(sigma.device) - torch.max(sigma)))
        except AttributeError:  # timesteps samplers pass the timestep as sigma
            timestep = torch.max(sigma).to(dtype=int)
        completed_ratio = (999 - timestep) / 1000

    refiner_checkpoint_info = cfg_denoiser.p.refiner_checkpoint_info
    refiner_switch_at = cfg_denoiser.p.refiner_switch_at
    if refiner_switch_at is not None and completed_ratio < refiner_switch_at:
        return False
    if refiner_checkpoint_info is None or shared.sd_model.sd_checkpoint_info == refiner_checkpoint_info:
        return False
    if getattr(cfg_denoiser.p, "enable_hr", False):
        is_second_pass = cfg_denoiser.p.is_hr_pass
        if opts.hires_fix_refiner_pass == "first pass" and is_second_pass:
            return False
        if opts.hires_fix_refiner_pass == "second pass" and not is_second_pass:
            return False
        if opts.hires_fix_refiner_pass != "second pass":
            cfg_denoiser.p.extra_generation_params["Hires refiner"] = opts.hires_fix_refiner_pass

    cfg_denoiser.p.extra_generation_params["Refiner"] = refiner_checkpoint_info.short_title
    cfg_denoiser.p.extra_generation_params["Refiner switch at"] = refiner_switch_at
    with sd_models.SkipWritingToConfig():
        sd_models.reload_model_weights(info=refiner_checkpoint_info)
    devices.torch_gc()
    cfg_denoiser.p.setup_conds()
    cfg_denoiser.update_inner_model()
    return True


class TorchHijack:
    """k-diffusion's ``torch.randn_like`` draws from the generation's ImageRNG (as in the webui): the next
    noise of the image seeds, whatever the shape of ``x`` (a caller with another shape gets the wrong one)."""

    def __init__(self, p):
        self.rng = p.rng

    def __getattr__(self, item):
        if item == "randn_like":
            return self.randn_like
        if hasattr(torch, item):
            return getattr(torch, item)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{item}'")

    def randn_like(self, x):
        return self.rng.next()


class Sampler:
    def __init__(self, funcname):
        self.funcname = funcname
        self.func = funcname
        self.extra_params = []
        self.sampler_noises = None
        self.stop_at = None
        self.eta = None
        self.config: SamplerData = None  # set by create_sampler
        self.last_latent = None
        self.s_min_uncond = None
        self.s_churn = 0.0
        self.s_tmin = 0.0
        self.s_tmax = float("inf")
        self.s_noise = 1.0
        self.eta_option_field = "eta_ancestral"
        self.eta_infotext_field = "Eta"
        self.eta_default = 1.0
        self.conditioning_key = getattr(shared.sd_model.model, "conditioning_key", "crossattn")
        self.p = None
        self.model_wrap_cfg = None
        self.sampler_extra_args = None
        self.options = {}

    def callback_state(self, d):
        step = d["i"]
        if self.stop_at is not None and step > self.stop_at:
            raise InterruptedException
        state.sampling_step = step

    def launch_sampling(self, steps, func):
        self.model_wrap_cfg.steps = steps
        self.model_wrap_cfg.total_steps = self.config.total_steps(steps)
        state.sampling_steps = steps
        state.sampling_step = 0
        try:
            return func()
        except InterruptedException:
            return self.last_latent

    def initialize(self, p) -> dict:
        self.p = p
        self.model_wrap_cfg.p = p
        self.model_wrap_cfg.mask = p.mask if hasattr(p, "mask") else None
        self.model_wrap_cfg.nmask = p.nmask if hasattr(p, "nmask") else None
        self.model_wrap_cfg.step = 0
        self.model_wrap_cfg.image_cfg_scale = getattr(p, "image_cfg_scale", None)
        self.eta = p.eta if p.eta is not None else getattr(opts, self.eta_option_field, 0.0)
        self.s_min_uncond = getattr(p, "s_min_uncond", 0.0)
        k_diffusion.sampling.torch = TorchHijack(p)

        extra_params_kwargs = {}
        parameters = inspect.signature(self.func).parameters
        for param_name in self.extra_params:
            if hasattr(p, param_name) and param_name in parameters:
                extra_params_kwargs[param_name] = getattr(p, param_name)
        if "eta" in parameters:
            if self.eta != self.eta_default:
                p.extra_generation_params[self.eta_infotext_field] = self.eta
            extra_params_kwargs["eta"] = self.eta
        if "s_noise" in extra_params_kwargs and opts.s_noise != self.s_noise:
            extra_params_kwargs["s_noise"] = opts.s_noise
            p.extra_generation_params["Sigma noise"] = opts.s_noise
        return extra_params_kwargs

    def create_noise_sampler(self, x, sigmas, p):
        """Brownian-tree noise seeded by the batch's seeds, so results do not depend on the batch size."""
        if shared.opts.no_dpmpp_sde_batch_determinism:
            return None
        sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
        current_iter_seeds = p.all_seeds[p.iteration * p.batch_size : (p.iteration + 1) * p.batch_size]
        return k_diffusion.sampling.BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=current_iter_seeds)

    def add_infotext(self, p):
        pass
