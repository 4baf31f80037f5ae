"""The Forges: Forge Neo (Haoming02/sd-webui-forge-classic, branch ``neo``) and lllyasviel's Forge (``f2...``).

Both describe a loaded model by ``model_config.latent_format`` (their ``is_sdxl`` is not a family: Neo's Mugen
sets it with 32-channel latents), so the family is read from there (:func:`.families.family_from_latent_format`).
Their ``is_inpaint`` is ``unet_config["in_channels"] > 4`` (huggingface_guess ``inpaint_model()``), true of every
16-channel DiT, so only a 4-channel family's ``is_inpaint`` means an inpainting model.

Both load FLUX-family models as a diffusion-model file plus separate VAE and text-encoder files ("modules",
``opts.forge_additional_modules``; ``sd_vae`` is a placeholder there). A hires pass keeps the first pass's modules
when *Hires VAE / Text Encoder* is "Use same choices" (the default) and loads none with an empty list ("Built-in");
a refiner always gets the first pass's modules (Neo 2.26 ``processing.py`` 1490-1509,
``sd_samplers_common.apply_refiner``; lllyasviel's Forge ``processing.py`` 1405-1422).

Neo keys its cached prompt conditionings on ``str(model_data.forge_loading_parameters)``, which it resets to
the first-pass checkpoint right after loading the hires (or refiner) checkpoint: conds computed by the hires
model are stored under the first-pass key, and the next generation that asks for that key gets conds of the
other architecture (an ``AssertionError`` in the UNet). :meth:`ForgeNeo.forget_cached_conds` invalidates those
cache entries around every pass on another checkpoint, whether or not the interposer converts anything.
"""

from __future__ import annotations

from typing import Any

from .adapter import Webui
from .families import Family, family_from_flags, family_from_latent_format
from .samplers import FORGE_SAMPLERS, NEO_SAMPLERS

# Neo's cond caches: first-pass (StableDiffusionProcessing) and hires (Txt2Img) ones.
COND_CACHES = ("cached_c", "cached_uc", "cached_hr_c", "cached_hr_uc")
SAME_MODULES = "Use same choices"  # the Forges' hires-modules entry that keeps the first pass's files


class Forge(Webui):
    """lllyasviel's Forge ("Forge 2", ``f2...``) and any Forge this package does not know by name: A1111's samplers
    plus a few, the refiner switch by steps only (``apply_refiner(self, x)``), a refiner allowed in hires fix."""

    name = "Forge"
    samplers = FORGE_SAMPLERS
    hires_reloads_first_pass_model = False
    hires_modules_setting = "Hires fix > Hires VAE / Text Encoder"

    def __init__(self, version: str = "") -> None:
        self.version = version

    def family(self, sd_model: Any) -> Family | None:
        return family_from_latent_format(sd_model) or family_from_flags(sd_model)

    def image_conditioned(self, sd_model: Any) -> bool:
        family = self.family(sd_model)
        four_channels = family is not None and family.space is not None and family.space.channels == 4
        return four_channels and bool(getattr(sd_model, "is_inpaint", False))

    def first_pass_modules(self, option: Any) -> list[str]:
        return [str(m) for m in (option("forge_additional_modules", None) or [])]

    def hires_keeps_modules(self, p: Any) -> bool:
        modules = getattr(p, "hr_additional_modules", None)
        return isinstance(modules, (list, tuple)) and SAME_MODULES in modules

    def use_builtin_hires_modules(self, p: Any) -> None:
        p.hr_additional_modules = []  # "Built-in": the webui reloads with no extra modules
        params = getattr(p, "extra_generation_params", None)
        if isinstance(params, dict):
            params["Hires Module 1"] = "Built-in"  # what the webui writes (and pastes back) for an empty list

    def switches_by_steps(self, option: Any) -> bool:
        return True

    def timestep_alphas(self, denoiser: Any) -> Any:
        """The Forges' timesteps denoiser has no ``alphas``: it scales ``x`` by ``sqrt(sigma^2 + 1)`` itself
        (``classic_ddim_eps_estimation``) and its inner model holds the loaded model's ``alphas_cumprod``."""
        if not getattr(denoiser, "classic_ddim_eps_estimation", False):
            return None
        return getattr(getattr(denoiser.inner_model, "inner_model", None), "alphas_cumprod", None)


class ForgeNeo(Forge):
    """Forge Neo: its own samplers, a switch by sigma unless ``refiner_use_steps``, no refiner together with hires
    fix (Neo skips it), and ``refiner_fast_sd``, which loads the refiner's UNet weights into the loaded UNet."""

    name = "Forge Neo"
    refiner_in_hires = False
    samplers = NEO_SAMPLERS

    def forget_cached_conds(self, p: Any) -> None:
        """Invalidate every cond cache entry ``p`` can reach, in place (the lists are shared by the class and
        every ``p``, and Neo replaces the class's lists in ``close()``: both are reached). lllyasviel's Forge keys
        its cache by checkpoint: nothing to do there."""
        for name in COND_CACHES:
            for holder in (p, type(p)):
                cache = getattr(holder, name, None)
                if isinstance(cache, list) and cache:
                    cache[0] = None

    def switches_by_steps(self, option: Any) -> bool:
        return bool(option("refiner_use_steps", False))

    def switch_reachable(self, switch_at: Any, option: Any) -> bool:
        """By sigma (the default) ``switch_at`` is a sigma, reached once the schedule falls to it (0 or none: never)."""
        if not switch_at:
            return False
        return super().switch_reachable(switch_at, option) if self.switches_by_steps(option) else True

    def refiner_refusal(self, option: Any) -> str | None:
        if not option("refiner_fast_sd", False):
            return None
        return (
            "Latent Interposer: Settings > Refiner > 'Reload \"state_dict\" Only' loads the refiner's UNet weights "
            "into the loaded model, which only works within one model family; a refiner of another family needs a "
            "full load. Turn that setting off, or use a refiner of the base model's family."
        )


def forge_for(version: str) -> Forge:
    """The adapter for a Forge version string: ``neo`` / ``neo <release>`` -> Neo's; ``f2...``, ``classic`` and
    anything else -> the generic Forge one (same readings, no Neo-only rules)."""
    if version.split(" ")[0].strip().lower() == "neo":
        return ForgeNeo(version)
    return Forge(version)
