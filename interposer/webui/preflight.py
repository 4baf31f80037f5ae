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

from ..errors import InterposerError, WeightsNotFoundError
from . import hires
from .families import file_names, latent_grid, vae_file_channels
from .options import AUTO, LEARNED_UPSCALE_MODE
from .samplers import RefinerSwitchError, switch_refusal


class HiresModulesError(InterposerError, RuntimeError):
    """A hires pass on a checkpoint of another family would load with the first pass's VAE / text encoders."""


def check_before_sampling(generation: Any) -> None:
    """Raise the refusal or missing-file error the generation would meet later (one line each)."""
    if generation.options.enabled:
        refusal = refiner_refusal(generation)
        if refusal is not None:
            raise RefinerSwitchError(refusal)
    check_hires(generation)
    if generation.options.enabled:
        check_hires_modules(generation)


def has_hires_pass(p: Any) -> bool:
    return bool(getattr(p, "enable_hr", False)) and callable(getattr(p, "sample_hr_pass", None))


def check_hires_modules(generation: Any) -> None:
    """A hires checkpoint of another family gets its own VAE and text encoders, never the first pass's.

    The Forges keep the first pass's separate VAE / text-encoder files for the hires pass unless told otherwise
    ("Use same choices", the default): a crash when the hires model loads a VAE of other channels, or an image
    decoded by the wrong family's VAE. A hires checkpoint with its own VAE and text encoders inside is switched to
    them ("Built-in", said in the console and the infotext); a diffusion-model-only file needs its family's files,
    which only the user knows: refused before the first pass, naming the setting."""
    p, webui = generation.p, generation.webui
    info = getattr(p, "hr_checkpoint_info", None)
    if not has_hires_pass(p) or info is None:
        return
    source = generation.family
    target = webui.checkpoint(info, p.sd_model)
    if target.family is not None and target.family.space is not None:
        check_chosen_vae(webui, p, target)
    if not webui.hires_keeps_modules(p):
        return
    if source is None or target.family is None or source.same_as(target.family):
        return
    modules = webui.first_pass_modules(generation.option)
    if not target.bundled:
        kept = (
            f"the first pass's {source.description} files ({', '.join(file_names(modules))})"
            if modules
            else f"none at all (the {source.description} first pass used those inside its checkpoint)"
        )
        raise HiresModulesError(
            f"Latent Interposer: the hires checkpoint {target.title!r} ({target.family.description}) has no VAE and "
            f"text encoders of its own, and {webui.hires_modules_setting} is 'Use same choices', which gives it "
            f"{kept}. Choose its own VAE and text-encoder files in {webui.hires_modules_setting}."
        )
    if modules:
        webui.use_builtin_hires_modules(p)
        generation.log(
            f"the hires checkpoint {target.title!r} is {target.family.description} and the first pass ran with "
            f"{', '.join(file_names(modules))}: the hires pass uses the VAE and text encoders inside its checkpoint "
            f"('Built-in' instead of 'Use same choices' in {webui.hires_modules_setting})."
        )


def check_chosen_vae(webui: Any, p: Any, target: Any) -> None:
    """A VAE file chosen by name for the hires pass whose latent channels are not the hires model's: the webui
    would fail to load it after the whole first pass (or decode garbage), so it is said now."""
    expected = target.family.space.channels
    for path in webui.hires_module_files(p):
        channels = vae_file_channels(path)
        if channels is not None and channels != expected:
            raise HiresModulesError(
                f"Latent Interposer: the VAE file {file_names([path])[0]} chosen in {webui.hires_modules_setting} "
                f"has {channels}-channel latents, but the hires checkpoint {target.title!r} "
                f"({target.family.description}) needs {expected}. Choose that checkpoint's own VAE there."
            )


def check_hires(generation: Any) -> None:
    """A latent hires pass: the families it crosses, and the interposer and upscaler files it will use."""
    p = generation.p
    if not has_hires_pass(p):
        return
    if getattr(p, "latent_scale_mode", None) is None:
        return  # a pixel upscaler: the webui decodes and re-encodes, nothing of ours runs
    learned = getattr(p, "hr_upscaler", None) == LEARNED_UPSCALE_MODE
    source = generation.family
    target = generation.webui.checkpoint(getattr(p, "hr_checkpoint_info", None), p.sd_model).family
    enabled = generation.options.enabled
    if enabled and generation.options.direction == AUTO and (source is None or target is None):
        return  # decided once the hires model is loaded
    dirn = hires.plan(generation, source, target) if enabled else None
    size_in = latent_grid(source, (int(p.height), int(p.width)))
    size = latent_grid(target if dirn is not None else source, (int(p.hr_upscale_to_y), int(p.hr_upscale_to_x)))
    converter = generation.converter
    try:
        if learned and dirn is not None:
            converter.prepare_convert_upscale(dirn.src, dirn.dst, size_in, size)
        elif learned and source is not None and source.space is None and source.same_as(target or source):
            pass  # interpolated in its own family (Generation.interpolate)
        elif learned:
            converter.prepare_upscale(hires.upscale_space(generation, source), size_in, size)
        elif dirn is not None:
            converter.prepare(dirn)
    except WeightsNotFoundError as exc:
        unpublished = [spec for spec, _ in getattr(exc, "missing", ()) if spec is not None and not spec.is_published]
        if dirn is None or not any(spec.kind == "interposer" for spec in unpublished):
            raise
        error = WeightsNotFoundError(
            f"Latent Interposer: the hires pass goes from {source.description} to {target.description}. "
            f"{str(exc).removeprefix('Latent Interposer: ')} Or use a pixel upscaler for hires fix (the webui then "
            "decodes and re-encodes)."
        )
        error.missing = exc.missing
        raise error from None


def refiner_refusal(generation: Any) -> str | None:
    """The refusal a refiner switch of this generation will meet, if that is known before the first pass.

    Known: the loaded base model, the hires and refiner checkpoints, the samplers and which pass the switch
    happens in (:meth:`.adapter.Webui.hires_refiner_pass`; Forge Neo never switches inside hires fix)."""
    p, webui = generation.p, generation.webui
    refiner = getattr(p, "refiner_checkpoint_info", None)
    switch_at = getattr(p, "refiner_switch_at", None)
    if refiner is None or not webui.switch_reachable(switch_at, generation.option):
        return None  # no refiner, or a switch the webui never reaches
    base = p.sd_model
    hires = has_hires_pass(p)
    if hires and not webui.refiner_in_hires:
        return None  # the webui runs no refiner with hires fix
    which = webui.hires_refiner_pass(generation.option) if hires else "first pass"
    target = webui.checkpoint(refiner, base)
    passes = []  # the checkpoint each switching pass runs on, and its sampler
    first_switches = which in ("first pass", "both passes") and not (
        hires and getattr(p, "firstpass_image", None) is not None
    )
    if first_switches:
        passes.append((webui.checkpoint(None, base), p.sampler_name))
    if hires and which in ("second pass", "both passes"):
        sampler = getattr(p, "hr_sampler_name", None) or p.sampler_name
        hires_info = getattr(p, "hr_checkpoint_info", None)
        if hires_info is None and first_switches and not webui.hires_reloads_first_pass_model:
            hires_checkpoint = target  # the refiner loaded in the first pass is still loaded: no switch there
        else:
            hires_checkpoint = webui.checkpoint(hires_info, base)
        passes.append((hires_checkpoint, sampler))
    for current, sampler in passes:
        if current.filename == target.filename:
            continue  # the refiner is already the loaded model in that pass: the webui does not switch
        if current.family is None or target.family is None or current.family.same_as(target.family):
            continue  # not known to cross families
        refusal = switch_refusal(webui, generation.option, generation.options.refiner_strategy, current, target,
                                 sampler)  # fmt: skip
        if refusal is not None:
            return refusal
    return None
