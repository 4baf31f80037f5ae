"""What each webui's samplers keep across a refiner switch, and the refusals that follow from it.

A refiner switch happens inside a running sampler, so everything the sampler keeps from the base model's
calls is in the base model's latent space. Each table has one entry per sampler the webui lists, written
from its update rule (see :mod:`.refiner` for the three kinds of state and how each is converted). A sampler
missing from the table is refused: the interposer cannot know that none of its state stays behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..directions import Direction
from ..errors import InterposerError


class RefinerSwitchError(InterposerError, RuntimeError):
    """A refiner switch the interposer cannot carry the sampler across."""


@dataclass(frozen=True)
class SamplerSupport:
    """What a sampler keeps across the switch call, and what the switch does with it."""

    keeps: str  # the sampler's state at a model call, for messages and the README
    old_noise: str = ""  # what still carries the old noise after the switch call ("" = nothing)
    refused: str = ""  # why the switch cannot be carried across at all ("" = convertible)
    refused_by_steps: str = ""  # why not when the webui switches by step count (it may fall inside a step)


@dataclass(frozen=True)
class SamplerTable:
    """One webui's samplers, with the lists its refusal messages suggest instead."""

    webui: str
    samplers: Mapping[str, SamplerSupport]
    convertible: str  # suggested in a refusal: samplers the switch converts
    restart_safe: str  # suggested when the restart strategy is refused

    aliases: Mapping[str, str] = field(default_factory=dict)  # another name the webui may show -> the entry

    def support(self, sampler_name: str | None) -> SamplerSupport | None:
        name = sampler_name or "unknown"
        return self.samplers.get(self.aliases.get(name, name))

    def refusal(self, sampler_name: str | None, strategy: str, dirn: Direction, by_steps: bool = False) -> str | None:
        """Why this sampler cannot cross ``dirn`` at the refiner switch with ``strategy`` (``None``: it can);
        ``by_steps``: the webui switches at a step count rather than at a sigma."""
        name = sampler_name or "unknown"
        support = self.support(name)
        if support is None:
            return (
                f"Latent Interposer: cannot carry the {name} sampler across the {dirn.name} refiner switch: the "
                f"interposer does not know what it keeps between steps, so it cannot make sure none of it stays in "
                f"the old latent space. Use {self.convertible} for a refiner of another family, or hires fix."
            )
        if support.refused:
            return (
                f"Latent Interposer: cannot carry the {name} sampler across the {dirn.name} refiner switch: "
                f"{support.refused}. Use {self.convertible} for a refiner of another family, or hires fix."
            )
        if by_steps and support.refused_by_steps:
            return (
                f"Latent Interposer: cannot carry the {name} sampler across the {dirn.name} refiner switch when the "
                f"switch is by steps: {support.refused_by_steps}. Switch by sigma (the default), or use "
                f"{self.convertible}."
            )
        if strategy.lower().startswith("restart") and support.old_noise:
            return (
                f"Latent Interposer: the 'Restart with fresh noise' refiner strategy cannot be used with {name} "
                f"across the {dirn.name} switch: {support.old_noise} still carries the old noise, which the fresh "
                f"noise would not match. Use the 'Noise-preserving' strategy, or {self.restart_safe}."
            )
        return None


def channel_refusal(dirn: Direction) -> str | None:
    """A refiner of another channel count cannot take over a running sampler."""
    if dirn.src.channels == dirn.dst.channels:
        return None
    return (
        f"Latent Interposer: the refiner switch {dirn.name} changes the latent channels ({dirn.src.channels} -> "
        f"{dirn.dst.channels}); a running sampler's tensors cannot change shape. Use hires fix with a "
        f"{dirn.dst.label} hires checkpoint instead (the interposer converts there)."
    )


def inpainting_refusal(base_title: str, refiner_title: str) -> str:
    return (
        f"Latent Interposer: {base_title!r} or the refiner {refiner_title!r} is an inpainting (image-conditioned) "
        "model; its conditioning latents are in the other family's space and the webui does not rebuild them at "
        "the switch. Use non-inpainting checkpoints for a refiner of another family."
    )


_MIDPOINT = "on a step's later model call, the step's main x (and the noise estimate taken from it)"

_LMS_KEEPS = "x and the derivatives (x - D) / sigma of up to 4 past steps"
_LMS = (
    "it keeps the derivatives of up to four past steps, computed inside the sampler from the base model's outputs, "
    "and extrapolates them into the next steps with weights up to 59/24; they cannot be reached to restart them for "
    "the refiner"
)
_UNIPC = (
    "it evaluates the model at a predicted state but continues from its own corrected state and its own list of past "
    "x0 predictions, which never pass through the webui's denoiser, so they stay in the old latent space"
)

# AUTOMATIC1111 1.10.1: every sampler of modules/sd_samplers.all_samplers.
A1111_SAMPLERS = SamplerTable(
    webui="AUTOMATIC1111 1.10.1",
    samplers={
        "DPM++ 2M": SamplerSupport("x; the previous call's estimate old_denoised"),
        "DPM++ SDE": SamplerSupport("x, Brownian-tree noise; on the midpoint call also the step's main x", _MIDPOINT),
        "DPM++ 2M SDE": SamplerSupport("x, the previous call's estimate old_denoised, Brownian-tree noise"),
        "DPM++ 2M SDE Heun": SamplerSupport("x, the previous call's estimate old_denoised, Brownian-tree noise"),
        "DPM++ 2S a": SamplerSupport("x; on the midpoint call also the step's main x", _MIDPOINT),
        "DPM++ 3M SDE": SamplerSupport("x, the estimates of the two previous calls, Brownian-tree noise"),
        "Euler a": SamplerSupport("x only"),
        "Euler": SamplerSupport("x only"),
        "LMS": SamplerSupport(_LMS_KEEPS, "its past derivatives", _LMS),
        "Heun": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", _MIDPOINT),
        "DPM2": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", _MIDPOINT),
        "DPM2 a": SamplerSupport(
            "x; on the step's second call also the step's main x and its derivative d", _MIDPOINT
        ),
        "DPM fast": SamplerSupport(
            "x; within a step (up to 3 calls) the step's main x and the stages' eps", _MIDPOINT
        ),
        "DPM adaptive": SamplerSupport(
            "x, the previous accepted low-order state x_prev, the step-size controller's past errors",
            "x_prev",
            "it sizes its steps by comparing against its previous accepted state and its controller's past errors, "
            "computed inside the solver in the old latent space and never passed through the webui's denoiser",
        ),
        "Restart": SamplerSupport(
            "x; on a Heun step's second call also the step's main x and its derivative d; restart noise", _MIDPOINT
        ),
        "DDIM": SamplerSupport("x only (eps is used within the call)"),
        "DDIM CFG++": SamplerSupport("x only (eps and the unconditional eps are used within the call)"),
        "PLMS": SamplerSupport(
            "x and up to 3 past eps (model outputs); in its first step also the step's main x",
            "in its first step, the step's main x",
        ),
        "UniPC": SamplerSupport("its own corrected state and past x0 predictions", "its corrected state", _UNIPC),
        "LCM": SamplerSupport("x only (the previous estimate plus fresh noise, in the same tensor)"),
    },
    convertible="Euler, Euler a, DPM++ 2M, DPM++ SDE, DPM++ 3M SDE or DDIM",
    restart_safe="Euler, Euler a, DPM++ 2M, DPM++ 2M SDE, DPM++ 2M SDE Heun, DPM++ 3M SDE, DDIM, DDIM CFG++ or LCM",
)


# Forge Neo (3df257a): every sampler of modules/sd_samplers.all_samplers, from the vendored k-diffusion's update rules
# (modules_forge/packages/k_diffusion/sampling.py, ComfyUI v0.3.75) and Neo's timesteps and CFG++ samplers.
NEO_SAMPLERS = SamplerTable(
    webui="Forge Neo",
    samplers={
        "DPM++ 2M": SamplerSupport("x; the previous call's estimate old_denoised"),
        "DPM++ SDE": SamplerSupport("x, Brownian-tree noise; on the midpoint call also the step's main x", _MIDPOINT),
        "DPM++ 2M SDE": SamplerSupport("x, the previous call's estimate old_denoised, Brownian-tree noise"),
        "DPM++ 3M SDE": SamplerSupport("x, the estimates of the two previous calls, Brownian-tree noise"),
        "DPM++ 2s a RF": SamplerSupport("x; on the midpoint call also the step's main x", _MIDPOINT),
        "Euler a": SamplerSupport("x only"),
        "Euler": SamplerSupport("x only"),
        "ER SDE": SamplerSupport(
            "x, the previous call's estimate old_denoised and the rate of change of the last two estimates",
            "old_denoised_d",
            "it keeps the rate of change of its last two estimates (old_denoised_d), computed inside the sampler in "
            "the old latent space, and adds it to the next step; it cannot be reached to convert it",
        ),
        "LCM": SamplerSupport("x only (the estimate plus fresh noise, in a new tensor)"),
        "LMS": SamplerSupport(_LMS_KEEPS, "its past derivatives", _LMS),
        "Heun": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", _MIDPOINT),
        "DPM2": SamplerSupport("x; on the step's second call also the step's main x and its derivative d", _MIDPOINT),
        "Res Multistep": SamplerSupport("x; the previous call's estimate old_denoised"),
        "Kohaku LoNyu Yog": SamplerSupport(
            "x; within a step of the first half (3 calls at one sigma: x, -x, a midpoint) the step's main x and the "
            "derivatives of the first two calls",
            _MIDPOINT,
            refused_by_steps="its steps in the first half make three model calls at one sigma, the second on the "
            "negated latent; a switch by step count can fall on the second or third, whose derivatives stay in the "
            "old latent space",
        ),
        "Restart": SamplerSupport(
            "x; on a Heun step's second call also the step's main x and its derivative d; restart noise", _MIDPOINT
        ),
        "UniPC": SamplerSupport("its own corrected state and past x0 predictions", "its corrected state", _UNIPC),
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


_PAST_DERIVATIVES = (
    "it keeps up to three past derivatives (x - D) / t, computed inside the sampler from the base model's outputs, "
    "and extrapolates them into the next steps; they cannot be reached to convert them"
)

# lllyasviel's Forge (f2, dfdcbab): A1111 1.10.1's samplers (same update rules) plus its own four k-diffusion ones and
# DDPM (modules/sd_samplers_kdiffusion.py, modules_forge/alter_samplers.py).
FORGE_SAMPLERS = SamplerTable(
    webui="lllyasviel's Forge",
    samplers={
        **A1111_SAMPLERS.samplers,
        "HeunPP2": SamplerSupport(
            "x; on a step's later calls (up to 3) the step's main x and the derivatives of its earlier calls", _MIDPOINT
        ),
        "IPNDM": SamplerSupport("x and up to 3 past derivatives", "its past derivatives", _PAST_DERIVATIVES),
        "IPNDM_V": SamplerSupport("x and up to 3 past derivatives", "its past derivatives", _PAST_DERIVATIVES),
        "DEIS": SamplerSupport("x and up to 3 past derivatives", "its past derivatives", _PAST_DERIVATIVES),
        "DDPM": SamplerSupport("x only"),
    },
    convertible=A1111_SAMPLERS.convertible,
    restart_safe=A1111_SAMPLERS.restart_safe,
)


def refusal_for(
    table: SamplerTable, sampler_name: str | None, strategy: str, dirn: Direction, by_steps: bool = False
) -> str | None:
    """Every refusal a refiner switch of ``dirn`` meets before its sampler state is looked at."""
    return channel_refusal(dirn) or table.refusal(sampler_name, strategy, dirn, by_steps)
