"""What a sampler keeps across a refiner switch, and the refusals that follow from it (for every webui).

A refiner switch happens inside a running sampler, so everything the sampler keeps from the base model's
calls is in the base model's latent space. Each webui's adapter has a :class:`SamplerTable` with one entry per
sampler it lists, written from its update rule (see :mod:`.refiner` for the three kinds of state and how each is
converted); the descriptions several tables share are here. A sampler missing from its table is refused: the
interposer cannot know that none of its state stays behind. :func:`switch_refusal` is the one decision about a
switch between two checkpoints, made before sampling (:mod:`.preflight`) and at the switch (:mod:`.refiner`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..directions import Direction
from ..errors import InterposerError
from .families import file_names


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


MIDPOINT = "on a step's later model call, the step's main x (and the noise estimate taken from it)"

LMS_KEEPS = "x and the derivatives (x - D) / sigma of up to 4 past steps"
LMS_REFUSED = (
    "it keeps the derivatives of up to four past steps, computed inside the sampler from the base model's outputs, "
    "and extrapolates them into the next steps with weights up to 59/24; they cannot be reached to restart them for "
    "the refiner"
)
UNIPC_REFUSED = (
    "it evaluates the model at a predicted state but continues from its own corrected state and its own list of past "
    "x0 predictions, which never pass through the webui's denoiser, so they stay in the old latent space"
)

PAST_DERIVATIVES = (
    "it keeps up to three past derivatives (x - D) / t, computed inside the sampler from the base model's outputs, "
    "and extrapolates them into the next steps; they cannot be reached to convert them"
)


def refusal_for(
    table: SamplerTable, sampler_name: str | None, strategy: str, dirn: Direction, by_steps: bool = False
) -> str | None:
    """Every refusal a refiner switch of ``dirn`` meets before its sampler state is looked at."""
    return channel_refusal(dirn) or table.refusal(sampler_name, strategy, dirn, by_steps)


def switch_refusal(webui, option, strategy: str, current, target, sampler: str | None) -> str | None:
    """Why the refiner switch from checkpoint ``current`` to ``target`` (:class:`.families.Checkpoint`, families
    known and different) cannot be carried across with ``sampler`` and ``strategy``; ``None``: it can."""
    if current.family.space is None or target.family.space is None:
        unsupported, title = (current, current.title) if current.family.space is None else (target, target.title)
        return (
            f"Latent Interposer: {title!r} {unsupported.family.why}; the refiner switch from "
            f"{current.family.description} to {target.family.description} cannot be converted. Use a refiner "
            "of the base model's family."
        )
    if current.family.layout != target.family.layout:
        return (
            f"Latent Interposer: the refiner switch from {current.family.description} to "
            f"{target.family.description} changes how the sampler's tensor holds the latents, which a running "
            f"sampler cannot follow. Use hires fix with {target.title!r} as the Hires checkpoint instead."
        )
    modules = webui.first_pass_modules(option)
    if modules:
        names = ", ".join(file_names(modules))
        return (
            f"Latent Interposer: the refiner {target.title!r} ({target.family.description}) would be loaded with "
            f"the first pass's VAE / text-encoder files ({names}), which belong to {current.family.description}: "
            f"{webui.name} gives a refiner the first pass's files. Use hires fix with {target.title!r} as the Hires "
            "checkpoint instead (it gets its own VAE and text encoders), or a refiner of the base model's family."
        )
    dirn = Direction(current.family.space, target.family.space)
    by_steps = webui.switches_by_steps(option)
    refusal = webui.refiner_refusal(option) or refusal_for(webui.samplers, sampler, strategy, dirn, by_steps)
    if refusal is None and (current.image_conditioned or target.image_conditioned):
        refusal = inpainting_refusal(current.title, target.title)
    return refusal
