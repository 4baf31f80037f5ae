"""Boots the Forge Neo stand-in (tests/webui_neo) with this extension loaded, for the Neo tests.

Both stand-ins have a top-level ``modules`` package, so only one can be imported at a time: :func:`neo_modules`
takes the A1111 stand-in's packages out of ``sys.modules`` (and its folder off ``sys.path``), lets the Neo one be
imported, and puts everything back afterwards, so the A1111 tests that run later see their own modules.

Neo's checkpoints here: ``sd15`` (SD1.5), ``sdxl`` (SDXL) and ``lumina2`` (Lumina 2: FLUX.1's latent space, 16
channels), whose VAEs are the TAESD files in ../shared and whose denoisers know one photo; ``mugen`` and ``qwen``
are of families no interposer converts (their stand-ins cannot even sample).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from webui_env import REPO, SIZE, WEBUI, Webui, load_the_extension

NEO = REPO / "tests" / "webui_neo"
STANDIN_PACKAGES = {"modules", "modules_forge", "huggingface_guess", "k_diffusion", "gradio", "launch", "xyz_grid",
                    "fake_engines"}  # fmt: skip

_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
# Key names (and shapes where Neo's huggingface_guess reads them) of each kind of checkpoint, tiny tensors.
_DIT = "model.diffusion_model."
CHECKPOINT_KEYS = {
    "sd15": {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": [1, 1],
             _UNET_IN: [1, 4, 1, 1]},
    "sdxl": {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [1, 1],
             "conditioner.embedders.1.model.ln_final.weight": [1], _UNET_IN: [1, 4, 1, 1]},
    "lumina2": {_DIT + "cap_embedder.1.weight": [1, 1], _DIT + "layers.0.attention.qkv.weight": [1, 1],
                "vae.decoder.conv_in.weight": [1, 16, 1, 1]},
    "mugen": {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [1, 1],
              "conditioner.embedders.1.model.ln_final.weight": [1], _UNET_IN: [1, 32, 1, 1]},
    "qwen": {"model.diffusion_model.txt_norm.weight": [1], "model.diffusion_model.img_in.weight": [1, 64]},
}  # fmt: skip


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


def boot(monkeypatch, tmp_path, tiny_vaes, photo: torch.Tensor, weights_dir: Path, *, empty_modes=False) -> Webui:
    """Reset the Neo stand-in and load the scripts as Neo does (inside :func:`neo_modules`): the built-in ControlNet's
    import of ``modules.api.models`` comes first, then this repository as the one user extension. ``empty_modes``:
    ``shared.latent_upscale_modes`` empty with default ``"None"``, as Neo 2.2x ships it."""
    import fake_engines
    from modules import extensions, paths, sd_models, shared
    from modules_forge import main_entry


    shared.state.interrupted = False
    shared.state.skipped = False
    sd_models.checkpoints_list.clear()
    sd_models.checkpoint_aliases.clear()
    sd_models.factories.clear()
    sd_models.model_data.__init__()
    for key in [k for k in shared.opts.data_labels if k.startswith("latent_interposer_")]:
        del shared.opts.data_labels[key]
    shared.opts.data = {k: v.default for k, v in shared.opts.data_labels.items()}
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
        "mugen": lambda: fake_engines.Mugen(photo),
        "qwen": lambda: fake_engines.QwenImage(photo),
    }
    for name, factory in engines.items():
        add_checkpoint(name, name, factory)
    shared.opts.data["sd_model_checkpoint"] = "sdxl.safetensors"
    main_entry.refresh_model_loading_parameters()

    import modules.api.models  # noqa: F401  Neo's built-in ControlNet imports it before user extensions load

    return load_the_extension(monkeypatch, tiny_vaes, photo, weights_dir, hr_checkpoint_name="sd15",
                              hr_additional_modules=["Use same choices"])  # fmt: skip


__all__ = ["SIZE", "add_checkpoint", "boot", "neo_modules"]
