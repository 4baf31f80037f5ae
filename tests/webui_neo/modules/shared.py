"""Mirrors modules/shared.py + shared_options.py (Neo @ 3df257a), reduced to what the extension and this stand-in
touch.

* ``sd_model`` is not stored here: as in Neo (``shared_items.Shared.sd_model``) it reads
  ``sd_models.model_data.get_sd_model()``, the model ``forge_model_reload`` loaded last.
* ``latent_upscale_modes`` has A1111's six ``Latent*`` entries, as in this Neo; Neo 2.2x ships it **empty** with
  ``latent_upscale_default_mode = "None"`` (tests clear it to mirror that).
* Options: the checkpoint is "(Managed by Forge)", plus the Forge-only ones the paths here read
  (``forge_additional_modules``, ``persistent_cond_cache``, ``show_refiner``, ``refiner_use_steps``,
  ``refiner_fast_sd``, ``hires_fix_show_sampler``)."""

from __future__ import annotations

import argparse

from modules import paths_internal
from modules.options import OptionInfo, Options, options_section

models_path = paths_internal.models_path
cmd_opts = argparse.Namespace(vae_path=None, skip_install=False, api=False, nowebui=False)

options_templates = {}
options_templates.update(options_section(("sd", "Stable Diffusion", "sd"), {
    "sd_model_checkpoint": OptionInfo("", "(Managed by Forge)", infotext="Model"),
    "forge_additional_modules": OptionInfo([], "(Managed by Forge)"),
    "persistent_cond_cache": OptionInfo(True, "Persistent Cond Cache"),
    "use_old_scheduling": OptionInfo(False, "Use old prompt editing timelines."),
    "CLIP_stop_at_last_layers": OptionInfo(1, "Clip skip"),
    "emphasis": OptionInfo("Original", "Emphasis mode"),
    "hires_fix_use_firstpass_conds": OptionInfo(False, "For hires fix, calculate conds of second pass using extra networks of first pass."),
    "show_refiner": OptionInfo(False, "Display the Refiner Accordion"),
    "refiner_fast_sd": OptionInfo(False, 'Reload "state_dict" Only'),
    "refiner_use_steps": OptionInfo(False, 'Switch based on "steps" instead'),
    "hires_fix_show_sampler": OptionInfo(False, "[Hires. fix]: Show checkpoint, sampler, scheduler, and cfg options"),
}))  # fmt: skip
options_templates.update(options_section(("vae", "VAE", "sd"), {
    "sd_vae": OptionInfo("Automatic", "SD VAE"),
    "sd_vae_overrides_per_model_preferences": OptionInfo(True, "Selected VAE overrides per-model preferences"),
}))  # fmt: skip
options_templates.update(options_section(("img2img", "img2img", "sd"), {
    "inpainting_mask_weight": OptionInfo(1.0, "Inpainting conditioning mask strength"),
    "initial_noise_multiplier": OptionInfo(1.0, "Noise multiplier for img2img"),
    "save_images_before_highres_fix": OptionInfo(False, "Save a copy of image before applying highres fix."),
    "img2img_fix_steps": OptionInfo(False, "During img2img, do exactly the number of Steps the slider specifies"),
}))  # fmt: skip
options_templates.update(options_section(("sampler-params", "Sampler parameters", "sd"), {
    "eta_ancestral": OptionInfo(1.0, "Eta for k-diffusion samplers"),
    "eta_ddim": OptionInfo(0.0, "Eta for DDIM"),
    "s_churn": OptionInfo(0.0, "sigma churn"),
    "s_tmin": OptionInfo(0.0, "sigma tmin"),
    "s_tmax": OptionInfo(0.0, "sigma tmax"),
    "s_noise": OptionInfo(1.0, "sigma noise"),
    "always_discard_next_to_last_sigma": OptionInfo(False, "Always discard next-to-last sigma"),
    "use_old_karras_scheduler_sigmas": OptionInfo(False, "Use old karras scheduler sigmas (0.1 to 10)."),
    "no_dpmpp_sde_batch_determinism": OptionInfo(False, "Do not make DPM++ SDE deterministic across different batch sizes."),
    "enable_quantization": OptionInfo(False, "Enable quantization in K samplers for sharper and cleaner results."),
    "beta_dist_alpha": OptionInfo(0.6, "Beta scheduler - alpha"),
    "beta_dist_beta": OptionInfo(0.6, "Beta scheduler - beta"),
}))  # fmt: skip

opts = Options(options_templates)


class State:
    skipped = False
    interrupted = False
    stopping_generation = False
    job = ""
    job_no = 0
    job_count = 0
    sampling_step = 0
    sampling_steps = 0

    def interrupt(self):
        self.interrupted = True

    def nextjob(self):
        self.job_no += 1

    def begin(self, job="(unknown)"):
        self.interrupted = self.skipped = False

    def end(self):
        pass


state = State()
device = None
latent_upscale_default_mode = "Latent"
latent_upscale_modes = {
    "Latent": {"mode": "bilinear", "antialias": False},
    "Latent (antialiased)": {"mode": "bilinear", "antialias": True},
    "Latent (bicubic)": {"mode": "bicubic", "antialias": False},
    "Latent (bicubic antialiased)": {"mode": "bicubic", "antialias": True},
    "Latent (nearest)": {"mode": "nearest", "antialias": False},
    "Latent (nearest-exact)": {"mode": "nearest-exact", "antialias": False},
}


class UpscalerData:
    def __init__(self, name):
        self.name = name


sd_upscalers = [UpscalerData("None"), UpscalerData("Lanczos"), UpscalerData("Nearest"), UpscalerData("R-ESRGAN 4x+")]
total_tqdm = None
hf_endpoint = "https://huggingface.co"
version = "neo"


def __getattr__(name):
    if name == "sd_model":
        from modules import sd_models

        return sd_models.model_data.get_sd_model()
    raise AttributeError(name)
