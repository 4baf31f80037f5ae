"""Boots the A1111 1.10.1 stand-in (tests/standins/a1111) with this extension loaded, for the webui tests.

The stand-in checkpoints are an "SDXL" base, an "SD1.5" and an "SD3" model whose VAEs are the
TAESD files in ../shared and whose denoisers know one photo (see tests/fake_models.py, which both stand-ins use).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
WEBUI = REPO / "tests" / "standins" / "a1111"
if str(WEBUI) not in sys.path:
    sys.path.insert(0, str(WEBUI))

from fake_models import FakeModel, write_checkpoint  # noqa: E402
from modules import (  # noqa: E402
    extensions,
    paths,
    sd_models,
    shared,
)

from interposer.images import psnr  # noqa: E402
from interposer.runtime import DEFAULT_CACHE  # noqa: E402

SIZE = 192  # first pass (24x24 latents); hires x1.5 -> 288 px (36x36 latents)


def _loaded(*names: str) -> list:
    """The stand-in modules loaded now (A1111's, or Forge Neo's inside ``neo_env.neo_modules``), looked up when
    called: the names imported at the top of this file are always A1111's."""
    import importlib

    return [importlib.import_module(f"modules.{name}") for name in names]


@dataclass
class HiresInput:
    x: torch.Tensor
    noise: torch.Tensor
    model: object


@dataclass
class Webui:
    """A booted stand-in. Its methods import ``modules`` when called, so the same class drives whichever stand-in
    is loaded (A1111's here, Forge Neo's through ``neo_env``); ``defaults`` are the stand-in's own request fields."""

    photo: torch.Tensor
    vaes: dict
    runner: object
    runner_img2img: object
    hires_inputs: list = field(default_factory=list)
    console: list = field(default_factory=list)
    defaults: dict = field(default_factory=dict)

    def script(self, title: str):
        return next(s for s in self.runner.scripts if s.title() == title)

    def script_args(self, title: str | None = None, values=None, runner=None) -> list:
        """The full args list the UI would send: defaults, the dropdown index, this script's values."""
        runner = runner or self.runner
        args = [None] * max([1, *(s.args_to for s in runner.scripts)])
        args[0] = 0
        for script in runner.scripts:
            if script.controls:
                args[script.args_from : script.args_to] = [c.value for c in script.controls]
        if title is not None:
            script = next(s for s in runner.scripts if s.title() == title)
            args[0] = runner.selectable_scripts.index(script) + 1
            if values is not None:
                args[script.args_from : script.args_to] = values
        return args

    def make_p(self, **kwargs):
        from modules import processing, shared

        settings = dict(prompt="a photo", seed=1, steps=6, width=SIZE, height=SIZE, sampler_name="Euler",
                        scheduler="Automatic", enable_hr=True, hr_scale=1.5, hr_upscaler="Latent",
                        hr_checkpoint_name="sd15_style", denoising_strength=0.5, hr_second_pass_steps=4,
                        cfg_scale=5.0)  # fmt: skip
        settings.update(self.defaults)
        settings.update(kwargs)
        return processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **settings)

    def generate(self, title: str | None = None, values=None, **kwargs):
        """One txt2img job as the UI runs it: ``scripts.run`` for a dropdown script, else process_images."""
        from modules import processing

        p = self.make_p(**kwargs)
        p.scripts = self.runner
        p.script_args = tuple(self.script_args(title, values))
        self.last_p = p
        processed = self.runner.run(p, *p.script_args)
        return processed if processed is not None else processing.process_images(p)

    def img2img(self, title: str | None = None, **kwargs):
        """One img2img job as the UI runs it (the img2img tab's own runner): the photo as init image."""
        from modules import processing, shared

        settings = dict(prompt="a photo", seed=1, steps=10, width=SIZE, height=SIZE, sampler_name="Euler",
                        scheduler="Automatic", denoising_strength=0.75, cfg_scale=5.0, init_images=[self.photo],
                        inpainting_fill=1)  # fmt: skip
        settings.update(kwargs)
        p = processing.StableDiffusionProcessingImg2Img(sd_model=shared.sd_model, **settings)
        p.scripts = self.runner_img2img
        p.script_args = tuple(self.script_args(title, runner=self.runner_img2img))
        self.last_p = p
        processed = self.runner_img2img.run(p, *p.script_args)
        return processed if processed is not None else processing.process_images(p)

    def hires_psnr(self, index: int = -1, family: str = "v1") -> float:
        """PSNR of the latents that reached the hires sampler, decoded by ``family``'s TAESD, vs the photo."""
        x = self.hires_inputs[index].x
        reference = F.interpolate(self.photo, size=(x.shape[-2] * 8, x.shape[-1] * 8), mode="area")
        return psnr(self.vaes[family].decode(x[:1]), reference)


def add_checkpoint(name: str, kind: str, factory) -> sd_models.CheckpointInfo:
    """A checkpoint file ``models/Stable-diffusion/<name>.safetensors`` of ``kind`` (see fake_models) whose
    "weights" are what ``factory()`` builds."""
    path = write_checkpoint(str(Path(paths.models_path) / sd_models.model_dir / f"{name}.safetensors"), kind)
    return sd_models.register_checkpoint(path, factory)


def boot(monkeypatch, tmp_path, tiny_vaes, photo: torch.Tensor, weights_dir: Path) -> Webui:
    """Reset the stand-in, register the checkpoints, load the scripts and settings as the webui does:
    this repository is the one extension in ``extensions/`` and the stand-in is the webui root."""
    shared.state.interrupted = False
    shared.state.skipped = False
    shared.cmd_opts.vae_path = None
    sd_models.checkpoints_list.clear()
    sd_models.checkpoint_aliases.clear()
    sd_models.factories.clear()
    shared.sd_model = None
    for key in [k for k in shared.opts.data_labels if k.startswith("latent_interposer_")]:
        del shared.opts.data_labels[key]
    shared.opts.data = {k: v.default for k, v in shared.opts.data_labels.items()}
    monkeypatch.setattr(paths, "models_path", str(tmp_path / "models"))
    monkeypatch.setattr(paths, "script_path", str(WEBUI))
    monkeypatch.setattr(extensions, "extensions_dir", str(tmp_path / "extensions"))
    monkeypatch.setattr(extensions, "extensions_builtin_dir", str(tmp_path / "extensions-builtin"))
    (tmp_path / "extensions").mkdir(exist_ok=True)
    if not (tmp_path / "extensions" / "sd-latent-interposer").exists():
        (tmp_path / "extensions" / "sd-latent-interposer").symlink_to(REPO, target_is_directory=True)
    for name, kind, family in (("sdxl_base", "xl", "xl"), ("sd15_style", "v1", "v1"), ("sd3_medium", "v3", "v3")):
        add_checkpoint(name, kind, lambda family=family: FakeModel(family, tiny_vaes[family], photo))
    shared.opts.data["sd_model_checkpoint"] = "sdxl_base.safetensors"

    return load_the_extension(monkeypatch, tiny_vaes, photo, weights_dir)


def load_the_extension(monkeypatch, tiny_vaes, photo: torch.Tensor, weights_dir: Path, **defaults) -> Webui:
    """What both stand-ins do once their checkpoints are set up: discover and load the scripts as the webui does,
    build both tabs' script UIs and settings, point the extension at ``weights_dir`` (downloads off), and record
    what reaches the hires sampler and what is printed. Uses whichever stand-in's ``modules`` is loaded."""
    extensions, script_callbacks, scripts, sd_samplers_kdiffusion, shared = _loaded(
        "extensions", "script_callbacks", "scripts", "sd_samplers_kdiffusion", "shared"
    )
    extensions.list_extensions()
    scripts.load_scripts()
    script_callbacks.before_ui_callback()
    runner = scripts.scripts_txt2img
    runner.initialize_scripts(False)
    runner.setup_ui()
    runner_img2img = scripts.scripts_img2img
    runner_img2img.initialize_scripts(True)
    runner_img2img.setup_ui()
    script_callbacks.ui_settings_callback()
    shared.opts.data["latent_interposer_weights_dir"] = str(weights_dir)
    shared.opts.data["latent_interposer_allow_download"] = False
    # The tests compare the script against the plain webui: "Apply automatically" (on by default) is turned on
    # by the tests that are about it (test_webui_script.py checks the default itself).
    shared.opts.data["latent_interposer_auto_apply"] = False
    DEFAULT_CACHE.clear()

    webui = Webui(photo=photo, vaes=tiny_vaes, runner=runner, runner_img2img=runner_img2img, defaults=defaults)
    original = sd_samplers_kdiffusion.KDiffusionSampler.sample_img2img

    def spy(self, p, x, noise, *args, **kwargs):
        webui.hires_inputs.append(HiresInput(x.clone(), noise.clone(), shared.sd_model))
        return original(self, p, x, noise, *args, **kwargs)

    monkeypatch.setattr(sd_samplers_kdiffusion.KDiffusionSampler, "sample_img2img", spy)
    monkeypatch.setattr("builtins.print", lambda *a, **k: webui.console.append(" ".join(map(str, a))))
    return webui
