"""The Forges: Forge Neo (Haoming02/sd-webui-forge-classic, branch ``neo``) and lllyasviel's Forge (``f2...``).

Both describe a loaded model by ``model_config.latent_format`` (their ``is_sdxl`` is not a family: Neo's Mugen
sets it with 32-channel latents), so the family is read from there (:func:`.families.family_from_latent_format`).

Neo keys its cached prompt conditionings on ``str(model_data.forge_loading_parameters)``, which it resets to
the first-pass checkpoint right after loading the hires (or refiner) checkpoint: conds computed by the hires
model are stored under the first-pass key, and the next generation that asks for that key gets conds of the
other architecture (an ``AssertionError`` in the UNet). :meth:`Forge.forget_cached_conds` invalidates those
cache entries around every pass on another checkpoint, whether or not the interposer converts anything.
"""

from __future__ import annotations

from typing import Any

from .adapter import Webui
from .families import Family, family_from_flags, family_from_latent_format
from .samplers import SamplerTable

# Neo's and lllyasviel's Forge's cond caches: first-pass (StableDiffusionProcessing) and hires (Txt2Img) ones.
COND_CACHES = ("cached_c", "cached_uc", "cached_hr_c", "cached_hr_uc")


class Forge(Webui):
    """lllyasviel's Forge ("Forge 2", ``f2...``) and any Forge this package does not know by name."""

    name = "Forge"
    samplers = SamplerTable("Forge", {}, convertible="hires fix", restart_safe="hires fix")

    def __init__(self, version: str = "") -> None:
        self.version = version

    def family(self, sd_model: Any) -> Family | None:
        return family_from_latent_format(sd_model) or family_from_flags(sd_model)

    def image_conditioned(self, sd_model: Any) -> bool:
        return bool(getattr(sd_model, "is_inpaint", False))

    def forget_cached_conds(self, p: Any) -> None:
        """Invalidate every cond cache entry ``p`` can reach, in place (the lists are shared by the class and
        every ``p``, and Neo replaces the class's lists in ``close()``: both are reached)."""
        for name in COND_CACHES:
            for holder in (p, type(p)):
                cache = getattr(holder, name, None)
                if isinstance(cache, list) and cache:
                    cache[0] = None


class ForgeNeo(Forge):
    """Forge Neo: no refiner together with hires fix (Neo refuses it itself)."""

    name = "Forge Neo"
    refiner_in_hires = False


def forge_for(version: str) -> Forge:
    """The adapter for a Forge version string: ``neo`` / ``neo <release>`` -> Neo's; ``f2...``, ``classic`` and
    anything else -> the generic Forge one (same readings, no Neo-only rules)."""
    if version.split(" ")[0].strip().lower() == "neo":
        return ForgeNeo(version)
    return Forge(version)
