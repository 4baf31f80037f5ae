"""Mirrors modules/sd_models.py (1.10.1): CheckpointInfo titles, checkpoint lookup and
``reload_model_weights`` (returns at once when the file is already loaded; otherwise builds the
model, which for SDXL <-> SD1.5 is always a new object). Tests register a factory per checkpoint."""

from __future__ import annotations

import os

from modules import shared

checkpoints_list: dict = {}
checkpoint_aliases: dict = {}
factories: dict = {}  # filename -> callable() -> model (test-only registry)
load_count = 0


class CheckpointInfo:
    def __init__(self, filename):
        self.filename = filename
        self.name = os.path.basename(filename)
        self.name_for_extra = os.path.splitext(self.name)[0]
        self.model_name = self.name_for_extra
        self.hash = None
        self.sha256 = None
        self.shorthash = None
        self.title = self.name
        self.short_title = self.name_for_extra
        self.ids = [self.model_name, self.name, self.title, self.short_title]

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


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    global load_count
    checkpoint_info = info or select_checkpoint()
    current = sd_model or shared.sd_model
    if current is not None and current.sd_model_checkpoint == checkpoint_info.filename and not forced_reload:
        return current
    model = factories[checkpoint_info.filename]()
    model.sd_model_checkpoint = checkpoint_info.filename
    model.sd_checkpoint_info = checkpoint_info
    if not SkipWritingToConfig.skip:
        shared.opts.data["sd_model_checkpoint"] = checkpoint_info.title
    shared.sd_model = model
    load_count += 1
    return model
