"""Mirrors modules/shared.py + shared_options.py (Neo @ 3df257a), reduced to what the extension and this stand-in
touch.

* ``sd_model`` is not stored here: as in Neo (``shared_items.Shared.sd_model``) it reads
  ``sd_models.model_data.get_sd_model()``, the model ``forge_model_reload`` loaded last.
* ``latent_upscale_modes`` has A1111's six ``Latent*`` entries, as in this Neo; Neo 2.2x ships it **empty** with
  ``latent_upscale_default_mode = "None"`` (tests clear it to mirror that).
* Options: the checkpoint is "(Managed by Forge)", plus the Forge-only ones the paths here read
  (``forge_additional_modules``, ``persistent_cond_cache``, ``show_refiner``, ``refiner_use_steps``,
  ``refiner_fast_sd``, ``hires_fix_show_sampler``)."""

from standin_reuse import reuse

reuse(globals(), "modules/shared.py")  # opts, State, the six Latent modes, the pixel upscalers

from modules.options import OptionInfo, options_section

del sd_model  # Neo's is read from sd_models.model_data (module __getattr__ below)
for _key in ("sd_checkpoints_limit", "hires_fix_refiner_pass", "refiner_switch_by_sample_steps"):  # not in Neo
    del opts.data_labels[_key]
    opts.data.pop(_key, None)
for _key, _info in options_section(("sd", "Stable Diffusion", "sd"), {
    "sd_model_checkpoint": OptionInfo("", "(Managed by Forge)", infotext="Model"),
    "forge_additional_modules": OptionInfo([], "(Managed by Forge)"),
    "persistent_cond_cache": OptionInfo(True, "Persistent Cond Cache"),
    "use_old_scheduling": OptionInfo(False, "Use old prompt editing timelines."),
    "CLIP_stop_at_last_layers": OptionInfo(1, "Clip skip"),
    "emphasis": OptionInfo("Original", "Emphasis mode"),
    "show_refiner": OptionInfo(False, "Display the Refiner Accordion"),
    "refiner_fast_sd": OptionInfo(False, 'Reload "state_dict" Only'),
    "refiner_use_steps": OptionInfo(False, 'Switch based on "steps" instead'),
    "hires_fix_show_sampler": OptionInfo(False, "[Hires. fix]: Show checkpoint, sampler, scheduler, and cfg options"),
}).items() | options_section(("sampler-params", "Sampler parameters", "sd"), {
    "s_churn": OptionInfo(0.0, "sigma churn"),  # Neo fills p.s_churn/s_tmin/s_tmax from these
    "s_tmin": OptionInfo(0.0, "sigma tmin"),
    "s_tmax": OptionInfo(0.0, "sigma tmax"),
}).items():  # fmt: skip
    opts.data_labels[_key] = _info
    opts.data[_key] = _info.default
hf_endpoint = "https://huggingface.co"
version = "neo"


def __getattr__(name):
    if name == "sd_model":
        from modules import sd_models

        return sd_models.model_data.get_sd_model()
    raise AttributeError(name)
