"""The converter: precision, dtype/device round trip, fallback, cache, threads, bad input."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
from conftest import FIXTURES
from safetensors.torch import load_file

from interposer.directions import direction
from interposer.errors import InvalidLatentsError, UnsupportedPrecisionError
from interposer.model import InterposerConfig
from interposer.runtime import Converter, ModelCache, pick_device, pick_dtype
from interposer.weights import WeightsQuery, save_weights

XL_FIXTURE = FIXTURES / "xl-to-v1_random.safetensors"
IO = load_file(FIXTURES / "xl-to-v1_random_io.safetensors")


def _converter(path=XL_FIXTURE, **kwargs) -> Converter:
    return Converter(weights=WeightsQuery(path=str(path)), cache=ModelCache(), **kwargs)


def test_raw_conversion_matches_the_golden_output():
    out = _converter().convert(IO["input"], "xl", "v1", scaled=False)
    assert torch.allclose(out, IO["output"], atol=1e-4)


def test_scaled_conversion_applies_both_factors():
    scaled_in = IO["input"] * 0.13025
    out = _converter().convert(scaled_in, "xl-to-v1")
    assert torch.allclose(out, IO["output"] * 0.18215, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_precision_on_cpu(precision):
    converter = _converter(device="cpu", precision=precision)
    try:
        out, report = converter.run(IO["input"], "xl", "v1", scaled=False)
    except UnsupportedPrecisionError as exc:  # a torch without half convolutions on the CPU
        assert precision == "fp16" and "not supported on cpu" in str(exc)
        return
    assert report.precision == precision and report.device == "cpu"
    assert out.dtype == torch.float32  # the input's dtype, whatever the compute precision
    tolerance = {"fp32": 1e-4, "bf16": 0.1, "fp16": 0.02}[precision]
    assert (out - IO["output"]).abs().max() < tolerance


def test_auto_precision_on_cpu_is_fp32():
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_device("auto", torch.zeros(1)).type in ("cpu", "cuda", "mps")
    with pytest.raises(UnsupportedPrecisionError, match="choose one of"):
        pick_dtype("fp8", torch.device("cpu"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_output_has_the_input_dtype_and_device(dtype):
    x = (IO["input"] * 0.13025).to(dtype)
    out = _converter(device="cpu", precision="fp32").convert(x, "xl", "v1")
    assert out.dtype == dtype and out.device == x.device
    assert (out.double() - IO["output"].double() * 0.18215).abs().max() < 0.02


def test_non_finite_half_output_is_recomputed_in_fp32_and_warned_once(tmp_path):
    """Weights that overflow fp16 (but not fp32) must not reach the sampler as inf/NaN."""
    state = load_file(XL_FIXTURE)
    state["tail.weight"] = state["tail.weight"] * 3000.0  # outputs ~1e3..1e4 in fp32
    state["tail.bias"] = state["tail.bias"] + 70000.0  # beyond fp16's 65504
    path = save_weights(tmp_path / "big.safetensors", state, InterposerConfig(), direction=direction("xl-to-v1"))
    converter = _converter(path, device="cpu", precision="bf16")
    reference = _converter(path, device="cpu", precision="fp32").convert(IO["input"], "xl", "v1", scaled=False)
    half = _converter(path, device="cpu", precision="fp16")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out, report = half.run(IO["input"], "xl", "v1", scaled=False)
            half.run(IO["input"], "xl", "v1", scaled=False)
    except UnsupportedPrecisionError:
        pytest.skip("this torch has no fp16 convolutions on the CPU")
    assert report.fell_back_to_fp32
    assert torch.isfinite(out).all() and torch.allclose(out, reference, rtol=1e-5, atol=1e-2)
    assert sum("recomputed in fp32" in str(w.message) for w in caught) == 1
    assert torch.isfinite(converter.convert(IO["input"], "xl", "v1", scaled=False)).all()  # bf16 range suffices


def test_model_is_loaded_once_per_file_and_shared_between_threads():
    cache = ModelCache()
    converter = Converter(weights=WeightsQuery(path=str(XL_FIXTURE)), cache=cache, device="cpu", precision="fp32")
    results, errors = [], []

    def work():
        try:
            results.append(converter.convert(IO["input"], "xl", "v1", scaled=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.loads == 1 and len(cache._models) == 1
    assert all(torch.equal(r, results[0]) for r in results)
    converter.with_options(precision="bf16").convert(IO["input"], "xl", "v1", scaled=False)
    assert cache.loads == 1 and len(cache._models) == 2  # one file, two precisions


def test_cache_notices_replaced_files_and_a_new_local_file_that_takes_precedence(tmp_path):
    """Exporting a trained model into the weights folder takes effect at the next conversion, no restart."""
    import os

    from interposer.model import InterposerV4

    xl_v1 = direction("xl-to-v1")
    config = InterposerConfig(ch_mid=8, blocks=1)

    def write(path, seed):
        torch.manual_seed(seed)
        save_weights(path, InterposerV4.from_config(config).state_dict(), config, direction=xl_v1)

    write(tmp_path / "v4.0" / xl_v1.filename(), seed=1)  # the layout downloads leave
    cache = ModelCache()
    converter = Converter(weights=WeightsQuery(folders=[str(tmp_path)], allow_download=False), cache=cache,
                          device="cpu", precision="fp32")  # fmt: skip
    x = IO["input"]
    first = converter.convert(x, "xl", "v1", scaled=False)
    assert torch.equal(converter.convert(x, "xl", "v1", scaled=False), first) and cache.loads == 1

    write(tmp_path / xl_v1.filename(), seed=2)  # an exported file at the top level wins over v4.0/
    second = converter.convert(x, "xl", "v1", scaled=False)
    assert cache.loads == 2 and not torch.equal(second, first)

    write(tmp_path / xl_v1.filename(), seed=3)  # replaced in place
    stat = (tmp_path / xl_v1.filename()).stat()
    os.utime(tmp_path / xl_v1.filename(), ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    third = converter.convert(x, "xl", "v1", scaled=False)
    assert cache.loads == 3 and not torch.equal(third, second)
    assert len(cache._models) == 1  # models of replaced files are dropped

    (tmp_path / xl_v1.filename()).unlink()  # removed: back to the v4.0/ file
    assert torch.equal(converter.convert(x, "xl", "v1", scaled=False), first) and cache.loads == 4


def test_chunked_batches_equal_one_pass():
    x = torch.randn(5, 4, 16, 16)
    whole = _converter(device="cpu").convert(x, "xl", "v1")
    chunked = _converter(device="cpu", max_batch_pixels=2 * 16 * 16).convert(x, "xl", "v1")
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_model_is_in_eval_mode_without_gradients():
    cache = ModelCache()
    Converter(weights=WeightsQuery(path=str(XL_FIXTURE)), cache=cache, device="cpu").convert(IO["input"], "xl", "v1")
    (model,) = cache._models.values()
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_runs_at_the_requested_precision_under_a_callers_autocast():
    """The webui samples under autocast; the interposer must still compute in what it was asked."""
    converter = _converter(device="cpu", precision="fp32")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = converter.convert(IO["input"], "xl", "v1", scaled=False)
    assert (out - IO["output"]).abs().max() < 1e-4


@pytest.mark.parametrize(
    "latents, src, message",
    [
        (torch.zeros(4, 24, 32), "xl", "got 3 dimensions"),
        (torch.zeros(0, 4, 24, 32), "xl", "Empty batch"),
        (torch.zeros(1, 16, 24, 32), "xl", "have 4 channels, got 16"),
        (torch.full((1, 4, 8, 8), float("nan")), "xl", "256 NaN or infinite"),
        (torch.zeros(1, 4, 8, 8, dtype=torch.int64), "xl", "floating point"),
        (torch.zeros(1, 4, 25, 32), "ca", "multiples of 2, got 25x32"),
    ],
    ids=["rank", "empty", "channels", "nan", "int", "odd-size"],
)
def test_bad_input_is_refused_with_a_clear_message(latents, src, message):
    fixture = FIXTURES / f"{src}-to-v1_random.safetensors"
    with pytest.raises(InvalidLatentsError, match=message):
        _converter(fixture).convert(latents, src, "v1")


def test_fixture_ca_scale_half_through_the_converter():
    io = load_file(FIXTURES / "ca-to-v1_random_io.safetensors")
    out = _converter(FIXTURES / "ca-to-v1_random.safetensors").convert(io["input"], "ca", "v1", scaled=False)
    assert out.shape == (2, 4, 12, 16) and torch.allclose(out, io["output"], atol=1e-4)


def test_fixture_fx_sixteen_channels_through_the_converter():
    io = load_file(FIXTURES / "fx-to-v1_random_io.safetensors")
    out = _converter(FIXTURES / "fx-to-v1_random.safetensors").convert(io["input"], "fx", "v1", scaled=False)
    assert torch.allclose(out, io["output"], atol=1e-4)


def test_report_describes_the_conversion():
    _, report = _converter(device="cpu", precision="fp32").run(IO["input"], "xl", "v1")
    text = str(report)
    assert "xl-to-v1" in text and "(2, 4, 24, 32)" in text and "cpu" in text and "fp32" in text and " ms" in text


def test_console_report_separates_the_one_off_load_from_the_conversion(linear_weights):
    from interposer.runtime import Converter, ModelCache

    folder, _ = linear_weights
    converter = Converter(weights=WeightsQuery(folders=(str(folder),), allow_download=False), device="cpu",
                          cache=ModelCache())  # fmt: skip
    x = torch.randn(1, 4, 16, 16)
    _, first = converter.run(x, "xl", "v1")
    _, second = converter.run(x, "xl", "v1")
    assert first.load_ms > 0 and "(+" in str(first) and "loading the model, once" in str(first)
    assert second.load_ms == 0 and "loading" not in str(second)
