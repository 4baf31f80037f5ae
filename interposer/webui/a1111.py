"""AUTOMATIC1111 1.10: models flag their family (``is_sd1``/``is_sdxl``/``is_sd3``) and keep their scale factor;
its 20 samplers are in :data:`~.samplers.A1111_SAMPLERS`; its cond caches key on the loaded checkpoint, so a
switch leaves nothing stale."""

from __future__ import annotations

from typing import Any

from .adapter import Webui
from .families import Family, family_from_flags
from .samplers import A1111_SAMPLERS


class A1111(Webui):
    name = "AUTOMATIC1111"
    samplers = A1111_SAMPLERS

    def family(self, sd_model: Any) -> Family | None:
        return family_from_flags(sd_model)

    def image_conditioned(self, sd_model: Any) -> bool:
        key = str(getattr(getattr(sd_model, "model", None), "conditioning_key", "crossattn"))
        return key in ("hybrid", "concat") or bool(getattr(sd_model, "is_sdxl_inpaint", False))

    def vae_override(self, option: Any) -> str | None:
        """``--vae-path``, or an SD VAE choice with "Selected VAE overrides per-model preferences" on."""
        from modules import shared  # the webui's, at call time

        vae_path = getattr(shared.cmd_opts, "vae_path", None)
        if vae_path:
            return f"--vae-path {vae_path}"
        choice = option("sd_vae", "Automatic")
        if option("sd_vae_overrides_per_model_preferences", True) and choice not in ("Automatic", "auto", "None", None):
            return f"the SD VAE setting {choice!r} (with 'Selected VAE overrides per-model preferences' on)"
        return None

    def switches_by_steps(self, option: Any) -> bool:
        return bool(option("refiner_switch_by_sample_steps", False))

    def timestep_alphas(self, denoiser: Any) -> Any:
        return getattr(denoiser, "alphas", None)  # CFGDenoiserTimesteps keeps the loaded model's alphas_cumprod
