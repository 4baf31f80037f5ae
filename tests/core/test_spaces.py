"""The scale/shift numbers and the raw <-> scaled arithmetic."""

from __future__ import annotations

import pytest
import torch

from interposer.directions import direction
from interposer.errors import UnknownDirectionError, UnknownSpaceError
from interposer.spaces import SPACES, get_space


def test_published_scale_factors():
    assert (SPACES["v1"].scale, SPACES["v1"].shift) == (0.18215, 0.0)
    assert (SPACES["xl"].scale, SPACES["xl"].shift) == (0.13025, 0.0)
    assert (SPACES["v3"].scale, SPACES["v3"].shift) == (1.5305, 0.0609)
    assert (SPACES["fx"].scale, SPACES["fx"].shift) == (0.3611, 0.1159)
    assert SPACES["ca"].scale == pytest.approx(1 / 0.43)
    assert (SPACES["f2"].scale, SPACES["f2"].shift, SPACES["f2"].channels) == (1.0, 0.0, 32)  # after the BatchNorm
    assert {s.channels for s in SPACES.values()} == {4, 16, 32}
    assert SPACES["ca"].spatial_factor == 4


def test_scaled_is_raw_minus_shift_times_scale():
    raw = torch.tensor([1.0, -2.0])
    assert torch.allclose(SPACES["v3"].to_scaled(raw), (raw - 0.0609) * 1.5305)
    assert torch.allclose(SPACES["fx"].to_scaled(raw), (raw - 0.1159) * 0.3611)
    assert torch.allclose(SPACES["xl"].to_scaled(raw), raw * 0.13025)


@pytest.mark.parametrize("name", list(SPACES))
def test_round_trip(name):
    x = torch.randn(2, 4, 3, 3)
    space = SPACES[name]
    assert torch.allclose(space.to_raw(space.to_scaled(x)), x, atol=1e-6)


def test_aliases_and_unknown_names():
    assert get_space("SDXL").name == "xl"
    assert get_space("sd15").name == "v1"
    assert get_space("flux").name == "fx"
    with pytest.raises(UnknownSpaceError, match="Known spaces: v1"):
        get_space("sd4")


def test_direction_parsing():
    assert direction("sdxl-to-sd15").name == "xl-to-v1"
    assert direction("xl", "v1").filename() == "xl-to-v1_interposer-v4.0.safetensors"
    assert direction("ca-to-v1").default_config().scale == 0.5
    with pytest.raises(UnknownDirectionError, match="SRC-to-DST"):
        direction("xl>v1")
    with pytest.raises(UnknownDirectionError, match="nothing to convert"):
        direction("xl-to-sdxl")


def test_flux2_packing_round_trip_is_exact_and_matches_the_vae_order():
    """FLUX.2's VAE packs ``c (i pi) (j pj) -> (c pi pj) i j``; Neo's preview unpacks with
    ``reshape(B, 32, 2, 2, H, W).permute(0, 1, 4, 2, 5, 3)``: both are what interposer.packing does."""
    from interposer.errors import InvalidLatentsError
    from interposer.packing import pack_2x2, unpack_2x2

    raw = torch.randn(2, 32, 10, 14)
    by_formula = raw.reshape(2, 32, 5, 2, 7, 2).permute(0, 1, 3, 5, 2, 4).reshape(2, 128, 5, 7)
    assert torch.equal(pack_2x2(raw), by_formula)
    neo_preview = by_formula.reshape(2, 32, 2, 2, 5, 7).permute(0, 1, 4, 2, 5, 3).reshape(2, 32, 10, 14)
    assert torch.equal(unpack_2x2(by_formula), neo_preview) and torch.equal(unpack_2x2(pack_2x2(raw)), raw)
    with pytest.raises(InvalidLatentsError, match=r"\[B, 128, H, W\]"):
        unpack_2x2(torch.zeros(1, 32, 4, 4))
