"""Mirrors modules/sd_models.py (Neo @ 3df257a): CheckpointInfo and lookup as in A1111, but no
``reload_model_weights``/``load_model``/``checkpoints_loaded``: ``forge_model_reload()`` loads whatever
``model_data.forge_loading_parameters`` names (set by ``modules_forge.main_entry``), and only when
``str(forge_loading_parameters)`` changed since the last load. Every load builds a **new** model object and drops
the old one (Neo unloads all models first): no same-config reuse as in A1111.

Checkpoints are small safetensors files with the key names Neo's ``huggingface_guess`` looks at; each has a
factory (a test-only registry) that builds its engine (``fake_engines``).

**Modules** (``forge_loading_parameters["additional_modules"]``: separate VAE / text-encoder files, Neo's
``backend/loader.py`` ``split_state_dict`` -> ``replace_state_dict``): a VAE file *replaces* the checkpoint's VAE
whatever its family, so a VAE of other latent channels fails to load (``size mismatch for decoder.conv_in.weight``,
as Neo's ``load_state_dict``) and one of the same channels but another family decodes the images (wrongly). A
diffusion-model-only file (``bundled[filename] = False``) fails to load without a VAE and a text-encoder file of its
own family. Text encoders of another family are ignored by an all-in-one checkpoint, as Neo renames them under a
prefix the engine never reads."""

from __future__ import annotations

import os

from modules import paths, shared

model_dir = "Stable-diffusion"
checkpoints_list: dict = {}
checkpoint_aliases: dict = {}
factories: dict = {}  # filename -> callable() -> engine
bundled: dict = {}  # filename -> False for a diffusion-model-only file (no VAE, no text encoders inside)
module_files: dict = {}  # module filename -> ("vae", tiny VAE, latent channels) | ("text_encoder", architecture)
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
    _apply_modules(sd_model, checkpoint_info.filename, model_data.forge_loading_parameters.get("additional_modules"))
    sd_model.extra_generation_params = {}
    sd_model.comments = []
    sd_model.sd_checkpoint_info = checkpoint_info
    sd_model.filename = checkpoint_info.filename
    sd_model.sd_model_hash = None
    model_data.set_sd_model(sd_model)
    from modules import processing

    # Neo sd_models.py 387 (2.26): the first-pass noise and the hires size follow the loaded model's VAE
    ratio = sd_model.forge_objects.vae.upscale_ratio
    processing.opt_f = ratio if isinstance(ratio, int) else 8
    model_data.forge_hash = current_hash
    return sd_model, True


def apply_token_merging(sd_model, token_merging_ratio):
    pass


def register_module(filename, kind, value, channels=None):
    module_files[filename] = (kind, value, channels)


def _apply_modules(sd_model, filename, modules):
    """Neo's ``replace_state_dict`` for each module file, then the checks ``load_state_dict`` makes."""
    vae = text_encoder = None
    for module in modules or []:
        kind, value, channels = module_files[module]
        if kind == "vae":  # channels: the file's decoder.conv_in input (FLUX.2: 32, unpacked, for Klein too)
            expected = getattr(sd_model, "vae_decoder_channels", sd_model.forge_objects.vae.latent_channels)
            if channels != expected:
                raise RuntimeError(
                    "Error(s) in loading state_dict for IntegratedAutoencoderKL:\n\tsize mismatch for "
                    f"decoder.conv_in.weight: copying a param with shape torch.Size([512, {channels}, 3, 3]) from "
                    f"checkpoint, the shape in current model is torch.Size([512, {expected}, 3, 3])."
                )
            vae = value
        else:
            text_encoder = value
    if vae is not None:
        sd_model.vae = vae
    if not bundled.get(filename, True):
        if vae is None:
            raise ValueError(f"{filename}: no VAE weights (a diffusion-model file needs its VAE module)")
        if text_encoder != sd_model.architecture:
            raise ValueError(f"{filename}: no {sd_model.architecture} text encoder (choose its text-encoder module)")
