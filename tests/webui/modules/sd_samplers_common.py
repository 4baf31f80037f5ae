"""Mirrors modules/sd_samplers_common.py (1.10.1): the Sampler base (``last_latent``,
``launch_sampling`` returning ``last_latent`` on interrupt, TorchHijack of k-diffusion's torch),
``apply_refiner`` (sigma-based switch, hires_fix_refiner_pass, reload + conds) and the VAE helpers."""

from __future__ import annotations

import torch

from modules import devices, sd_models, shared
from modules.shared import opts, state


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
        self.last_latent = None
        self.s_noise = 1.0
        self.eta = None
        self.config = None
        self.p = None
        self.model_wrap_cfg = None
        self.sampler_extra_args = None
        self.conditioning_key = getattr(getattr(shared.sd_model, "model", None), "conditioning_key", "crossattn")

    def callback_state(self, d):
        state.sampling_step = d["i"]

    def launch_sampling(self, steps, func):
        self.model_wrap_cfg.steps = steps
        self.model_wrap_cfg.total_steps = self.config.total_steps(steps)
        state.sampling_steps = steps
        state.sampling_step = 0
        try:
            return func()
        except InterruptedException:
            return self.last_latent

    def initialize(self, p):
        self.p = p
        self.model_wrap_cfg.p = p
        self.model_wrap_cfg.step = 0
        self.eta = p.eta if p.eta is not None else getattr(opts, self.eta_option_field, 1.0)
        import k_diffusion.sampling

        k_diffusion.sampling.torch = TorchHijack(p)
        return {}
