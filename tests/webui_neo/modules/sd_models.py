"""Mirrors modules/sd_models.py (Neo @ 3df257a): CheckpointInfo and lookup as in A1111, but no
``reload_model_weights``/``load_model``/``checkpoints_loaded``: ``forge_model_reload()`` loads whatever
``model_data.forge_loading_parameters`` names (set by ``modules_forge.main_entry``), and only when
``str(forge_loading_parameters)`` changed since the last load. Every load builds a **new** model object and drops
the old one (Neo unloads all models first): no same-config reuse as in A1111.

Checkpoints are small safetensors files with the key names Neo's ``huggingface_guess`` looks at; each has a
factory (a test-only registry) that builds its engine (``fake_engines``)."""

from __future__ import annotations

import os

from modules import paths, shared

model_dir = "Stable-diffusion"
checkpoints_list: dict = {}
checkpoint_aliases: dict = {}
factories: dict = {}  # filename -> callable() -> engine
load_count = 0


class CheckpointInfo:
    def __init__(self, filename):
        self.filename = filename
        abspath = os.path.abspath(filename)
        model_path = os.path.abspath(os.path.join(paths.models_path, model_dir))
        name = abspath.replace(model_path, "") if abspath.startswith(model_path) else os.path.basename(filename)
        name = name.strip("/").strip("\\")
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"
        self.name = name
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = os.path.splitext(name.replace("/", "_").replace("\\", "_"))[0]
        self.hash = None
        self.sha256 = None
        self.shorthash = None
        self.title = name
        self.short_title = self.name_for_extra
        self.ids = [self.model_name, self.title, name, self.name_for_extra]

    def register(self):
        checkpoints_list[self.title] = self
        for i in self.ids:
            checkpoint_aliases[i] = self

    def calculate_shorthash(self):
        return None


def register_checkpoint(filename, factory):
    info = CheckpointInfo(filename)
    info.register()
    factories[filename] = factory
    return info


def get_closet_checkpoint_match(search_string):
    if not search_string:
        return None
    found = checkpoint_aliases.get(search_string)
    if found is not None:
        return found
    found = sorted([info for info in checkpoints_list.values() if search_string in info.title],
                   key=lambda x: len(x.title))  # fmt: skip
    return found[0] if found else None


def select_checkpoint():
    info = checkpoint_aliases.get(shared.opts.sd_model_checkpoint)
    if info is not None:
        return info
    if not checkpoints_list:
        return None
    return next(iter(checkpoints_list.values()))


class SdModelData:
    def __init__(self):
        self.sd_model = None
        self.forge_loading_parameters = {}
        self.forge_hash = ""

    def get_sd_model(self):
        return self.sd_model

    def set_sd_model(self, v):
        self.sd_model = v


model_data = SdModelData()


def forge_model_reload():
    """Load the checkpoint ``forge_loading_parameters`` names, unless that is what was loaded last."""
    global load_count
    current_hash = str(model_data.forge_loading_parameters)
    if model_data.forge_hash == current_hash:
        return model_data.sd_model, False
    if model_data.sd_model is not None:
        model_data.sd_model.trashed = True  # Neo unloads every model before loading the next
        model_data.sd_model = None
        model_data.forge_hash = ""
    checkpoint_info = model_data.forge_loading_parameters.get("checkpoint_info")
    if checkpoint_info is None:
        raise ValueError("Failed to find available model...")
    load_count += 1
    sd_model = factories[checkpoint_info.filename]()
    sd_model.extra_generation_params = {}
    sd_model.comments = []
    sd_model.sd_checkpoint_info = checkpoint_info
    sd_model.filename = checkpoint_info.filename
    sd_model.sd_model_hash = None
    model_data.set_sd_model(sd_model)
    model_data.forge_hash = current_hash
    return sd_model, True


def apply_token_merging(sd_model, token_merging_ratio):
    pass
