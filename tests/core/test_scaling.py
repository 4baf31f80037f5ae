"""Scale correctness on real images: the conversion only works with the right factors on both sides.

TAESD-XL encodes a held-out photo into SDXL *model-space* latents (what A1111's first pass leaves).
The converter, with closed-form weights fitted on *raw* latents (the convention of the published
files), maps them to SD1 model space; TAESD-v1 decodes them. The result must be far closer to the
photo than decoding the unconverted latents, and skipping the scaling on either side must break it.
"""

from __future__ import annotations

import pytest
from conftest import CHECK_PHOTOS, photo

from interposer.images import psnr
from interposer.runtime import Converter, ModelCache
from interposer.spaces import LatentSpace
from interposer.weights import WeightsQuery


def _psnrs(tiny_vaes, weights_path, name="045.jpg"):
    image = photo(name)
    xl_latents = tiny_vaes["xl"].encode(image)
    converter = Converter(weights=WeightsQuery(path=str(weights_path)), cache=ModelCache())
    converted = converter.convert(xl_latents, "xl", "v1")
    return psnr(tiny_vaes["v1"].decode(converted), image), psnr(tiny_vaes["v1"].decode(xl_latents), image)


@pytest.mark.parametrize("name", CHECK_PHOTOS)
def test_converted_latents_decode_close_to_the_photo(tiny_vaes, linear_weights, name):
    converted, unconverted = _psnrs(tiny_vaes, linear_weights[1]["xl-to-v1"], name)
    assert converted > 15.0
    assert converted > unconverted + 4.0


def test_v1_to_xl_direction(tiny_vaes, linear_weights):
    image = photo("030.jpg")
    converter = Converter(weights=WeightsQuery(path=str(linear_weights[1]["v1-to-xl"])), cache=ModelCache())
    out = converter.convert(tiny_vaes["v1"].encode(image), "v1", "xl")
    assert (
        psnr(tiny_vaes["xl"].decode(out), image)
        > psnr(tiny_vaes["xl"].decode(tiny_vaes["v1"].encode(image)), image) + 4
    )


def test_xl_to_v3_changes_channel_count_and_shift(tiny_vaes, linear_weights):
    """SD3 has 16 channels and a shift: both ends of the arithmetic matter."""
    image = photo("045.jpg")
    converter = Converter(weights=WeightsQuery(path=str(linear_weights[1]["xl-to-v3"])), cache=ModelCache())
    out = converter.convert(tiny_vaes["xl"].encode(image), "xl", "v3")
    assert out.shape[1] == 16
    assert psnr(tiny_vaes["v3"].decode(out), image) > 17.0


@pytest.mark.parametrize("broken", ["input", "output"])
def test_skipping_the_scaling_on_either_side_fails(tiny_vaes, linear_weights, monkeypatch, broken):
    good, _ = _psnrs(tiny_vaes, linear_weights[1]["xl-to-v1"])
    method = "to_raw" if broken == "input" else "to_scaled"
    monkeypatch.setattr(LatentSpace, method, lambda self, x: x)
    bad, _ = _psnrs(tiny_vaes, linear_weights[1]["xl-to-v1"])
    assert bad < good - 5.0


def test_raw_mode_equals_scaled_mode_up_to_the_factors(tiny_vaes, linear_weights):
    image = photo("045.jpg")
    z = tiny_vaes["xl"].encode(image)
    converter = Converter(weights=WeightsQuery(path=str(linear_weights[1]["xl-to-v1"])), cache=ModelCache())
    scaled = converter.convert(z, "xl", "v1")
    raw = converter.convert(z / 0.13025, "xl", "v1", scaled=False)
    assert (raw * 0.18215 - scaled).abs().max() < 1e-4
