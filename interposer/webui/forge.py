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

from ..spaces import SPACES
from .a1111 import A1111_SAMPLERS, family_from_flags
from .adapter import Webui
from .families import FLUX1, KLEIN, MUGEN, WAN21, Family, unsupported
from .samplers import (
    LMS_KEEPS,
    LMS_REFUSED,
    MIDPOINT,
    PAST_DERIVATIVES,
    UNIPC_REFUSED,
    SamplerSupport,
    SamplerTable,
)

# How close the webui's factors must be to the package's to count as the same space (they are written with
# 4-5 significant digits everywhere; a real mismatch is a different VAE, off by far more).
FACTOR_TOLERANCE = 1e-4

# huggingface_guess/latent.py's classes (Neo 2.26; lllyasviel's Forge has the first four): the channels the webui's
# tensor has, and the family. Anything else is a family without an interposer, named after its class.
LATENT_FORMATS: dict[str, tuple[int, Family]] = {
    "SD15": (4, Family.of_space(SPACES["v1"])),
    "SDXL": (4, Family.of_space(SPACES["xl"])),
    "SD3": (16, Family.of_space(SPACES["v3"])),
    "Flux": (16, FLUX1),  # FLUX.1, Chroma, Z-Image, Lumina 2 / Neta Lumina
    "Flux2": (128, KLEIN),  # FLUX.2 Klein, ERNIE-Image: packed 2x2
    "SDXL_Flux2": (32, MUGEN),  # Mugen: the same latent unpacked
    "Wan21": (16, WAN21),  # Wan, Qwen-Image, Anima, Krea 2: [B, 16, T, H, W]
    "RGB": (3, unsupported("RGB", 3, "pixel space (PiD)")),
}


def family_from_latent_format(sd_model: Any) -> Family | None:
    """The Forges' reading: ``model_config.latent_format`` decides the family, and the factors the webui applies
    (the VAE's ``scaling_factor``/``shift_factor`` where it has them, else the format's) must be the package's.

    A mismatch is refused rather than converted: latents scaled by other factors come from another VAE, and the
    interposer would turn them into garbage. ``None``: the model has no ``latent_format`` at all."""
    fmt = getattr(getattr(sd_model, "model_config", None), "latent_format", None)
    if fmt is None:
        return None
    family = format_family(type(fmt).__name__, int(getattr(fmt, "latent_channels", 4) or 4))
    space = family.space
    if space is None or space.name == "f2":
        return family  # f2: normalised by the VAE's own BatchNorm, process_in applies no factor
    scale, shift = _applied_factors(sd_model, fmt)
    if abs(scale - space.scale) > FACTOR_TOLERANCE or abs(shift - space.shift) > FACTOR_TOLERANCE:
        return Family(
            space.name,
            space.label,
            why=f"scales its {space.label} latents by {scale:g} (shift {shift:g}), but the "
            f"interposer's {space.name} latents are scaled by {space.scale:g} (shift {space.shift:g}): its VAE is "
            "not the family's, so its latents cannot be converted",
            layout=family.layout,
        )
    return family


def format_family(name: str, channels: int) -> Family:
    """The family of a Forge latent format (class name and the channels it declares)."""
    known = LATENT_FORMATS.get(name)
    if known is None or known[0] != channels:
        return unsupported(name, channels)
    return known[1]


def _applied_factors(sd_model: Any, fmt: Any) -> tuple[float, float]:
    """The scale and shift the webui applies to this model's VAE latents (Neo: the VAE config's; else the
    latent format's)."""
    vae = getattr(getattr(getattr(sd_model, "forge_objects", None), "vae", None), "first_stage_model", None)
    scale = getattr(vae, "scaling_factor", None)
    shift = getattr(vae, "shift_factor", None)
    if not isinstance(scale, (int, float)):
        scale = getattr(fmt, "scale_factor", 1.0)
        shift = getattr(fmt, "shift_factor", 0.0)
    return float(scale), float(shift if isinstance(shift, (int, float)) else 0.0)


# Forge Neo (3df257a): every sampler of modules/sd_samplers.all_samplers, from the vendored k-diffusion's update rules
# (modules_forge/packages/k_diffusion/sampling.py, ComfyUI v0.3.75) and Neo's timesteps and CFG++ samplers.
NEO_SAMPLERS = SamplerTable(
    webui="Forge Neo",
    samplers={
        "DPM++ 2M": SamplerSupport("x; the previous call's estimate old_denoised"),
        "DPM++ SDE": SamplerSupport("x, Brownian-tree noise; on the midpoint call also the step's main x", MIDPOINT),
        "DPM++ 2M SDE": SamplerSupport("x, the previous call's estimate old_denoised, Brownian-tree noise"),
        "DPM++ 3M SDE": SamplerSupport("x, the estimates of the two previous calls, Brownian-tree noise"),
        "DPM++ 2s a RF": SamplerSupport("x; on the midpoint call also the step's main x", MIDPOINT),
        "Euler a": SamplerSupport("x only"),
        "Euler": SamplerSupport("x only"),
        "ER SDE": SamplerSupport(
            "x, the previous call's estimate old_denoised and the rate of change of the last two estimates",
            "old_denoised_d",
            "it keeps the rate of change of its last two estimates (old_denoised_d), computed inside the sampler in "
            "the old latent space, and adds it to the next step; it cannot be reached to convert it",
        ),
        "LCM": SamplerSupport("x only (the estimate plus fresh noise, in a new tensor)"),
        "LMS": SamplerSupport(LMS_KEEPS, "its past derivatives", LMS_REFUSED),
        "Heun": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", MIDPOINT),
        "DPM2": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", MIDPOINT),
        "Res Multistep": SamplerSupport("x; the previous call's estimate old_denoised"),
        "Kohaku LoNyu Yog": SamplerSupport(
            "x; within a step of the first half (3 calls at one sigma: x, -x, a midpoint) the step's main x and the "
            "derivatives of the first two calls",
            MIDPOINT,
            refused_by_steps="its steps in the first half make three model calls at one sigma, the second on the "
            "negated latent; a switch by step count can fall on the second or third, whose derivatives stay in the "
            "old latent space",
        ),
        "Restart": SamplerSupport(
            "x; on a Heun step's second call also the step's main x and its derivative d; restart noise", MIDPOINT
        ),
        "UniPC": SamplerSupport(
            "its own corrected state and past x0 predictions", "its corrected state", UNIPC_REFUSED
        ),
        "DDIM": SamplerSupport("x only (eps is used within the call)"),
        "PLMS": SamplerSupport(
            "x and up to 3 past eps (model outputs); in its first step also the step's main x",
            "in its first step, the step's main x",
        ),
        "DPM++ 2M CFG++": SamplerSupport(
            "x; the previous call's unconditional estimate",
            "the previous unconditional estimate",
            "it keeps the previous step's unconditional estimate, which Neo hands to the sampler inside the CFG "
            "function (not through the denoiser), so the interposer cannot reach it",
        ),
        "Euler a CFG++": SamplerSupport("x only (the unconditional estimate is used within the call)"),
        "Euler CFG++": SamplerSupport("x only (the unconditional estimate is used within the call)"),
    },
    aliases={"Flux Realistic": "DPM++ 2s a RF"},  # its name with Neo's "forbidden knowledge" setting
    convertible="Euler, Euler a, DPM++ 2M, DPM++ SDE, DPM++ 3M SDE, Res Multistep or DDIM",
    restart_safe="Euler, Euler a, DPM++ 2M, DPM++ 2M SDE, DPM++ 3M SDE, Res Multistep, LCM, DDIM, Euler CFG++ or "
    "Euler a CFG++",
)


# lllyasviel's Forge (f2, dfdcbab): A1111 1.10.1's samplers (same update rules) plus its own four k-diffusion ones and
# DDPM (modules/sd_samplers_kdiffusion.py, modules_forge/alter_samplers.py).
FORGE_SAMPLERS = SamplerTable(
    webui="lllyasviel's Forge",
    samplers={
        **A1111_SAMPLERS.samplers,
        "HeunPP2": SamplerSupport(
            "x; on a step's later calls (up to 3) the step's main x and the derivatives of its earlier calls", MIDPOINT
        ),
        "IPNDM": SamplerSupport("x and up to 3 past derivatives", "its past derivatives", PAST_DERIVATIVES),
        "IPNDM_V": SamplerSupport("x and up to 3 past derivatives", "its past derivatives", PAST_DERIVATIVES),
        "DEIS": SamplerSupport("x and up to 3 past derivatives", "its past derivatives", PAST_DERIVATIVES),
        "DDPM": SamplerSupport("x only"),
    },
    convertible=A1111_SAMPLERS.convertible,
    restart_safe=A1111_SAMPLERS.restart_safe,
)

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

    def hires_module_files(self, p: Any) -> list[str]:
        modules = getattr(p, "hr_additional_modules", None)
        if not isinstance(modules, (list, tuple)) or SAME_MODULES in modules:
            return []
        return [str(m) for m in modules]

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
