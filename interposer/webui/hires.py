"""The hires pass: which families it crosses, what to convert, upscale or interpolate, and what to say.

Functions of the duck-typed ``generation`` (:class:`.generation.Generation`: ``p``, ``options``, ``converter``,
``family``, ``log``, ``say_once``, ``record``, ``convert``), called when the hires pass starts
(:func:`hires_latents`) and before the first pass (:mod:`.preflight` uses :func:`plan` and :func:`upscale_space`):
the decisions live here, the hooks and bookkeeping in :mod:`.generation`.
"""

from __future__ import annotations

from typing import Any

from ..directions import Direction, direction
from ..errors import InterposerError
from .families import Family, latent_grid, model_title
from .options import AUTO, LEARNED_UPSCALE_MODE, UPSCALER_INFOTEXT_KEY


class UnknownFamilyError(InterposerError, RuntimeError):
    """The model family of a checkpoint is needed and cannot be told."""


class UnsupportedFamilyError(InterposerError, RuntimeError):
    """A pass crosses into or out of a family no interposer converts."""


def uses_learned_upscale(p: Any) -> bool:
    """A txt2img job whose hires pass upscales with ``Latent (NN)``."""
    return bool(getattr(p, "enable_hr", False)) and getattr(p, "hr_upscaler", None) == LEARNED_UPSCALE_MODE


def hires_latents(generation, samples, target: Family | None):
    """The latents the hires pass should start from, in the hires model's space where that is needed."""
    latent_mode = getattr(generation.p, "latent_scale_mode", None) is not None
    source = generation.family
    crossing = source is not None and target is not None and not source.same_as(target)
    if samples is not None and latent_mode and uses_learned_upscale(generation.p):
        return learned_upscale(generation, samples, target)
    if samples is not None and latent_mode:
        if not generation.options.enabled:
            if crossing:
                generation.say_unconverted(source, target, "hires pass")
            return samples
        dirn = plan(generation, source, target)
        if dirn is not None:
            generation.warn_about_vae_override(dirn)
            samples = generation.convert(samples, dirn, "hires", source, target)
            generation.family = target if target is not None else Family.of_space(dirn.dst)
        elif crossing and source.relaid_as(target):
            samples = relayout(generation, samples, source, target)
        return samples
    if not latent_mode:
        # The webui re-encodes the upscaled image with the hires VAE: the latents are in its space now.
        generation.family = target
        if generation.options.enabled and (crossing or generation.options.selected):
            upscaler = getattr(generation.p, "hr_upscaler", None)
            generation.say_once(
                "pixel",
                f"hires upscaler {upscaler!r} works on pixels: the webui decodes with the first-pass VAE and "
                "encodes with the hires VAE, so there is nothing to convert.",
            )
    return samples


def relayout(generation, samples, source: Family, target: Family):
    """One space, two tensor layouts (Klein's packed FLUX.2 latents -> Mugen's): an exact reshape, no weights."""
    result = target.from_space(source.to_space(samples))
    generation.log(f"hires: {source.description} -> {target.description}: the same latent space, "
             f"{tuple(samples.shape)} -> {tuple(result.shape)} re-laid out exactly")  # fmt: skip
    generation.family = target
    return result


def learned_upscale(generation, samples, target: Family | None):
    """``Latent (NN)``: latents of exactly the webui's target size, in the hires model's space.

    Same family (or the interposer off): the learned upscaler of the first pass's family. Across
    families with the interposer on: convert and upscale (the order in ``runtime.DEFAULT_ORDER``).
    A family with no learned upscaler is interpolated, and the console and infotext say so. The webui's
    own interpolation to the same size afterwards changes nothing.
    """
    pixels = (int(generation.p.hr_upscale_to_y), int(generation.p.hr_upscale_to_x))
    source = generation.family
    dirn = plan(generation, source, target) if generation.options.enabled else None
    if source is not None and source.space is None and source.same_as(target or source):
        return interpolate(generation, samples, source, latent_grid(source, pixels))
    # Klein -> Mugen: one space in two layouts, upscaled in the space and laid out as the hires model holds it.
    relaid = generation.options.enabled and dirn is None and source is not None and source.relaid_as(target)
    landing = target if (dirn is not None or relaid) and target is not None else source
    grid = latent_grid(landing, pixels)
    x = source.to_space(samples) if source is not None else samples
    if dirn is not None:
        generation.warn_about_vae_override(dirn)
        result, reports = generation.converter.run_convert_upscale(x, dirn.src, dirn.dst, size=grid)
    else:
        space = upscale_space(generation, source)
        if not generation.options.enabled and target is not None and not source.same_as(target):
            generation.say_once(
                "nn-crossing",
                f"the hires pass goes from {source.description} to {target.description}, but the interposer is "
                f"off: {LEARNED_UPSCALE_MODE} upscales the {space.name} latents only. Select the Latent "
                "Interposer script (or turn on Apply automatically) to convert them.",
            )
        result, report = generation.converter.run_upscale(x, space, size=grid)
        reports = [report]
    if dirn is not None or relaid:
        generation.family = target if target is not None else Family.of_space(dirn.dst)
    for report in reports:
        generation.record(report, "hires")
    return landing.from_space(result) if landing is not None else result


def interpolate(generation, samples, family: Family, size: tuple[int, int]):
    """``Latent (NN)`` in one family that has no interposer space (Wan 2.1's 5-D latents, PiD's pixels): what
    the webui's own Latent modes would do, said in the console and the infotext, never a refusal."""
    import torch.nn.functional as F

    mode = generation.converter.resize_mode
    x = family.to_space(samples)
    result = family.from_space(F.interpolate(x.float(), size=size, mode=mode).to(x.dtype))
    generation.log(f"hires upscale: {family.description} has no learned upscaler: {mode} interpolation "
             f"{tuple(samples.shape)} -> {tuple(result.shape)}")  # fmt: skip
    generation.p.extra_generation_params[UPSCALER_INFOTEXT_KEY] = f"{family.key} interpolated, {mode}"
    return result


def upscale_space(generation, source: Family | None):
    """The space ``Latent (NN)`` upscales in when nothing is converted: the first pass's."""
    if source is None:
        raise UnknownFamilyError(
            f"Latent Interposer: the hires upscaler {LEARNED_UPSCALE_MODE!r} needs to know which model family "
            f"{generation.first_pass_title!r} belongs to (to pick its latent upscaler), and it cannot tell. Choose "
            "another hires upscaler, or an explicit direction in the script."
        )
    if source.space is None:
        raise UnsupportedFamilyError(
            f"Latent Interposer: {generation.first_pass_title!r} {source.why}, so the hires upscaler "
            f"{LEARNED_UPSCALE_MODE!r} cannot upscale its latents. Choose another hires upscaler."
        )
    return source.space


# ------------------------------------------------------------------ decisions


def plan(generation, source: Family | None, target: Family | None) -> Direction | None:
    """The direction to convert, or ``None`` (with one console line saying why, where that helps)."""
    if generation.options.direction != AUTO:
        chosen = direction(generation.options.direction)
        if source is not None and target is not None and source.same_as(target):
            generation.say_once("same", f"both passes are {source.description}: the explicit {chosen.name} is not "
                          "applied.")  # fmt: skip
            return None
        looks_like = (source.key, target.key) if source is not None and target is not None else None
        if looks_like is not None and looks_like != (chosen.src.name, chosen.dst.name):
            generation.say_once(
                "mismatch",
                f"the checkpoints look like {source.key}-to-{target.key}, but the explicit direction "
                f"{chosen.name} is used as chosen.",
            )
            return chosen
        # Keep the factors the loaded models actually use.
        return Direction(
            source.space if source is not None and source.space and source.key == chosen.src.name else chosen.src,
            target.space if target is not None and target.space and target.key == chosen.dst.name else chosen.dst,
        )
    if source is None or target is None:
        unknown = generation.first_pass_title if source is None else model_title(generation.p.sd_model)
        generation.say_once(
            "unknown",
            f"cannot tell which model family {unknown!r} belongs to; choose an explicit direction "
            "in the script or in Settings > Latent Interposer.",
        )
        return None
    if source.same_as(target):
        if generation.options.selected:
            generation.say_once("same", f"both passes are {source.description}: nothing to convert.")
        return None
    refuse_unsupported(generation, source, target, "hires pass")
    if source.relaid_as(target):
        return None  # one space in two layouts: re-laid out, nothing to convert
    return Direction(source.space, target.space)


def refuse_unsupported(generation, source: Family, target: Family, where: str) -> None:
    """Crossing into or out of a family without an interposer: one line, and no image from wrong latents."""
    for family, title in ((source, generation.first_pass_title), (target, target_title(generation))):
        if family.space is None:
            raise UnsupportedFamilyError(
                f"Latent Interposer: {title!r} {family.why}. The {where} goes from {source.description} to "
                f"{target.description}, so the latents cannot be converted: use checkpoints of one family, or "
                "a pixel upscaler for hires fix (the webui then decodes and re-encodes)."
            )


def target_title(generation) -> str:
    info = getattr(generation.p, "hr_checkpoint_info", None)
    if getattr(generation.p, "is_hr_pass", False) or info is None:
        return model_title(generation.p.sd_model)
    return str(getattr(info, "short_title", None) or getattr(info, "title", None) or "unknown checkpoint")
