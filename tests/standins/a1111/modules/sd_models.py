"""Mirrors modules/sd_models.py (1.10.1): CheckpointInfo (name relative to ``models/Stable-diffusion``,
title, short title, aliases), checkpoint lookup and ``reload_model_weights`` as the webui runs it with
the default ``sd_checkpoints_limit`` of 1:

* the checkpoint already loaded: returned at once;
* a checkpoint whose config (``sd_models_config.find_checkpoint_config``) is the loaded model's: its
  weights are loaded **into the same model object** (``load_model_weights``), so model identity says
  nothing about which checkpoint is loaded;
* another config: the old model is sent to the trash (the webui moves it to the ``meta`` device; here it
  refuses to run) and a new model object is built.

Checkpoints are real files (safetensors headers that name the keys the webui looks at, see
``fake_models.write_checkpoint``); each has a factory that builds its ``FakeModel`` "weights"."""

from __future__ import annotations

import json
import os

import torch

from modules import paths, sd_models_config, shared

model_dir = "Stable-diffusion"
checkpoints_list: dict = {}
checkpoint_aliases: dict = {}
factories: dict = {}  # filename -> callable() -> model (test-only registry: the checkpoint's "weights")
load_count = 0


def model_hash(filename):
    """The webui's old short hash: sha256 of 64 KiB at offset 1 MiB (of an empty read for small files)."""
    try:
        with open(filename, "rb") as file:
            import hashlib

            m = hashlib.sha256()
            file.seek(0x100000)
            m.update(file.read(0x10000))
            return m.hexdigest()[0:8]
    except FileNotFoundError:
        return "NOFILE"


class CheckpointInfo:
    def __init__(self, filename):
        self.filename = filename
        abspath = os.path.abspath(filename)
        model_path = os.path.abspath(os.path.join(paths.models_path, model_dir))
        name = abspath.replace(model_path, "") if abspath.startswith(model_path) else os.path.basename(filename)
        if name.startswith("\\") or name.startswith("/"):
            name = name[1:]
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"
        self.name = name
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = os.path.splitext(name.replace("/", "_").replace("\\", "_"))[0]
        self.hash = model_hash(filename)
        self.sha256 = None
        self.shorthash = None
        self.title = name
        self.short_title = self.name_for_extra
        self.ids = [self.hash, self.model_name, self.title, name, self.name_for_extra, f"{name} [{self.hash}]"]

    def register(self):
        checkpoints_list[self.title] = self
        for i in self.ids:
            checkpoint_aliases[i] = self


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
    found = sorted(
        [info for info in checkpoints_list.values() if search_string in info.title], key=lambda x: len(x.title)
    )
    return found[0] if found else None


def select_checkpoint():
    info = checkpoint_aliases.get(shared.opts.sd_model_checkpoint)
    if info is not None:
        return info
    if not checkpoints_list:
        raise FileNotFoundError("No checkpoints found")
    return next(iter(checkpoints_list.values()))


class SkipWritingToConfig:
    skip = False
    previous = None

    def __enter__(self):
        self.previous = SkipWritingToConfig.skip
        SkipWritingToConfig.skip = True
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        SkipWritingToConfig.skip = self.previous


def get_checkpoint_state_dict(checkpoint_info):
    """The state dict's names and shapes (meta tensors): all that the config guess looks at."""
    with open(checkpoint_info.filename, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    header.pop("__metadata__", None)
    return {key: torch.empty(value["shape"], device="meta") for key, value in header.items()}


def send_model_to_trash(m):
    m.trashed = True


def load_model_weights(model, checkpoint_info, state_dict):
    """The checkpoint's weights into the existing model object (same config)."""
    weights = factories[checkpoint_info.filename]()
    weights.check_config(model.used_config)
    model.__dict__.update({k: v for k, v in vars(weights).items() if k != "used_config"})
    model.sd_model_checkpoint = checkpoint_info.filename
    model.sd_checkpoint_info = checkpoint_info
    if not SkipWritingToConfig.skip:
        shared.opts.data["sd_model_checkpoint"] = checkpoint_info.title


def load_model(checkpoint_info, state_dict):
    model = factories[checkpoint_info.filename]()
    model.used_config = sd_models_config.find_checkpoint_config(state_dict, checkpoint_info)
    model.check_config(model.used_config)
    model.sd_model_checkpoint = checkpoint_info.filename
    model.sd_checkpoint_info = checkpoint_info
    if not SkipWritingToConfig.skip:
        shared.opts.data["sd_model_checkpoint"] = checkpoint_info.title
    shared.sd_model = model
    return model


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    global load_count
    checkpoint_info = info or select_checkpoint()
    current = sd_model or shared.sd_model
    if current is not None and current.sd_model_checkpoint == checkpoint_info.filename and not forced_reload:
        return current
    state_dict = get_checkpoint_state_dict(checkpoint_info)
    checkpoint_config = sd_models_config.find_checkpoint_config(state_dict, checkpoint_info)
    load_count += 1
    if current is None or checkpoint_config != current.used_config:
        if current is not None:
            send_model_to_trash(current)
        return load_model(checkpoint_info, state_dict)
    load_model_weights(current, checkpoint_info, state_dict)
    shared.sd_model = current
    return current
