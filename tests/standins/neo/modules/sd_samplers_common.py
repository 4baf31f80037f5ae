"""Mirrors modules/sd_samplers_common.py (Neo @ 3df257a). The Sampler base, ``SamplerData``, the VAE helpers and
``TorchHijack`` are A1111's (the A1111 stand-in's file runs first); ``apply_refiner`` is Neo's (common.py 222-294):

* signature ``(cfg_denoiser, x, sigma)``, called from ``CFGDenoiser.forward`` as a module attribute;
* the switch is at the first call whose **sigma** is <= ``refiner_switch_at`` (``refiner_use_steps``: by
  ``step / total_steps``); nothing once ``ORIGINAL_CHECKPOINT`` is set (the ``refiner_fast_sd`` path);
* **never with hires fix**: it prints an error and carries on without the refiner;
* ``refiner_fast_sd`` loads the refiner's UNet weights into the loaded model (same architecture only);
* otherwise ``main_entry.checkpoint_change`` + ``forge_model_reload`` (a new model object), then the loading
  parameters are reset to the base checkpoint (``finally``), ``p.setup_conds()`` (through the cond cache, now
  keyed on the base checkpoint), ``update_inner_model``.

``FLAVOUR = "forge"`` (``neo_env.boot(..., forge=True)``) makes it lllyasviel's Forge's instead (dfdcbab
``modules/sd_samplers_common.py`` 166-211): signature ``(cfg_denoiser, x)``, the switch by ``step / total_steps``
only, inside hires fix as ``opts.hires_fix_refiner_pass`` says, no ``refiner_fast_sd``.

``Sampler.initialize`` is Neo's (common.py 370-420): the ``sampler_extra_params`` read from ``p`` (Neo's ``p`` has
``s_churn``/``s_tmin``/``s_tmax``/``s_noise`` from the settings), ``eta`` (``p.eta`` or ``opts.eta_ancestral``,
``opts.eta_ddim`` for DDIM) whenever the function's signature has ``eta``, the settings' ``s_*`` where they differ
from the sampler's defaults, and ``k_diffusion.sampling.torch`` replaced by ``TorchHijack(p)`` (every
``torch.randn_like`` of a sampler is ``p.rng.next()``)."""

from standin_reuse import reuse

reuse(globals(), "modules/sd_samplers_common.py")

import inspect

import k_diffusion.sampling
from modules_forge import main_entry

from modules import sd_models, shared
from modules.shared import opts

ORIGINAL_CHECKPOINT = None
FLAVOUR = "neo"  # or "forge": lllyasviel's Forge


def apply_refiner(cfg_denoiser, x, sigma=None):
    if FLAVOUR == "forge":
        return _forge_apply_refiner(cfg_denoiser, x)
    global ORIGINAL_CHECKPOINT
    if not (refiner_switch_at := cfg_denoiser.p.refiner_switch_at):
        return False
    if opts.refiner_use_steps:
        if refiner_switch_at > cfg_denoiser.step / cfg_denoiser.total_steps:
            return False
    elif float(sigma) > refiner_switch_at:
        return False
    if ORIGINAL_CHECKPOINT is not None:
        return False
    refiner_checkpoint_info = cfg_denoiser.p.refiner_checkpoint_info
    if refiner_checkpoint_info is None or shared.sd_model.sd_checkpoint_info == refiner_checkpoint_info:
        return False
    if getattr(cfg_denoiser.p, "enable_hr", False):
        print("\n\n[Error]Refiner does not support Hires. fix\n\n")
        return False
    cfg_denoiser.p.extra_generation_params["Refiner"] = refiner_checkpoint_info.short_title
    cfg_denoiser.p.extra_generation_params["Refiner switch at"] = refiner_switch_at
    if opts.refiner_fast_sd:
        model = sd_models.model_data.get_sd_model()
        weights = sd_models.factories[refiner_checkpoint_info.filename]()
        if type(weights) is not type(model):
            raise RuntimeError("Error(s) in loading state_dict: the refiner's UNet has another architecture")
        ORIGINAL_CHECKPOINT = shared.sd_model.sd_checkpoint_info.filename
        model.photo, model.detail_block = weights.photo, weights.detail_block  # the UNet weights only
        return True
    original_checkpoint = shared.opts.sd_model_checkpoint
    if not main_entry.checkpoint_change(refiner_checkpoint_info.short_title, preset=None, save=False, refresh=False):
        return False
    del cfg_denoiser.model_wrap
    try:
        main_entry.refresh_model_loading_parameters()
        sd_models.forge_model_reload()
    finally:
        main_entry.checkpoint_change(original_checkpoint, preset=None, save=False, refresh=True)
    cfg_denoiser.p.setup_conds()
    cfg_denoiser.update_inner_model()
    return True


def _forge_apply_refiner(cfg_denoiser, x):
    completed_ratio = cfg_denoiser.step / cfg_denoiser.total_steps
    refiner_switch_at = cfg_denoiser.p.refiner_switch_at
    refiner_checkpoint_info = cfg_denoiser.p.refiner_checkpoint_info
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
    fp_checkpoint = shared.opts.sd_model_checkpoint
    if main_entry.checkpoint_change(refiner_checkpoint_info.short_title, save=False, refresh=False):
        try:
            main_entry.refresh_model_loading_parameters()
            sd_models.forge_model_reload()
        finally:
            main_entry.checkpoint_change(fp_checkpoint, save=False, refresh=True)
    cfg_denoiser.p.setup_conds()
    cfg_denoiser.update_inner_model()
    return True


def _initialize(self, p) -> dict:
    self.p = p
    self.model_wrap_cfg.p = p
    self.model_wrap_cfg.mask = p.mask if hasattr(p, "mask") else None
    self.model_wrap_cfg.nmask = p.nmask if hasattr(p, "nmask") else None
    self.model_wrap_cfg.step = 0
    self.model_wrap_cfg.image_cfg_scale = getattr(p, "image_cfg_scale", None)
    self.eta = p.eta if p.eta is not None else getattr(opts, self.eta_option_field, 0.0)
    self.s_min_uncond = getattr(p, "s_min_uncond", 0.0)
    k_diffusion.sampling.torch = TorchHijack(p)

    parameters = inspect.signature(self.func).parameters
    extra_params_kwargs = {}
    for param_name in self.extra_params:
        if hasattr(p, param_name) and param_name in parameters:
            extra_params_kwargs[param_name] = getattr(p, param_name)
    if "eta" in parameters:
        if self.eta != self.eta_default:
            p.extra_generation_params[self.eta_infotext_field] = self.eta
        extra_params_kwargs["eta"] = self.eta
    if len(self.extra_params) > 0:
        settings = {"s_churn": getattr(opts, "s_churn", p.s_churn), "s_tmin": getattr(opts, "s_tmin", p.s_tmin),
                    "s_tmax": getattr(opts, "s_tmax", p.s_tmax) or self.s_tmax,
                    "s_noise": getattr(opts, "s_noise", p.s_noise)}  # fmt: skip
        labels = {"s_churn": "Sigma churn", "s_tmin": "Sigma tmin", "s_tmax": "Sigma tmax", "s_noise": "Sigma noise"}
        for name, value in settings.items():
            if name in extra_params_kwargs and value != getattr(self, name):
                extra_params_kwargs[name] = value
                setattr(p, name, value)
                p.extra_generation_params[labels[name]] = value
    return extra_params_kwargs


Sampler.initialize = _initialize
