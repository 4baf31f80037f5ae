"""AUTOMATIC1111 1.10: models flag their family (``is_sd1``/``is_sdxl``/``is_sd3``) and keep their scale factor;
its 20 samplers are in :data:`A1111_SAMPLERS`; its cond caches key on the loaded checkpoint, so a
switch leaves nothing stale."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..spaces import SPACES, LatentSpace
from .adapter import Webui
from .families import Family
from .samplers import LMS_KEEPS, LMS_REFUSED, MIDPOINT, UNIPC_REFUSED, SamplerSupport, SamplerTable


def _with_factors(space: LatentSpace, scale: Any, shift: Any) -> LatentSpace:
    """``space`` with the model's own scale/shift where the model carries one (A1111: exact conversion of a
    checkpoint whose config uses another factor)."""
    changes = {}
    if isinstance(scale, (int, float)) and float(scale) != space.scale:
        changes["scale"] = float(scale)
    if isinstance(shift, (int, float)) and float(shift) != space.shift:
        changes["shift"] = float(shift)
    return replace(space, **changes) if changes else space


def family_from_flags(sd_model: Any) -> Family | None:
    """AUTOMATIC1111's reading: the ``is_*`` flags, then the scale/shift the model itself uses.

    ``None``: a model of no family the webui flags (the caller says it cannot tell)."""
    if sd_model is None:
        return None
    if getattr(sd_model, "is_sd3", False):
        fmt = getattr(sd_model, "latent_format", None)
        space = _with_factors(SPACES["v3"], getattr(fmt, "scale_factor", None), getattr(fmt, "shift_factor", None))
    elif getattr(sd_model, "is_sdxl", False):
        space = _with_factors(SPACES["xl"], getattr(sd_model, "scale_factor", None), None)
    elif getattr(sd_model, "is_sd1", False) or getattr(sd_model, "is_sd2", False):
        space = _with_factors(SPACES["v1"], getattr(sd_model, "scale_factor", None), None)
    else:
        return None
    return Family.of_space(space)


# AUTOMATIC1111 1.10.1: every sampler of modules/sd_samplers.all_samplers.
A1111_SAMPLERS = SamplerTable(
    webui="AUTOMATIC1111 1.10.1",
    samplers={
        "DPM++ 2M": SamplerSupport("x; the previous call's estimate old_denoised"),
        "DPM++ SDE": SamplerSupport("x, Brownian-tree noise; on the midpoint call also the step's main x", MIDPOINT),
        "DPM++ 2M SDE": SamplerSupport("x, the previous call's estimate old_denoised, Brownian-tree noise"),
        "DPM++ 2M SDE Heun": SamplerSupport("x, the previous call's estimate old_denoised, Brownian-tree noise"),
        "DPM++ 2S a": SamplerSupport("x; on the midpoint call also the step's main x", MIDPOINT),
        "DPM++ 3M SDE": SamplerSupport("x, the estimates of the two previous calls, Brownian-tree noise"),
        "Euler a": SamplerSupport("x only"),
        "Euler": SamplerSupport("x only"),
        "LMS": SamplerSupport(LMS_KEEPS, "its past derivatives", LMS_REFUSED),
        "Heun": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", MIDPOINT),
        "DPM2": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", MIDPOINT),
        "DPM2 a": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", MIDPOINT),
        "DPM fast": SamplerSupport("x; within a step (up to 3 calls) the step's main x and the stages' eps", MIDPOINT),
        "DPM adaptive": SamplerSupport(
            "x, the previous accepted low-order state x_prev, the step-size controller's past errors",
            "x_prev",
            "it sizes its steps by comparing against its previous accepted state and its controller's past errors, "
            "computed inside the solver in the old latent space and never passed through the webui's denoiser",
        ),
        "Restart": SamplerSupport(
            "x; on a Heun step's second call also the step's main x and its derivative d; restart noise", MIDPOINT
        ),
        "DDIM": SamplerSupport("x only (eps is used within the call)"),
        "DDIM CFG++": SamplerSupport("x only (eps and the unconditional eps are used within the call)"),
        "PLMS": SamplerSupport(
            "x and up to 3 past eps (model outputs); in its first step also the step's main x",
            "in its first step, the step's main x",
        ),
        "UniPC": SamplerSupport(
            "its own corrected state and past x0 predictions", "its corrected state", UNIPC_REFUSED
        ),
        "LCM": SamplerSupport("x only (the previous estimate plus fresh noise, in the same tensor)"),
    },
    convertible="Euler, Euler a, DPM++ 2M, DPM++ SDE, DPM++ 3M SDE or DDIM",
    restart_safe="Euler, Euler a, DPM++ 2M, DPM++ 2M SDE, DPM++ 2M SDE Heun, DPM++ 3M SDE, DDIM, DDIM CFG++ or LCM",
)


class A1111(Webui):
    name = "AUTOMATIC1111"
    samplers = A1111_SAMPLERS

    def family(self, sd_model: Any) -> Family | None:
        return family_from_flags(sd_model)

    def image_conditioned(self, sd_model: Any) -> bool:
        key = str(getattr(getattr(sd_model, "model", None), "conditioning_key", "crossattn"))
        return key in ("hybrid", "concat") or bool(getattr(sd_model, "is_sdxl_inpaint", False))

    def vae_override(self, option: Any) -> tuple[str, str] | None:
        """``--vae-path``, or an SD VAE choice with "Selected VAE overrides per-model preferences" on."""
        from modules import shared  # the webui's, at call time

        vae_path = getattr(shared.cmd_opts, "vae_path", None)
        choice = option("sd_vae", "Automatic")
        if vae_path:
            what = f"--vae-path {vae_path} forces one VAE onto every checkpoint"
        elif option("sd_vae_overrides_per_model_preferences", True) and choice not in (
            "Automatic",
            "auto",
            "None",
            None,
        ):
            what = (f"the SD VAE setting {choice!r} (with 'Selected VAE overrides per-model preferences' on) forces "
                    "one VAE onto every checkpoint")  # fmt: skip
        else:
            return None
        return what, (
            "Set Settings > Stable Diffusion > SD VAE to 'Automatic' (or untick 'Selected VAE overrides per-model "
            "preferences'), and drop --vae-path."
        )

    def switches_by_steps(self, option: Any) -> bool:
        return bool(option("refiner_switch_by_sample_steps", False))

    def timestep_alphas(self, denoiser: Any) -> Any:
        return getattr(denoiser, "alphas", None)  # CFGDenoiserTimesteps keeps the loaded model's alphas_cumprod
