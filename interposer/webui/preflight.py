"""What a generation will need, checked when it starts: before the first pass, not after it.

A refused refiner sampler, an unsupported family or a missing weights file found at the hires pass costs the
whole first pass and a checkpoint load first (32.8 s on a CPU in the real webui for SDXL -> SD1.5 with
``Latent (NN)``). What is known before sampling: the loaded first-pass model, the hires and refiner
checkpoints (their files' headers, read the way the webui picks their model), the samplers, the hires upscaler
and sizes. Whatever is not known here (a ``.ckpt`` hires checkpoint, a model of no known family) is left to
the check at the pass itself. Files the generation needs are loaded now (or fetched, if downloads are on), so
the pass that follows uses them from the cache.

Everything here works on the duck-typed ``generation`` of :mod:`.generation` (``p``, ``webui``, ``options``,
``converter``, ``family``, ``plan``): this module does not import it.
"""

from __future__ import annotations

from typing import Any

from ..directions import Direction
from .options import AUTO, LEARNED_UPSCALE_MODE
from .samplers import RefinerSwitchError, inpainting_refusal, refusal_for


def check_before_sampling(generation: Any) -> None:
    """Raise the refusal or missing-file error the generation would meet later (one line each)."""
    if generation.options.enabled:
        refusal = refiner_refusal(generation)
        if refusal is not None:
            raise RefinerSwitchError(refusal)
    check_hires(generation)


def check_hires(generation: Any) -> None:
    """A latent hires pass: the families it crosses, and the interposer and upscaler files it will use."""
    p = generation.p
    if not getattr(p, "enable_hr", False) or not callable(getattr(p, "sample_hr_pass", None)):
        return
    if getattr(p, "latent_scale_mode", None) is None:
        return  # a pixel upscaler: the webui decodes and re-encodes, nothing of ours runs
    learned = getattr(p, "hr_upscaler", None) == LEARNED_UPSCALE_MODE
    source = generation.family
    target = generation.webui.checkpoint(getattr(p, "hr_checkpoint_info", None), p.sd_model).family
    enabled = generation.options.enabled
    if enabled and generation.options.direction == AUTO and (source is None or target is None):
        return  # decided once the hires model is loaded
    dirn = generation.plan(source, target) if enabled else None
    size_in = (int(p.height) // 8, int(p.width) // 8)
    size = (int(p.hr_upscale_to_y) // 8, int(p.hr_upscale_to_x) // 8)
    converter = generation.converter
    if learned and dirn is not None:
        converter.prepare_convert_upscale(dirn.src, dirn.dst, size_in, size)
    elif learned:
        converter.prepare_upscale(generation.upscale_space(source), size_in, size)
    elif dirn is not None:
        converter.prepare(dirn)


def refiner_refusal(generation: Any) -> str | None:
    """The refusal a refiner switch of this generation will meet, if that is known before the first pass.

    Known: the loaded base model, the hires and refiner checkpoints, the samplers and which pass the switch
    happens in (A1111's ``hires_fix_refiner_pass``; Forge Neo never switches inside hires fix)."""
    p, webui = generation.p, generation.webui
    refiner = getattr(p, "refiner_checkpoint_info", None)
    switch_at = getattr(p, "refiner_switch_at", None)
    if refiner is None or not webui.switch_reachable(switch_at, generation.option):
        return None  # no refiner, or a switch the webui never reaches
    base = p.sd_model
    hires = bool(getattr(p, "enable_hr", False)) and callable(getattr(p, "sample_hr_pass", None))
    if hires and not webui.refiner_in_hires:
        return None  # the webui runs no refiner with hires fix
    which = str(generation.option("hires_fix_refiner_pass", "second pass")) if hires else "first pass"
    passes = []  # the checkpoint each switching pass runs on, and its sampler
    if which in ("first pass", "both passes") and not (hires and getattr(p, "firstpass_image", None) is not None):
        passes.append((webui.checkpoint(None, base), p.sampler_name))
    if hires and which in ("second pass", "both passes"):
        sampler = getattr(p, "hr_sampler_name", None) or p.sampler_name
        passes.append((webui.checkpoint(getattr(p, "hr_checkpoint_info", None), base), sampler))
    target = webui.checkpoint(refiner, base)
    by_steps = webui.switches_by_steps(generation.option)
    for current, sampler in passes:
        if current.filename == target.filename:
            continue  # the refiner is already the loaded model in that pass: the webui does not switch
        if current.family is None or target.family is None or current.family.same_as(target.family):
            continue  # not known to cross families
        if current.family.space is None or target.family.space is None:
            unsupported, title = (current, current.title) if current.family.space is None else (target, target.title)
            return (
                f"Latent Interposer: {title!r} {unsupported.family.why}; the refiner switch from "
                f"{current.family.description} to {target.family.description} cannot be converted. Use a refiner "
                "of the base model's family."
            )
        dirn = Direction(current.family.space, target.family.space)
        refusal = webui.refiner_refusal(generation.option) or refusal_for(
            webui.samplers, sampler, generation.options.refiner_strategy, dirn, by_steps
        )
        if refusal is None and (current.image_conditioned or target.image_conditioned):
            refusal = inpainting_refusal(current.title, target.title)
        if refusal is not None:
            return refusal
    return None
