"""Mirrors modules_forge/main_entry.py (Neo @ 3df257a): the checkpoint and module selection live in options, and
``refresh_model_loading_parameters`` turns them into ``model_data.forge_loading_parameters`` (what
``forge_model_reload`` loads, and what the cond cache keys on). ``checkpoint_change`` returns whether it changed."""

from __future__ import annotations

from modules import sd_models, shared


def refresh_model_loading_parameters(*, refresh: bool = True):
    if not refresh:
        return
    checkpoint_info = sd_models.select_checkpoint()
    if checkpoint_info is None:
        return
    sd_models.model_data.forge_loading_parameters = dict(
        checkpoint_info=checkpoint_info,
        additional_modules=shared.opts.forge_additional_modules,
        unet_storage_dtype=None,
    )


def checkpoint_change(ckpt_name: str, preset=None, save=True, refresh=True) -> bool:
    new_ckpt_info = sd_models.get_closet_checkpoint_match(ckpt_name)
    current_ckpt_info = sd_models.get_closet_checkpoint_match(getattr(shared.opts, "sd_model_checkpoint", ""))
    if new_ckpt_info == current_ckpt_info:
        return False
    shared.opts.set("sd_model_checkpoint", ckpt_name)
    refresh_model_loading_parameters(refresh=refresh)
    return True


def modules_change(module_values: list, preset=None, save=True, refresh=True) -> bool:
    modules = sorted(module_values or [])
    if modules == getattr(shared.opts, "forge_additional_modules", []):
        return False
    shared.opts.set("forge_additional_modules", modules)
    refresh_model_loading_parameters(refresh=refresh)
    return True
