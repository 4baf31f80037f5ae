"""``Latent (NN)``: the learned latent upscaler as a hires upscaler, against the A1111 1.10.1 stand-in."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import photo, requires_taesd
from webui_env import SIZE, boot

from interposer.runtime import Converter, ModelCache
from interposer.webui import options as li_options
from interposer.webui.generation import ATTRIBUTE
from interposer.weights import WeightsQuery

TITLE = "Latent Interposer"
NN = "Latent (NN)"
HIRES = (SIZE * 3 // 2) // 8  # 36 latents


@pytest.fixture
def webui(monkeypatch, tmp_path, tiny_vaes, linear_upscalers):
    return boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), linear_upscalers)


@pytest.fixture
def first_pass(webui, monkeypatch):
    """The first pass's latents of each job (what sample_hr_pass receives)."""
    from modules import sd_samplers_kdiffusion

    seen = []
    original = sd_samplers_kdiffusion.KDiffusionSampler.sample

    def spy(self, p, *args, **kwargs):
        samples = original(self, p, *args, **kwargs)
        seen.append(samples.clone())
        return samples

    monkeypatch.setattr(sd_samplers_kdiffusion.KDiffusionSampler, "sample", spy)
    return seen


def _converter(folder) -> Converter:
    query = WeightsQuery(folders=(str(folder),), allow_download=False)
    return Converter(weights=query, device="cpu", precision="fp32", cache=ModelCache())


def test_the_mode_is_listed_where_the_webui_lists_hires_upscalers(webui):
    from modules import scripts, shared
    from modules.api import api

    assert shared.latent_upscale_modes[NN] == {"mode": "bilinear", "antialias": False}
    assert {"name": NN} in api.get_latent_upscale_modes()
    xyz = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    axis = next(option for option in xyz.axis_options if option.label == "Hires upscaler")
    assert NN in axis.choices()


def test_the_webuis_interpolation_after_our_hook_is_an_identity():
    """The webui calls F.interpolate(samples, size=target, mode=<our dict>) after sample_hr_pass's start;
    our latents already have the target size, so it must return them bit for bit."""
    mode = li_options.LEARNED_UPSCALE_SETTINGS
    for shape in [(1, 4, 36, 36), (2, 4, 37, 53), (1, 16, 48, 40)]:
        x = torch.randn(shape)
        y = F.interpolate(x, size=shape[-2:], mode=mode["mode"], antialias=mode["antialias"])
        assert torch.equal(x, y)


def test_same_family_without_the_script_upscales_with_the_learned_upscaler(webui, first_pass, linear_upscalers):
    processed = webui.generate(None, hr_upscaler=NN, hr_checkpoint_name="Use same checkpoint")
    hires = webui.hires_inputs[-1]
    assert tuple(hires.x.shape) == (1, 4, HIRES, HIRES)
    expected = _converter(linear_upscalers).upscale(first_pass[-1], "xl", size=(HIRES, HIRES))
    assert torch.allclose(hires.x, expected, atol=1e-5)  # exactly our upscale reached the sampler
    assert 'Latent upscaler: "xl x1.5, linear-fit, fp32"' in processed.infotexts[0]
    assert "Latent interposer:" not in processed.infotexts[0]
    assert sum("hires upscale: xl x1.5 (1, 4, 24, 24) -> (1, 4, 36, 36)" in line for line in webui.console) == 1
    assert ATTRIBUTE not in vars(webui.last_p)


def test_across_families_with_the_script_converts_and_upscales(webui, first_pass, linear_upscalers):
    processed = webui.generate(TITLE, hr_upscaler=NN)
    hires = webui.hires_inputs[-1]
    assert hires.model.is_sd1 and tuple(hires.x.shape) == (1, 4, HIRES, HIRES)
    converter = _converter(linear_upscalers)
    expected = converter.upscale(converter.convert(first_pass[-1], "xl", "v1"), "v1", size=(HIRES, HIRES))
    assert torch.allclose(hires.x, expected, atol=1e-5)
    text = processed.infotexts[0]
    assert 'Latent interposer: "xl-to-v1, linear-fit, fp32"' in text
    assert 'Latent upscaler: "v1 x1.5, linear-fit, fp32"' in text
    assert webui.hires_psnr(family="v1") > 15
    lines = [line for line in webui.console if "hires" in line and "->" in line]
    assert len(lines) == 2 and "hires: xl-to-v1" in lines[0] and "hires upscale: v1 x1.5" in lines[1]


def test_across_families_with_the_interposer_off_says_so(webui):
    processed = webui.generate(None, hr_upscaler=NN)
    assert 'Latent upscaler: "xl x1.5' in processed.infotexts[0]
    assert "Latent interposer:" not in processed.infotexts[0]
    assert sum("but the interposer is off" in line for line in webui.console) == 1


def test_any_hires_size_reaches_the_webuis_target(webui):
    webui.generate(None, hr_upscaler=NN, hr_checkpoint_name="Use same checkpoint", hr_scale=1.75)
    assert tuple(webui.hires_inputs[-1].x.shape[-2:]) == (int(SIZE * 1.75) // 8,) * 2
    assert any("hires upscale: xl x1.5+x1.25+resize" in line for line in webui.console)  # 1.875x, then down


def test_api_hires_call_with_the_learned_upscaler(webui):
    from modules.api import api

    request = {
        "prompt": "a photo", "seed": 1, "steps": 6, "width": SIZE, "height": SIZE, "sampler_name": "Euler",
        "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": NN, "denoising_strength": 0.5,
        "hr_second_pass_steps": 4, "hr_checkpoint_name": "sd15_style",
        "script_name": "Latent Interposer", "script_args": [True, "Auto", "From settings", "From settings"],
    }  # fmt: skip
    info = api.text2imgapi(request).infotexts[0]
    assert 'Latent upscaler: "v1 x1.5' in info and 'Latent interposer: "xl-to-v1' in info
    request = {k: v for k, v in request.items() if k not in ("script_name", "script_args")}
    request["hr_checkpoint_name"] = "Use same checkpoint"
    info = api.text2imgapi(request).infotexts[0]
    assert 'Latent upscaler: "xl x1.5' in info and "Latent interposer" not in info


def test_xyz_hires_upscaler_axis_switches_between_latent_and_nn(webui):
    from modules import scripts

    xyz = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    axis = next(option for option in xyz.axis_options if option.label == "Hires upscaler")
    p = webui.make_p(hr_checkpoint_name="Use same checkpoint")
    p.scripts = webui.runner
    p.script_args = tuple(webui.script_args())
    plain, learned, plain_again = xyz.run_cells(p, axis, ["Latent", NN, "Latent"])
    assert "Latent upscaler" not in plain.infotexts[0]
    assert "Latent upscaler" in learned.infotexts[0]
    assert "Latent upscaler" not in plain_again.infotexts[0]  # the shared dict was cleaned for this cell


def test_upscale_button_path(webui):
    """The ✨ button: the first-pass image is encoded with the SDXL VAE, then converted and upscaled."""
    webui.generate(TITLE, hr_upscaler=NN, firstpass_image=webui.photo)
    assert tuple(webui.hires_inputs[-1].x.shape) == (1, 4, HIRES, HIRES)
    assert any("hires upscale: v1 x1.5" in line for line in webui.console)
    assert webui.hires_psnr(family="v1") > 15


def test_missing_upscaler_weights_stop_the_generation_with_file_folder_and_url(webui, tmp_path, linear_weights):
    from modules import shared

    shared.opts.data["latent_interposer_weights_dir"] = str(linear_weights[0])  # interposers only
    with pytest.raises(Exception) as info:
        webui.generate(TITLE, hr_upscaler=NN)
    message = str(info.value)
    assert "latent-upscaler-v2.1_SDv1-x1.5.safetensors" in message and str(linear_weights[0]) in message
    assert "https://huggingface.co/city96/SD-Latent-Upscaler/resolve/main/latent-upscaler-v2.1_SDv1-x1.5" in message
    assert "python -m interposer" not in message  # not runnable as printed from a webui install
    assert "Settings → Latent Interposer → Download missing weights from the Hugging Face hub" in message
    assert not webui.hires_inputs  # never a bilinear or unconverted hires pass instead


def test_missing_upscaler_is_found_before_the_first_pass_in_one_line(webui, first_pass, linear_weights):
    """The real webui needed the whole first pass and the SD1.5 load (32.8 s on a CPU) to find this out; the
    extension's own line comes first, and the exception carries no chain of causes for the webui to print."""
    from modules import shared

    shared.opts.data["latent_interposer_weights_dir"] = str(linear_weights[0])  # interposers only
    with pytest.raises(Exception) as info:
        webui.generate(TITLE, hr_upscaler=NN)
    assert not first_pass and shared.sd_model.apply_calls == 0  # no sampling at all
    assert shared.sd_model.sd_checkpoint_info.short_title == "sdxl_base"  # the hires checkpoint never loaded
    said = [line for line in webui.console if "latent-upscaler-v2.1_SDv1-x1.5.safetensors" in line]
    assert len(said) == 1 and said[0] == "Latent Interposer: " + str(info.value).removeprefix("Latent Interposer: ")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_chained_scale_uses_the_files_that_are_there(webui, tmp_path, linear_weights, linear_upscalers):
    """1.75x prefers x1.5 + x1.25; with only the x2.0 file there it runs x2.0 and a downscale, and says so."""
    import shutil

    from modules import shared

    folder = tmp_path / "only-x2"
    shutil.copytree(linear_weights[0], folder)
    shutil.copyfile(linear_upscalers / "latent-upscaler-v2.1_SDxl-x2.0.safetensors",
                    folder / "latent-upscaler-v2.1_SDxl-x2.0.safetensors")  # fmt: skip
    shared.opts.data["latent_interposer_weights_dir"] = str(folder)
    webui.generate(None, hr_upscaler=NN, hr_checkpoint_name="Use same checkpoint", hr_scale=1.75)
    assert tuple(webui.hires_inputs[-1].x.shape[-2:]) == (int(SIZE * 1.75) // 8,) * 2
    lines = [line for line in webui.console if "hires upscale: xl x2.0+resize" in line]
    assert len(lines) == 1 and "(x1.25, x1.5 not found: planned with the xl upscalers that are there)" in lines[0]
    (folder / "latent-upscaler-v2.1_SDxl-x2.0.safetensors").unlink()
    with pytest.raises(Exception) as info:
        webui.generate(None, hr_upscaler=NN, hr_checkpoint_name="Use same checkpoint", hr_scale=1.75)
    message = str(info.value)  # both files of the preferred chain, in one message
    assert "latent-upscaler-v2.1_SDxl-x1.5.safetensors" in message
    assert "latent-upscaler-v2.1_SDxl-x1.25.safetensors" in message


@pytest.fixture
def trained_webui(monkeypatch, tmp_path, tiny_vaes, linear_weights):
    """The stand-in with a *trained* SD1.5 2x upscaler (tests/assets, made with `python -m training`; see its
    README) and a photo it never saw in training (003.jpg was held out)."""
    import shutil

    from conftest import REPO

    folder = tmp_path / "trained-weights"
    shutil.copytree(linear_weights[0], folder)
    shutil.copyfile(REPO / "tests" / "assets" / "latent-upscaler-test_SDv1-x2.0.safetensors",
                    folder / "latent-upscaler-v2.1_SDv1-x2.0.safetensors")  # fmt: skip
    return boot(monkeypatch, tmp_path, tiny_vaes, photo("003.jpg", SIZE), folder)


@requires_taesd  # a margin measured in the real latent spaces
@pytest.mark.parametrize(
    ("first_pass", "hires", "margin"),
    [("sd15_style", "Use same checkpoint", 0.5),
     ("sdxl_base", "sd15_style", 0.25)],  # the closed-form linear interposer limits the cross-family case
)  # fmt: skip
def test_learned_upscale_is_closer_to_the_photo_than_latent_bilinear(trained_webui, first_pass, hires, margin):
    """The ✨ path on a held-out photo: the latents that reach the SD1.5 hires sampler, decoded, against the photo."""
    webui = trained_webui
    settings = dict(firstpass_image=webui.photo, hr_scale=2.0, hr_checkpoint_name=hires,
                    override_settings={"sd_model_checkpoint": first_pass})  # fmt: skip
    scores = {}
    for upscaler in ("Latent", NN):
        webui.generate(TITLE, hr_upscaler=upscaler, **settings)
        scores[upscaler] = webui.hires_psnr(family="v1")
    assert scores[NN] > scores["Latent"] + margin, scores
