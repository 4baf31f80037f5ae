"""The v4 model must load city96's layout strictly and compute exactly what it computes."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FIXTURES
from safetensors.torch import load_file

from interposer.directions import PUBLISHED, direction
from interposer.model import InterposerConfig, InterposerV4, expected_state_dict_shapes
from interposer.weights import load_weights

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CASES = sorted(MANIFEST["cases"])


@pytest.mark.parametrize("case", CASES)
def test_golden_fixture_loads_strictly_and_reproduces_outputs(case):
    spec = MANIFEST["cases"][case]
    model = InterposerV4(**spec["constructor"]).eval()
    # Same keys, same order, same shapes and dtypes as the published state dicts.
    assert [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()] == [
        (k, shape, dtype) for k, shape, dtype in spec["state_dict"]
    ]
    model.load_state_dict(load_file(FIXTURES / f"{case}.safetensors"), strict=True)
    io = load_file(FIXTURES / f"{case}_io.safetensors")
    with torch.no_grad():
        out = model(io["input"])
    assert list(out.shape) == spec["output_shape"]
    assert torch.allclose(out, io["output"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_fixture_through_the_file_loader(case):
    """load_weights reads the constructor metadata and validates keys and shapes before loading."""
    name = case.removesuffix("_random")
    loaded = load_weights(FIXTURES / f"{case}.safetensors", direction(name))
    assert loaded.config == InterposerConfig(**MANIFEST["cases"][case]["constructor"])
    model = InterposerV4.from_config(loaded.config).eval()
    model.load_state_dict(loaded.state_dict, strict=True)
    io = load_file(FIXTURES / f"{case}_io.safetensors")
    with torch.no_grad():
        assert torch.allclose(model(io["input"]), io["output"], atol=1e-4, rtol=0)


def test_scale_half_picks_even_positions():
    """Nearest resampling by 0.5 keeps rows/columns 0, 2, 4...: the ca-to-v1 fixture depends on it."""
    up = InterposerV4(scale=0.5).core[0]
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert up(x).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]


def test_all_twelve_published_directions_have_their_layout():
    layouts = {f"{s}-to-{d}": direction(s, d).default_config() for s, d in PUBLISHED}
    assert len(layouts) == 12
    assert layouts["xl-to-v1"] == InterposerConfig(4, 4, 64, 1.0, 12)
    assert layouts["fx-to-v1"] == InterposerConfig(16, 4, 64, 1.0, 12)
    assert layouts["v1-to-v3"] == InterposerConfig(4, 16, 64, 1.0, 12)
    assert layouts["ca-to-v3"] == InterposerConfig(4, 16, 64, 0.5, 12)
    for name, cfg in layouts.items():
        shapes = expected_state_dict_shapes(cfg)
        assert len(shapes) == 147, name


def test_config_rejects_unknown_or_invalid_arguments():
    with pytest.raises(ValueError, match="unknown"):
        InterposerConfig.from_dict({"ch_in": 4, "width": 3})
    with pytest.raises(ValueError, match="invalid"):
        InterposerConfig.from_dict({"ch_in": 0})


def test_batchnorm_cannot_be_folded_exactly():
    """Why the model keeps its BatchNorms: folding one into the conv after it is wrong at the borders.

    A residual block computes conv(pad0(bn(x))). Folding bn's affine map a*x+b into the conv gives
    conv'(pad0(x)), which at the border sees a*0+b = b where the original saw 0. Inside the image
    the two agree; on the one-pixel border they do not, so the fold is not exact in any precision.
    (The BN before a block cannot fold backwards either: a ReLU sits in front of it.)
    """
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(8).eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.normal_(1, 0.1)
    bn.bias.data.normal_(0, 0.5)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = bn.bias - bn.running_mean * a
    folded = torch.nn.Conv2d(8, 8, 3, padding=1)
    folded.weight.data = conv.weight * a.view(1, -1, 1, 1)
    folded.bias.data = conv.bias + (conv.weight * b.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        reference, candidate = conv(bn(x)), folded(x)
    interior = (reference - candidate)[..., 1:-1, 1:-1].abs().max().item()
    border = (reference - candidate).abs().max().item()
    assert interior < 1e-5
    assert border > 1e-2
