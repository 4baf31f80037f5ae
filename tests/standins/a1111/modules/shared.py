"""Mirrors modules/shared.py + shared_options.py + shared_state.py (1.10.1), reduced to what the
extension and this stand-in touch. ``sd_model`` is a plain attribute here (a property in the webui)."""

from __future__ import annotations

import argparse

from modules import paths_internal
from modules.options import OptionInfo, Options, options_section

models_path = paths_internal.models_path
cmd_opts = argparse.Namespace(vae_path=None, skip_install=False, api=False, nowebui=False)

options_templates = {}
options_templates.update(options_section(("sd", "Stable Diffusion", "sd"), {
    "sd_model_checkpoint": OptionInfo(None, "Stable Diffusion checkpoint"),
    "sd_checkpoints_limit": OptionInfo(1, "Maximum number of checkpoints loaded at the same time"),
    "hires_fix_refiner_pass": OptionInfo("second pass", "Hires fix: which pass to enable refiner for"),
    "refiner_switch_by_sample_steps": OptionInfo(False, "Switch to refiner by sampling steps instead of by sigma"),
    "hires_fix_use_firstpass_conds": OptionInfo(False, "For hires fix, calculate conds of second pass using extra networks of first pass."),
}))  # fmt: skip
options_templates.update(options_section(("vae", "VAE", "sd"), {
    "sd_vae": OptionInfo("Automatic", "SD VAE"),
    "sd_vae_overrides_per_model_preferences": OptionInfo(True, "Selected VAE overrides per-model preferences"),
}))  # fmt: skip
options_templates.update(options_section(("img2img", "img2img", "sd"), {
    "inpainting_mask_weight": OptionInfo(1.0, "Inpainting conditioning mask strength"),
    "initial_noise_multiplier": OptionInfo(1.0, "Noise multiplier for img2img"),
    "save_images_before_highres_fix": OptionInfo(False, "Save a copy of image before applying highres fix."),
    "img2img_fix_steps": OptionInfo(False, "With img2img, do exactly the amount of steps the slider specifies."),
}))  # fmt: skip
options_templates.update(options_section(("sampler-params", "Sampler parameters", "sd"), {
    "eta_ancestral": OptionInfo(1.0, "Eta for k-diffusion samplers"),
    "eta_ddim": OptionInfo(0.0, "Eta for DDIM"),
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
sd_model = None
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
