"""Latent upscalers through the shared machinery: lookup, validation, cache, any target size, chains."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
from conftest import FIXTURES as INTERPOSER_FIXTURES
from conftest import UPSCALER_FIXTURES
from safetensors.torch import load_file

from interposer.directions import direction
from interposer.errors import CorruptWeightsError, InvalidLatentsError, WeightsNotFoundError
from interposer.runtime import Converter, ModelCache
from interposer.spaces import SPACES
from interposer.upscale_plan import plan_upscale
from interposer.upscalers import upscaler
from interposer.weights import WeightsQuery, find_local, load_weights

FIXTURES = UPSCALER_FIXTURES
CASES = {
    "latent-upscaler-v2.1_SDv1-x1.25_random": upscaler("v1", 1.25),
    "latent-upscaler-v2.1_SDxl-x1.5_random": upscaler("xl", 1.5),
    "latent-upscaler-v2.1_SDxl-x2.0_random": upscaler("xl", 2.0),
}


def _folder(tmp_path, *cases, subfolder=""):
    """A weights folder holding the fixtures under their published names."""
    for case in cases:
        target = tmp_path / subfolder / CASES[case].filename()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / f"{case}.safetensors", target)
    return tmp_path


def _converter(folder, **kwargs) -> Converter:
    query = WeightsQuery(folders=(str(folder),), allow_download=False)
    return Converter(weights=query, device="cpu", precision="fp32", cache=ModelCache(), **kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_published_names_are_found_and_reproduce_the_golden_outputs(case, tmp_path):
    spec = CASES[case]
    assert spec.filename() == case.removesuffix("_random") + ".safetensors"
    folder = _folder(tmp_path, case, subfolder="v2.1" if "x1.5" in case else "")
    assert find_local(spec, [folder]) is not None  # NAME and v2.1/NAME both work
    io = load_file(FIXTURES / f"{case}_io.safetensors")
    converter = _converter(folder, upscale_factors=(spec.factor,))
    out, report = converter.run_upscale(io["input"], spec.space, factor=spec.factor, scaled=False)
    assert out.shape == io["output"].shape
    assert torch.allclose(out, io["output"], atol=1e-4, rtol=0)
    assert report.kind == "upscaler" and report.version == "v2.1" and report.direction == spec.label_short
    # Model-space latents: scaled in, scaled out, the same function in between.
    scale = spec.space.scale
    scaled = converter.upscale(io["input"] * scale, spec.space.name, factor=spec.factor)
    assert torch.allclose(scaled, io["output"] * scale, atol=1e-4 * scale + 1e-6)


def test_the_model_loads_once_and_the_first_report_says_how_long_loading_took(tmp_path):
    case = "latent-upscaler-v2.1_SDxl-x2.0_random"
    converter = _converter(_folder(tmp_path, case))
    x = torch.randn(1, 4, 8, 8)
    _, first = converter.run_upscale(x, "xl", factor=2.0)
    _, second = converter.run_upscale(x, "xl", factor=2.0)
    assert converter.cache.loads == 1
    assert first.load_ms > 0 and second.load_ms == 0
    assert "loading the model, once" in str(first) and "loading" not in str(second)


def test_any_target_size_lands_exactly_and_the_webuis_interpolation_is_then_an_identity(tmp_path):
    """The webui interpolates to its target size after our hook; at that size bilinear must change nothing."""
    folder = _folder(tmp_path, "latent-upscaler-v2.1_SDxl-x1.5_random", "latent-upscaler-v2.1_SDxl-x2.0_random")
    converter = _converter(folder, upscale_factors=(1.5, 2.0))
    x = torch.randn(2, 4, 24, 20)
    for target in [(36, 30), (42, 35), (48, 40), (60, 50), (37, 31)]:
        out, report = converter.run_upscale(x, "xl", size=target)
        assert tuple(out.shape[-2:]) == target, report
        for mode in ("bilinear", "nearest"):
            assert torch.equal(F.interpolate(out, size=target, mode=mode), out)


def test_chunks_give_the_same_result_as_one_pass(tmp_path):
    converter = _converter(_folder(tmp_path, "latent-upscaler-v2.1_SDxl-x2.0_random"))
    x = torch.randn(5, 4, 8, 8)
    whole = converter.upscale(x, "xl", factor=2.0)
    chunked = converter.with_options(max_batch_pixels=2 * 8 * 8 * 4).upscale(x, "xl", factor=2.0)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_plan_policies():
    factors = (1.25, 1.5, 2.0)
    assert plan_upscale((64, 64), (96, 96), factors).factors == (1.5,)
    assert plan_upscale((64, 64), (128, 128), factors).factors == (2.0,)
    assert plan_upscale((64, 64), (160, 160), factors).factors == (2.0, 1.25)  # 2.5 exactly
    plan = plan_upscale((64, 64), (112, 112), factors)  # 1.75: 1.5 x 1.25 = 1.875 is the smallest that reaches it
    assert plan.factors == (1.5, 1.25) and plan.chained == (120, 120) and plan.resize == "down"
    assert plan_upscale((64, 64), (160, 160), (1.5, 2.0)).factors == (2.0, 1.5)  # 2.5: 3x, then down (measured best)
    assert plan_upscale((64, 64), (160, 160), (1.5, 2.0), policy="nearest").factors == (1.5, 1.5)  # 2.25, then up
    assert plan_upscale((64, 64), (112, 112), factors, policy="at-most").factors == (1.25, 1.25)  # 1.5625
    assert plan_upscale((64, 64), (112, 112), (1.5, 2.0), policy="nearest").factors == (2.0,)
    assert plan_upscale((64, 64), (112, 112), (1.5, 2.0), policy="at-least").factors == (2.0,)
    assert plan_upscale((64, 64), (64, 64), factors).factors == ()  # hires at 1x: nothing to learn
    assert plan_upscale((64, 64), (48, 48), factors, policy="at-most").factors == ()


def test_convert_then_upscale_equals_the_two_steps(tmp_path, linear_weights):
    weights_folder, _ = linear_weights
    folder = _folder(tmp_path, "latent-upscaler-v2.1_SDv1-x1.25_random")
    query = WeightsQuery(folders=(str(weights_folder), str(folder)), allow_download=False)
    converter = Converter(weights=query, device="cpu", precision="fp32", cache=ModelCache(), upscale_factors=(1.25,))
    x = torch.randn(1, 4, 16, 24) * 0.13
    out, reports = converter.run_convert_upscale(x, "xl", "v1", factor=1.25)
    by_hand = converter.upscale(converter.convert(x, "xl", "v1"), "v1", factor=1.25)
    assert torch.equal(out, by_hand) and out.shape == (1, 4, 20, 30)
    assert [r.direction for r in reports] == ["xl-to-v1", "v1 x1.25"]
    # The other order needs an xl upscaler at 1.25, which this folder lacks: it says which file.
    with pytest.raises(WeightsNotFoundError, match=r"latent-upscaler-v2\.1_SDxl-x1\.25\.safetensors"):
        converter.run_convert_upscale(x, "xl", "v1", factor=1.25, order="upscale-first")


def test_missing_upscaler_names_file_folder_and_url(tmp_path):
    converter = _converter(tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError) as info:
        converter.upscale(torch.randn(1, 4, 8, 8), "v1", factor=2.0)
    message = str(info.value)
    assert "latent-upscaler-v2.1_SDv1-x2.0.safetensors" in message and str(tmp_path / "empty") in message
    assert "https://huggingface.co/city96/SD-Latent-Upscaler/resolve/main/latent-upscaler-v2.1_SDv1-x2.0" in message


def test_a_chain_names_every_missing_file_at_once(tmp_path):
    """1.75x prefers x1.5 then x1.25 (1.875x, then down): with neither file there, one error names both."""
    converter = _converter(tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError) as info:
        converter.upscale(torch.randn(1, 4, 16, 16), "xl", size=(28, 28))
    message = str(info.value)
    assert "latent-upscaler-v2.1_SDxl-x1.5.safetensors" in message
    assert "latent-upscaler-v2.1_SDxl-x1.25.safetensors" in message
    assert [spec.factor for spec, _ in info.value.missing] == [1.5, 1.25]


def test_a_chain_is_planned_over_the_files_that_are_there_and_says_so(tmp_path):
    """Only the x2.0 file is there: 1.75x runs x2.0 and a downscale instead of failing on x1.5."""
    folder = _folder(tmp_path, "latent-upscaler-v2.1_SDxl-x2.0_random")
    converter = _converter(folder)
    out, report = converter.run_upscale(torch.randn(1, 4, 16, 16) * 0.13, "xl", size=(28, 28))
    assert out.shape == (1, 4, 28, 28)
    assert report.direction == "xl x2.0+resize"
    assert report.note == "x1.25, x1.5 not found: planned with the xl upscalers that are there"
    assert "(x1.25, x1.5 not found: planned with the xl upscalers that are there)" in str(report)
    converter.prepare_upscale("xl", (16, 16), (28, 28))  # the same plan: nothing raised


def test_prepare_convert_upscale_names_the_interposer_and_the_upscalers_together(tmp_path):
    converter = _converter(tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError) as info:
        converter.prepare_convert_upscale("xl", "v1", (16, 16), (32, 32))
    message = str(info.value)
    assert "2 weights files are missing" in message
    assert "xl-to-v1_interposer-v4.0.safetensors" in message and "latent-upscaler-v2.1_SDv1-x2.0" in message


def test_wrong_files_are_refused_with_a_reason(tmp_path):
    case = "latent-upscaler-v2.1_SDxl-x2.0_random"
    named = _folder(tmp_path, case) / upscaler("xl", 2.0).filename()
    with pytest.raises(CorruptWeightsError, match=r"upscales by 2, not by 1\.5"):
        load_weights(named, upscaler("xl", 1.5))
    interposer_file = INTERPOSER_FIXTURES / "xl-to-v1_random.safetensors"
    with pytest.raises(CorruptWeightsError, match="holds an interposer v4 model, not a latent upscaler"):
        load_weights(interposer_file, upscaler("xl", 2.0))
    with pytest.raises(CorruptWeightsError, match="latent upscaler"):
        load_weights(FIXTURES / f"{case}.safetensors", direction("xl-to-v1"))
    loaded = load_weights(named)  # no spec: the kind from the keys, the factor from the published name
    assert loaded.kind == "upscaler" and loaded.config.factor == 2.0 and loaded.config.convs == 16
    with pytest.raises(CorruptWeightsError, match="cannot tell its upscale factor"):
        load_weights(FIXTURES / f"{case}.safetensors")


def test_bad_input_is_refused_before_any_work(tmp_path):
    converter = _converter(_folder(tmp_path, "latent-upscaler-v2.1_SDxl-x2.0_random"))
    with pytest.raises(InvalidLatentsError, match="have 4 channels, got 16"):
        converter.upscale(torch.randn(1, 16, 8, 8), "xl", factor=2.0)
    with pytest.raises(InvalidLatentsError, match="NaN"):
        converter.upscale(torch.full((1, 4, 8, 8), float("nan")), "xl", factor=2.0)
    with pytest.raises(InvalidLatentsError, match="exactly one of"):
        converter.upscale(torch.randn(1, 4, 8, 8), "xl")
    assert SPACES["xl"].channels == 4
