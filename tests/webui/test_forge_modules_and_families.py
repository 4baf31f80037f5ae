"""Forge Neo 2.2x as users run it, against the Neo stand-in: FLUX-family models loaded as a diffusion-model file plus
separate VAE / text-encoder files ("modules") crossing into another family's hires pass or refiner, the 2.2x latent
formats (FLUX.2 packed and unpacked, Wan 2.1's 5-D latents, pixels) read as families and converted or refused
before sampling, Neo 2.2x's empty Latent mode list, and the three places where lllyasviel's Forge differs from Neo
(``boot(..., forge=True)``)."""

from __future__ import annotations

import types

import pytest
import torch
from conftest import photo
from neo_env import SIZE, add_checkpoint, boot, module_path, neo_modules

TITLE = "Latent Interposer"
NN = "Latent (NN)"
HIRES = (SIZE * 3 // 2) // 8


@pytest.fixture
def neo(monkeypatch, tmp_path, tiny_vaes, linear_upscalers):
    with neo_modules():
        yield boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), linear_upscalers, empty_modes=True)


@pytest.fixture
def neo_wide(monkeypatch, tmp_path, tiny_vaes, wide_weights):
    """Neo 2.2x with a user's own trained files for the directions nobody publishes (closed-form fits here)."""
    with neo_modules():
        yield boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), wide_weights, empty_modes=True)


@pytest.fixture
def forge(monkeypatch, tmp_path, tiny_vaes, linear_upscalers):
    with neo_modules():
        import fake_engines

        env = boot(monkeypatch, tmp_path, tiny_vaes, photo("045.jpg", SIZE), linear_upscalers, forge=True)
        refiner = lambda: fake_engines.StableDiffusion(tiny_vaes["v1"], env.photo, 0.1, detail_block=8)  # noqa: E731
        add_checkpoint("sd15_style", "sd15", refiner)
        yield env


def first(checkpoint: str, *modules: str) -> dict:
    """The request fields that make ``checkpoint`` (with these module files) the first-pass model, as the API's
    override_settings does."""
    settings = {"sd_model_checkpoint": f"{checkpoint}.safetensors"}
    if modules:
        settings["forge_additional_modules"] = sorted(module_path(name) for name in modules)
    return {"override_settings": settings}


LUMINA_SPLIT = ("lumina2-dit", "ae", "gemma_2_2b")
KLEIN_SPLIT = ("klein", "flux2-vae", "qwen_3_4b")  # Klein as users load it: a diffusion-model file and two modules


def first_pass(checkpoint: str) -> dict:
    """:func:`first` with Klein's modules when the checkpoint is Klein."""
    return first(*KLEIN_SPLIT) if checkpoint == "klein" else first(checkpoint)


# ---------------------------------------------------------------------------------------------- Neo 2.2x's modes


def test_latent_nn_is_listed_but_the_default_stays_none(neo):
    """Neo 2.2x ships no Latent modes and the default "None": the extension adds its entry and changes no default."""
    from modules import shared

    assert list(shared.latent_upscale_modes) == [NN] and shared.latent_upscale_default_mode == "None"


# ---------------------------------------------------------------------------------------------- modules


def test_a_split_flux_first_pass_crashes_the_sdxl_hires_load_without_the_modules_rule(neo, monkeypatch):
    """Without the rule, "Use same choices" hands Lumina 2's 16-channel VAE file to the SDXL checkpoint: Neo's
    load fails with a size mismatch, after the whole first pass. (What today's main did.)"""
    from interposer.webui import preflight

    monkeypatch.setattr(preflight, "check_hires_modules", lambda generation: None)
    with pytest.raises(RuntimeError, match=r"size mismatch for decoder\.conv_in\.weight"):
        neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name="sdxl", **first(*LUMINA_SPLIT))


@pytest.mark.parametrize("upscaler", [NN, "Lanczos"])
def test_a_split_flux_first_pass_gets_built_in_modules_for_an_sdxl_hires_pass(neo, tiny_vaes, upscaler):
    processed = neo.generate(TITLE, hr_upscaler=upscaler, hr_checkpoint_name="sdxl", **first(*LUMINA_SPLIT))
    hires_model = neo.hires_inputs[-1].model
    assert type(hires_model).__name__ == "StableDiffusionXL" and hires_model.vae is tiny_vaes["xl"]
    assert "Hires Module 1: Built-in" in processed.infotexts[0]
    said = [line for line in neo.console if "uses the VAE and text encoders inside its checkpoint" in line]
    assert len(said) == 1 and "ae.safetensors, gemma_2_2b.safetensors" in said[0]
    assert "'Built-in' instead of 'Use same choices' in Hires fix > Hires VAE / Text Encoder" in said[0]
    if upscaler == NN:
        assert neo.hires_inputs[-1].x.shape == (1, 4, HIRES, HIRES)
        assert 'Latent interposer: "fx-to-xl' in processed.infotexts[0] and neo.hires_psnr(family="xl") > 15.0


def test_an_sdxl_vae_file_does_not_decode_the_sd15_hires_pass(neo, tiny_vaes, monkeypatch):
    """Same channels, so Neo loads it without complaint: the SD1.5 hires model would decode with SDXL's VAE."""
    from interposer.webui import preflight

    with monkeypatch.context() as without_rule:
        without_rule.setattr(preflight, "check_hires_modules", lambda generation: None)
        neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name="sd15", **first("sdxl", "sdxl_vae"))
        assert neo.hires_inputs[-1].model.vae is tiny_vaes["xl"]  # the wrong VAE
    processed = neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name="sd15", **first("sdxl", "sdxl_vae"))
    assert neo.hires_inputs[-1].model.vae is tiny_vaes["v1"] and "Hires Module 1: Built-in" in processed.infotexts[0]


def test_same_family_hires_keeps_the_modules(neo, tiny_vaes):
    processed = neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name="sdxl", **first("sdxl", "sdxl_vae"))
    assert "Hires Module 1: Use same choices" in processed.infotexts[0]
    assert not any("Built-in" in line for line in neo.console)


def test_a_diffusion_model_only_hires_checkpoint_with_same_choices_is_refused_before_sampling(neo):
    """An SDXL first pass cannot lend its files to Lumina 2; only the user knows Lumina 2's files."""
    from modules import shared

    with pytest.raises(Exception) as info:
        neo.generate(TITLE, hr_upscaler="Lanczos", hr_checkpoint_name="lumina2-dit")
    message = str(info.value)
    assert "'lumina2-dit' (the FLUX.1 family) has no VAE and text encoders of its own" in message
    assert "which gives it none at all (the Stable Diffusion XL first pass used those inside its checkpoint)" in message
    assert "Choose its own VAE and text-encoder files in Hires fix > Hires VAE / Text Encoder" in message
    assert shared.sd_model.apply_calls == 0 and not neo.hires_inputs and info.value.__cause__ is None


def test_the_refusal_names_the_first_pass_files_it_would_hand_over(neo):
    with pytest.raises(Exception, match=r"which gives it the first pass's Stable Diffusion XL files "
                                        r"\(sdxl_vae\.safetensors\)\. Choose its own"):  # fmt: skip
        neo.generate(TITLE, hr_upscaler="Lanczos", hr_checkpoint_name="lumina2-dit", **first("sdxl", "sdxl_vae"))


def test_explicit_hires_modules_are_the_users_choice(neo, tiny_vaes):
    processed = neo.generate(TITLE, hr_upscaler="Lanczos", hr_checkpoint_name="lumina2-dit",
                             hr_additional_modules=[module_path("ae"), module_path("gemma_2_2b")])  # fmt: skip
    assert type(neo.hires_inputs[-1].model).__name__ == "Lumina2" and neo.hires_inputs[-1].model.vae is tiny_vaes["fx"]
    assert "Hires Module 1: ae" in processed.infotexts[0]


def test_a_hires_vae_file_of_other_channels_is_refused_before_sampling(neo):
    """Chosen by name, a 16-channel VAE for an SD1.5 hires checkpoint would fail to load after the first pass."""
    from modules import shared

    with pytest.raises(Exception, match=r"the VAE file ae\.safetensors chosen in Hires fix > Hires VAE / Text Encoder "
                                        r"has 16-channel latents, but the hires checkpoint 'sd15' "
                                        r"\(Stable Diffusion 1\.x / 2\.x\) needs 4"):  # fmt: skip
        neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name="sd15", hr_additional_modules=[module_path("ae")])
    assert shared.sd_model.apply_calls == 0


def test_a_cross_family_refiner_with_first_pass_modules_is_refused_before_sampling(neo):
    """Neo loads a refiner with the first pass's modules: the SD1.5 refiner would decode with SDXL's VAE file."""
    from modules import shared

    with pytest.raises(Exception, match=r"the refiner 'sd15' \(Stable Diffusion 1.x / 2.x\) would be loaded with the "
                       r"first pass's VAE / text-encoder files \(sdxl_vae.safetensors\)") as info:  # fmt: skip
        neo.generate(TITLE, enable_hr=False, refiner_checkpoint="sd15", refiner_switch_at=0.6, steps=10,
                     **first("sdxl", "sdxl_vae"))  # fmt: skip
    assert "Use hires fix with 'sd15' as the Hires checkpoint" in str(info.value)
    assert shared.sd_model.apply_calls == 0


# ---------------------------------------------------------------------------------------------- 2.2x families


@pytest.mark.parametrize(
    ("format_name", "key", "channels", "layout"),
    [("SD15", "v1", 4, ""), ("SDXL", "xl", 4, ""), ("Flux", "fx", 16, ""), ("Flux2", "f2", 128, "packed 2x2"),
     ("SDXL_Flux2", "f2", 32, ""), ("Wan21", "Wan21/16", 16, "5-D"), ("RGB", "RGB/3", 3, "")],
)  # fmt: skip
def test_every_neo_22x_latent_format_is_a_family(neo, format_name, key, channels, layout):
    from huggingface_guess import latent

    from interposer.webui.detect import detect_webui

    fmt = getattr(latent, format_name, None)
    fmt = fmt() if fmt is not None else types.SimpleNamespace(latent_channels=channels, scale_factor=1.0)
    model = types.SimpleNamespace(model_config=types.SimpleNamespace(latent_format=fmt))
    if fmt.__class__.__name__ == "SimpleNamespace":  # RGB: named as in Neo's latent.py
        model.model_config.latent_format = type(format_name, (), {"latent_channels": channels, "scale_factor": 1.0})()
    family = detect_webui().family(model)
    assert (family.key, family.layout) == (key, layout)
    assert (family.space is None) == (key not in ("v1", "xl", "fx", "f2"))
    if family.space is None:
        assert "which no interposer converts" in family.why and f"{channels} channels" in family.why


def test_klein_and_mugen_files_are_flux2_packed_and_unpacked(neo):
    from modules import sd_models

    from interposer.webui.families import checkpoint_kind

    klein = checkpoint_kind(sd_models.get_closet_checkpoint_match("klein").filename)
    mugen = checkpoint_kind(sd_models.get_closet_checkpoint_match("mugen").filename)
    assert (klein.family.key, klein.family.layout, klein.bundled) == ("f2", "packed 2x2", False)
    assert (mugen.family.key, mugen.family.layout, mugen.bundled) == ("f2", "", True)
    assert not klein.family.same_as(mugen.family)


SHIPPED_BUT_GONE = ("the file the extension ships", "reinstall the extension")
NOBODY_HAS_THEM = ("there are no published weights for it", "python -m training")


@pytest.mark.parametrize(("base", "hires", "direction", "why"), [
    # shipped, on an install that lost the file
    ("klein", "sd15", "f2-to-v1", SHIPPED_BUT_GONE), ("mugen", "sd15", "f2-to-v1", SHIPPED_BUT_GONE),
    ("sd15", "lumina2", "v1-to-fx", SHIPPED_BUT_GONE),
    # neither published nor shipped: FLUX.1 <-> FLUX.2; into FLUX.2 and FLUX.2 -> SDXL (trained, held back)
    ("lumina2", "mugen", "fx-to-f2", NOBODY_HAS_THEM), ("mugen", "lumina2", "f2-to-fx", NOBODY_HAS_THEM),
    ("klein", "sdxl", "f2-to-xl", NOBODY_HAS_THEM), ("sdxl", "mugen", "xl-to-f2", NOBODY_HAS_THEM),
    ("sd15", "klein", "v1-to-f2", NOBODY_HAS_THEM),
])  # fmt: skip
def test_crossings_without_weights_are_refused_before_sampling(neo, base, hires, direction, why, monkeypatch,
                                                               tmp_path):  # fmt: skip
    """One line before the first pass, naming both families, why there is no file and what to do about it, and the
    pixel route."""
    from modules import shared

    from interposer import lookup

    monkeypatch.setattr(lookup, "BUNDLED_DIR", tmp_path / "bundled-removed")
    with pytest.raises(Exception) as info:
        neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name=hires, **first_pass(base))
    message = str(info.value)
    assert message.startswith("Latent Interposer: the hires pass goes from ")
    assert f"No weights for {direction}: {why[0]}" in message and why[1] in message
    assert "Or use a pixel upscaler for hires fix" in message and "\n" not in message
    assert "FLUX" in message and shared.sd_model.apply_calls == 0 and not neo.hires_inputs


def test_a_klein_to_mugen_refiner_is_refused_before_sampling(neo):
    """One space, two tensor layouts (128 channels packed, 32 unpacked): a running sampler cannot take the switch."""
    from modules import shared

    with pytest.raises(Exception, match=r"changes how the sampler's tensor holds the latents") as info:
        neo.generate(TITLE, enable_hr=False, refiner_checkpoint="mugen", refiner_switch_at=0.6, **first(*KLEIN_SPLIT))
    assert "Use hires fix with 'mugen' as the Hires checkpoint" in str(info.value)
    assert shared.sd_model.apply_calls == 0


@pytest.mark.parametrize(("base", "hires", "family", "lines"), [
    ("sdxl", "lumina2", "fx", ["hires upscale: xl x1.5", "hires: xl-to-fx (1, 4, 36, 36) -> (1, 16, 36, 36)"]),
    ("sd15", "lumina2", "fx", ["hires upscale: v1 x1.5", "hires: v1-to-fx"]),
    ("mugen", "sdxl", "xl", ["hires: f2-to-xl (1, 32, 24, 24) -> (1, 4, 24, 24)", "hires upscale: xl x1.5"]),
    ("sdxl", "mugen", "f2", ["hires upscale: xl x1.5", "hires: xl-to-f2 (1, 4, 36, 36) -> (1, 32, 36, 36)"]),
])  # fmt: skip
def test_directions_nobody_publishes_run_from_a_users_own_file(neo_wide, base, hires, family, lines):
    """With a trained file in the weights folder the same lookup, runtime and webui paths run them: the hires
    model gets its own channel count (noise too), with Latent (NN) upscaling in the family that has an upscaler
    (FLUX.1 and FLUX.2 have none: upscale, then convert; out of them: convert, then upscale)."""
    neo = neo_wide
    processed = neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name=hires, **first(base))
    channels = {"fx": 16, "xl": 4, "f2": 32}[family]
    hires_input = neo.hires_inputs[-1]
    assert hires_input.x.shape == (1, channels, HIRES, HIRES) and hires_input.noise.shape == hires_input.x.shape
    for line in lines:
        assert sum(line in said for said in neo.console) == 1, (line, neo.console)
    converted = neo.hires_psnr(family=family)
    assert "Latent interposer: " in processed.infotexts[0] and converted > 15.0


def test_latent_nn_hires_in_klein_itself_keeps_its_16x_grid(neo):
    """Klein first pass, Klein hires with Latent (NN): FLUX.2 has no learned upscaler, so the unpacked latents are
    interpolated to the f2 grid of the hires size (pixels / 8) and packed again: [1, 128, H/16, W/16], as Neo's own
    hires code expects of Klein (before: twice that per side, which Neo's own interpolation then shrank)."""
    neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name="Use same checkpoint", **first(*KLEIN_SPLIT))
    hires_input = neo.hires_inputs[-1]
    assert hires_input.x.shape == (1, 128, HIRES // 2, HIRES // 2) and hires_input.noise.shape == hires_input.x.shape
    # the extension's own result, before Neo interpolates to its grid (which hid a 2x-too-large one)
    line = "hires upscale: f2 interpolated (1, 32, 24, 24) -> (1, 32, 36, 36)"
    assert sum(line in said for said in neo.console) == 1, neo.console


def test_sdxl_to_klein_hires_hands_klein_packed_latents_of_its_own_size(neo_wide):
    """Klein as users load it (a diffusion-model file, its VAE and text encoder chosen as hires modules): the
    converted f2 latents are packed again, [1, 128, H/16, W/16] at the hires size, noise too, and Klein's own VAE
    (Neo's rearrange, not the extension's packing) decodes them to the photo."""
    from conftest import TAESD_DIR

    neo = neo_wide
    processed = neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name="klein", **first("sdxl"),
                             hr_additional_modules=[module_path("flux2-vae"), module_path("qwen_3_4b")])  # fmt: skip
    hires_input = neo.hires_inputs[-1]
    assert hires_input.x.shape == (1, 128, HIRES // 2, HIRES // 2) and hires_input.noise.shape == hires_input.x.shape
    for line in ("hires upscale: xl x1.5", "hires: xl-to-f2 (1, 4, 36, 36) -> (1, 32, 36, 36)"):
        assert sum(line in said for said in neo.console) == 1, (line, neo.console)
    assert 'Latent interposer: "xl-to-f2, linear-fit, ' in processed.infotexts[0]
    if TAESD_DIR is not None:
        from interposer.images import psnr

        decoded = hires_input.model.vae.decode(hires_input.x)
        reference = torch.nn.functional.interpolate(neo.photo, size=decoded.shape[-2:], mode="area")
        assert psnr(decoded, reference) > 15.0


@pytest.mark.parametrize(("base", "hires", "family", "line"), [
    ("sdxl", "lumina2", "fx", "hires: xl-to-fx (1, 4, 36, 36) -> (1, 16, 36, 36)"),
    ("mugen", "sd15", "v1", "hires: f2-to-v1 (1, 32, 24, 24) -> (1, 4, 24, 24)"),
    ("klein", "sd15", "v1", "hires: f2-to-v1 (1, 32, 24, 24) -> (1, 4, 24, 24)"),
    ("sd15", "lumina2", "fx", "hires: v1-to-fx (1, 4, 36, 36) -> (1, 16, 36, 36)"),
])  # fmt: skip
def test_the_shipped_files_run_these_crossings_with_no_weights_of_the_users(neo, base, hires, family, line):
    """No file in the weights folder, downloads off (HF_HUB_OFFLINE): the package's own file converts, the
    infotext names its tag, and the hires model gets its own channel count. Klein samples 192 px at /16 packed
    ([1, 128, 12, 12]): the interposer gets it unpacked, [1, 32, 24, 24]. With the real tiny VAEs the
    converted latents decode to the photo within the shipped files' held-out range (docs/models.md: 23-24 dB on
    full-size images; > 17 dB on this small scene)."""
    from conftest import TAESD_DIR

    from interposer.directions import BUNDLED_TAG

    processed = neo.generate(TITLE, hr_upscaler=NN, hr_checkpoint_name=hires, **first_pass(base))
    channels = {"fx": 16, "v1": 4}[family]
    assert neo.hires_inputs[-1].x.shape == (1, channels, HIRES, HIRES)
    assert sum(line in said for said in neo.console) == 1, neo.console
    direction = line.split()[1]
    assert f'Latent interposer: "{direction}, {BUNDLED_TAG}, ' in processed.infotexts[0]
    assert sum(f"{direction} " in said and f"weights {BUNDLED_TAG}" in said for said in neo.console) == 1
    if TAESD_DIR is not None:
        assert neo.hires_psnr(family=family) > 17.0


from interposer.webui.hires import hires_latents  # noqa: E402


class _RecordingConverter:
    """Stands for the runtime: records the tensors it gets, returns the target's channels."""

    resize_mode = "bicubic"

    def __init__(self, channels: int) -> None:
        self.channels, self.seen = channels, []

    def run(self, latents, dirn):
        self.seen.append(latents.shape)
        out = torch.zeros(latents.shape[0], self.channels, *latents.shape[-2:])
        return out, types.SimpleNamespace(kind="interposer", direction=dirn.name, version="t", precision="fp32")

    def run_upscale(self, latents, space, size):
        self.seen.append(latents.shape)
        out = torch.nn.functional.interpolate(latents, size=size)
        return out, types.SimpleNamespace(kind="upscaler", direction="u", version="t", precision="fp32")

    def run_convert_upscale(self, latents, src, dst, size):
        self.seen.append(latents.shape)
        out = torch.zeros(latents.shape[0], self.channels, *size)
        return out, [types.SimpleNamespace(kind="interposer", direction="x", version="t", precision="fp32")]


def _generation(p, family, converter):
    """A Generation with the given converter and first-pass family, its options resolved (interposer on)."""
    from interposer.webui.adapter import Webui
    from interposer.webui.generation import Generation
    from interposer.webui.options import AUTO, GenerationOptions

    settings = types.SimpleNamespace(option=lambda key, default=None: default)
    generation = Generation(p, Webui(), settings, log=lambda line: None)
    generation.options = GenerationOptions(enabled=True, direction=AUTO, precision="fp32", device="cpu", weights_dir="",
                                           allow_download=False, warn_vae_override=False, refiner_strategy="",
                                           noise_boost=0.0, selected=True)  # fmt: skip
    generation.converter = converter
    generation.family = family
    return generation


def test_packed_flux2_latents_are_unpacked_for_the_interposer_and_packed_after():
    """Klein's sampler holds [B, 128, H, W]; the interposer's f2 space is [B, 32, 2H, 2W]: into Mugen's unpacked
    layout the result stays 32 channels, into Klein's it is packed again."""
    from interposer.webui.forge import format_family

    p = types.SimpleNamespace(latent_scale_mode={"mode": "bilinear"}, enable_hr=True, hr_upscaler="Latent",
                              extra_generation_params={}, sd_model=None)  # fmt: skip
    converter = _RecordingConverter(4)
    generation = _generation(p, format_family("Flux2", 128), converter)
    out = hires_latents(generation, torch.randn(1, 128, 8, 8), format_family("SDXL", 4))
    assert converter.seen == [(1, 32, 16, 16)] and out.shape == (1, 4, 16, 16)

    converter = _RecordingConverter(32)
    generation = _generation(p, format_family("SDXL", 4), converter)
    out = hires_latents(generation, torch.randn(1, 4, 16, 16), format_family("Flux2", 128))
    assert out.shape == (1, 128, 8, 8)


def test_klein_to_mugen_is_an_exact_relayout():
    from interposer.packing import unpack_2x2
    from interposer.webui.forge import format_family

    p = types.SimpleNamespace(latent_scale_mode={"mode": "bilinear"}, enable_hr=True, hr_upscaler="Latent",
                              extra_generation_params={}, sd_model=None)  # fmt: skip
    converter = _RecordingConverter(0)
    generation = _generation(p, format_family("Flux2", 128), converter)
    packed = torch.randn(2, 128, 6, 5)
    out = hires_latents(generation, packed, format_family("SDXL_Flux2", 32))
    assert torch.equal(out, unpack_2x2(packed)) and not converter.seen


def test_latent_nn_from_klein_to_mugen_lands_on_mugens_grid():
    """Upscaled in the f2 space from Klein's unpacked latents, handed to Mugen unpacked at the webui's hires size."""
    from interposer.webui.forge import format_family

    p = types.SimpleNamespace(latent_scale_mode={"mode": "bilinear"}, enable_hr=True, hr_upscaler=NN,
                              hr_upscale_to_x=96, hr_upscale_to_y=96, extra_generation_params={},
                              sd_model=None)  # fmt: skip
    converter = _RecordingConverter(32)
    mugen = format_family("SDXL_Flux2", 32)
    generation = _generation(p, format_family("Flux2", 128), converter)
    out = hires_latents(generation, torch.randn(1, 128, 4, 4), mugen)
    assert converter.seen == [(1, 32, 8, 8)] and out.shape == (1, 32, 12, 12) and generation.family is mugen


def test_latent_nn_on_5d_wan_latents_interpolates_in_their_own_family():
    """Wan 2.1 / Qwen-Image has no interposer space: Latent (NN) in one family interpolates the [B, C, 1, H, W]
    latents as Neo's own Latent path does (squeezed around the interpolation) and says so in the infotext."""
    from interposer.webui.forge import format_family

    p = types.SimpleNamespace(latent_scale_mode={"mode": "bilinear"}, enable_hr=True, hr_upscaler=NN,
                              hr_upscale_to_x=96, hr_upscale_to_y=64, extra_generation_params={},
                              sd_model=None)  # fmt: skip
    wan = format_family("Wan21", 16)
    generation = _generation(p, wan, _RecordingConverter(16))
    latents = torch.randn(1, 16, 1, 5, 7)
    out = hires_latents(generation, latents, wan)
    expected = torch.nn.functional.interpolate(latents.squeeze(2), size=(8, 12), mode="bicubic").unsqueeze(2)
    assert out.shape == (1, 16, 1, 8, 12) and torch.allclose(out, expected)
    assert p.extra_generation_params["Latent upscaler"] == "Wan21/16 interpolated, bicubic"


# ---------------------------------------------------------------------------------------------- lllyasviel's Forge


def test_forge_is_told_apart_and_its_dit_is_inpaint_flag_is_no_inpainting_model(forge, tiny_vaes):
    """Forge flags every 16-channel DiT is_inpaint (in_channels > 4): a FLUX.1 base is not an inpainting model."""
    import fake_engines

    from interposer.webui.detect import detect_webui
    from interposer.webui.forge import Forge, ForgeNeo

    webui = detect_webui()
    assert isinstance(webui, Forge) and not isinstance(webui, ForgeNeo)
    lumina = fake_engines.Lumina2(tiny_vaes["fx"], forge.photo)
    assert lumina.is_inpaint and not webui.image_conditioned(lumina)
    inpaint = fake_engines.StableDiffusionXL(tiny_vaes["xl"], forge.photo)
    inpaint.is_inpaint = True
    assert webui.image_conditioned(inpaint)


def test_forge_refiner_in_both_passes_with_same_checkpoint_switches_once(forge, monkeypatch):
    """Forge reloads nothing before a "Use same checkpoint" hires pass: the refiner the first pass switched to is
    still loaded, so the hires sampler never switches and must not be refused (LMS could not be converted)."""
    from modules import shared

    from interposer.webui.forge import Forge

    shared.opts.data["hires_fix_refiner_pass"] = "both passes"
    request = dict(refiner_checkpoint="sd15_style", refiner_switch_at=0.5, hr_checkpoint_name="Use same checkpoint",
                   hr_sampler_name="LMS", steps=6)  # fmt: skip
    with monkeypatch.context() as as_if_a1111:
        as_if_a1111.setattr(Forge, "hires_reloads_first_pass_model", True)
        with pytest.raises(Exception, match="LMS"):
            forge.generate(TITLE, **request)
    processed = forge.generate(TITLE, **request)
    assert type(forge.hires_inputs[-1].model).__name__ == "StableDiffusion"
    assert 'Latent interposer refiner: "xl-to-v1' in processed.infotexts[0]


def test_forge_keeps_its_cond_cache_across_checkpoints(forge):
    """lllyasviel's Forge keys cached conds by the loaded checkpoint: nothing goes stale, nothing is dropped."""
    from modules import processing

    forge.generate(TITLE, hr_checkpoint_name="sd15")
    cached = processing.StableDiffusionProcessing.cached_c[0]
    assert cached is not None
    forge.generate(TITLE, hr_checkpoint_name="Use same checkpoint")
    forge.generate(TITLE, hr_checkpoint_name="sd15")
    assert processing.StableDiffusionProcessing.cached_c[0] is not None and forge.hires_psnr(family="v1") > 15.0
