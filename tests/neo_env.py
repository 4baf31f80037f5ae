"""Boots the Forge Neo stand-in (tests/standins/neo) with this extension loaded, for the Neo tests.

Both stand-ins have a top-level ``modules`` package, so only one can be imported at a time: :func:`neo_modules`
takes the A1111 stand-in's packages out of ``sys.modules`` (and its folder off ``sys.path``), lets the Neo one be
imported, and puts everything back afterwards, so the A1111 tests that run later see their own modules.

Neo's checkpoints here: ``sd15`` (SD1.5), ``sdxl`` (SDXL) and ``lumina2`` (Lumina 2: FLUX.1's latent space, 16
channels), all-in-one files whose VAEs are the TAESD files in ../shared and whose denoisers know one photo;
``lumina2-dit``, the same Lumina 2 as users load it: a diffusion-model-only file that needs the modules
``ae.safetensors`` (its VAE) and ``gemma_2_2b.safetensors`` (its text encoder); ``mugen`` (FLUX.2's latents, 32
channels, taef2 as its VAE); ``klein`` (FLUX.2 packed, 128 channels at /16), a diffusion-model file that needs
``flux2-vae.safetensors`` (taef2 packed as Klein's VAE packs) and ``qwen_3_4b.safetensors``; and ``qwen``, of a
family no interposer converts (it cannot sample). ``sdxl_vae.safetensors`` is an SDXL VAE module.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from webui_env import REPO, SIZE, WEBUI, Webui, load_the_extension

NEO = REPO / "tests" / "standins" / "neo"
STANDIN_PACKAGES = {"modules", "modules_forge", "huggingface_guess", "k_diffusion", "gradio", "launch", "xyz_grid",
                    "fake_engines"}  # fmt: skip

_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
# Key names (and shapes where Neo's huggingface_guess reads them) of each kind of checkpoint, tiny tensors.
_DIT = "model.diffusion_model."
_SD_VAE = {"first_stage_model.decoder.conv_in.weight": [1, 4, 1, 1]}
CHECKPOINT_KEYS = {
    "sd15": {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": [1, 1],
             _UNET_IN: [1, 4, 1, 1], **_SD_VAE},
    "sdxl": {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [1, 1],
             "conditioner.embedders.1.model.ln_final.weight": [1], _UNET_IN: [1, 4, 1, 1], **_SD_VAE},
    "lumina2": {_DIT + "cap_embedder.1.weight": [1, 1], _DIT + "layers.0.attention.qkv.weight": [1, 1],
                "vae.decoder.conv_in.weight": [1, 16, 1, 1], "text_encoders.gemma2_2b.norm.weight": [1]},
    "lumina2-dit": {"cap_embedder.1.weight": [1, 1], "layers.0.attention.qkv.weight": [1, 1]},
    "mugen": {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [1, 1],
              "conditioner.embedders.1.model.ln_final.weight": [1], _UNET_IN: [1, 32, 1, 1],
              "vae.decoder.conv_in.weight": [1, 32, 1, 1]},
    "klein": {"double_blocks.0.img_attn.norm.key_norm.scale": [1],
              "double_stream_modulation_img.lin.weight": [1, 1]},
    "qwen": {"model.diffusion_model.txt_norm.weight": [1], "model.diffusion_model.img_in.weight": [1, 64]},
}  # fmt: skip
# Separate VAE / text-encoder files ("modules"): kind, the stand-in's VAE family or text encoder, latent channels.
MODULE_KEYS = {
    "ae": {"decoder.conv_in.weight": [1, 16, 1, 1]},
    "sdxl_vae": {"decoder.conv_in.weight": [1, 4, 1, 1]},
    "gemma_2_2b": {"model.norm.weight": [1]},
    "flux2-vae": {"decoder.conv_in.weight": [1, 32, 1, 1], "bn.running_mean": [128]},
    "qwen_3_4b": {"model.norm.weight": [1]},
}


@contextlib.contextmanager
def neo_modules():
    """Swap the A1111 stand-in's packages for Forge Neo's while the block runs."""
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] in STANDIN_PACKAGES}
    for name in saved:
        del sys.modules[name]
    saved_path = list(sys.path)
    sys.path[:] = [str(NEO), *(entry for entry in sys.path if entry != str(WEBUI))]
    try:
        yield
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] in STANDIN_PACKAGES]:
            del sys.modules[name]
        sys.modules.update(saved)
        sys.path[:] = saved_path


def write_checkpoint(path: Path, kind: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: torch.zeros(shape, dtype=torch.float16) for key, shape in CHECKPOINT_KEYS[kind].items()}, str(path))
    return str(path)


def add_checkpoint(name: str, kind: str, factory):
    from modules import paths, sd_models

    path = write_checkpoint(Path(paths.models_path) / sd_models.model_dir / f"{name}.safetensors", kind)
    return sd_models.register_checkpoint(path, factory)


def add_module(name: str, kind: str, value, channels: int | None = None) -> str:
    """A module file ``models/VAE/<name>.safetensors`` or ``models/text_encoder/...`` (``kind``: vae or
    text_encoder) with the key names Neo's loader reads; returns its path as Neo stores it in the options."""
    from modules import paths, sd_models

    folder = "VAE" if kind == "vae" else "text_encoder"
    path = Path(paths.models_path) / folder / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: torch.zeros(shape, dtype=torch.float16) for key, shape in MODULE_KEYS[name].items()}, str(path))
    sd_models.register_module(str(path), kind, value, channels)
    return str(path)


FORGE_VERSION = "f2.0.1v1.10.1-previous-669-gdfdcbab6"  # lllyasviel's Forge @ dfdcbab


def boot(monkeypatch, tmp_path, tiny_vaes, photo: torch.Tensor, weights_dir: Path, *, empty_modes=False,
         forge=False) -> Webui:  # fmt: skip
    """Reset the Neo stand-in and load the scripts as Neo does (inside :func:`neo_modules`): the built-in ControlNet's
    import of ``modules.api.models`` comes first, then this repository as the one user extension. ``empty_modes``:
    ``shared.latent_upscale_modes`` empty with default ``"None"``, as Neo 2.2x ships it. ``forge``: lllyasviel's
    Forge where it differs on the extension's paths (version tag, ``apply_refiner``, the cond cache keyed by the
    loaded checkpoint, ``is_inpaint`` on DiTs, A1111's ``hires_fix_refiner_pass`` option)."""
    import fake_engines
    from modules import extensions, paths, sd_models, sd_samplers_common, shared
    from modules.options import OptionInfo
    from modules_forge import forge_version, main_entry

    shared.state.interrupted = False
    shared.state.skipped = False
    sd_models.checkpoints_list.clear()
    sd_models.checkpoint_aliases.clear()
    sd_models.factories.clear()
    sd_models.bundled.clear()
    sd_models.module_files.clear()
    sd_models.model_data.__init__()
    for key in [k for k in shared.opts.data_labels if k.startswith("latent_interposer_")]:
        del shared.opts.data_labels[key]
    shared.opts.data = {k: v.default for k, v in shared.opts.data_labels.items()}
    if forge:
        monkeypatch.setattr(forge_version, "version", FORGE_VERSION)
        monkeypatch.setattr(sd_samplers_common, "FLAVOUR", "forge")
        monkeypatch.setattr(fake_engines, "FORGE_INPAINT_RULE", True)
        refiner_pass = OptionInfo("second pass", "Hires fix: which pass to enable refiner for")
        monkeypatch.setitem(shared.opts.data_labels, "hires_fix_refiner_pass", refiner_pass)
        shared.opts.data["hires_fix_refiner_pass"] = "second pass"
    if empty_modes:
        monkeypatch.setattr(shared, "latent_upscale_modes", {})
        monkeypatch.setattr(shared, "latent_upscale_default_mode", "None")
    monkeypatch.setattr(paths, "models_path", str(tmp_path / "models"))
    monkeypatch.setattr(paths, "script_path", str(NEO))
    monkeypatch.setattr(extensions, "extensions_dir", str(tmp_path / "extensions"))
    monkeypatch.setattr(extensions, "extensions_builtin_dir", str(tmp_path / "extensions-builtin"))
    (tmp_path / "extensions").mkdir(exist_ok=True)
    if not (tmp_path / "extensions" / "sd-latent-interposer").exists():
        (tmp_path / "extensions" / "sd-latent-interposer").symlink_to(REPO, target_is_directory=True)
    engines = {
        "sd15": lambda: fake_engines.StableDiffusion(tiny_vaes["v1"], photo),
        "sdxl": lambda: fake_engines.StableDiffusionXL(tiny_vaes["xl"], photo),
        "lumina2": lambda: fake_engines.Lumina2(tiny_vaes["fx"], photo),
        "lumina2-dit": lambda: fake_engines.Lumina2(None, photo),
        "mugen": lambda: fake_engines.Mugen(tiny_vaes.get("f2"), photo),
        "klein": lambda: fake_engines.Klein(photo),
        "qwen": lambda: fake_engines.QwenImage(photo),
    }
    for name, factory in engines.items():
        add_checkpoint(name, name, factory)
    sd_models.bundled[sd_models.get_closet_checkpoint_match("lumina2-dit").filename] = False
    sd_models.bundled[sd_models.get_closet_checkpoint_match("klein").filename] = False
    add_module("ae", "vae", tiny_vaes["fx"], 16)
    add_module("sdxl_vae", "vae", tiny_vaes["xl"], 4)
    add_module("gemma_2_2b", "text_encoder", "Lumina2")
    taef2 = tiny_vaes.get("f2")  # None where the TAESD folder has no taef2: Klein then cannot sample
    add_module("flux2-vae", "vae", fake_engines.PackedFlux2Vae(taef2) if taef2 is not None else fake_engines.NoVae(),
               32)  # fmt: skip
    add_module("qwen_3_4b", "text_encoder", "Klein")
    shared.opts.data["sd_model_checkpoint"] = "sdxl.safetensors"
    main_entry.refresh_model_loading_parameters()

    import modules.api.models  # noqa: F401  Neo's built-in ControlNet imports it before user extensions load

    return load_the_extension(monkeypatch, tiny_vaes, photo, weights_dir, hr_checkpoint_name="sd15",
                              hr_additional_modules=["Use same choices"])  # fmt: skip


def module_path(name: str) -> str:
    from modules import sd_models

    return next(path for path in sd_models.module_files if Path(path).stem == name)


__all__ = ["SIZE", "add_checkpoint", "add_module", "boot", "module_path", "neo_modules"]
