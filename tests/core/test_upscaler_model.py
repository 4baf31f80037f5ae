"""The v2.1 latent upscaler must load city96's layout strictly and compute exactly what it computes."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import UPSCALER_FIXTURES
from safetensors.torch import load_file

from interposer.upscaler_model import LatentUpscalerV2, UpscalerConfig, expected_upscaler_shapes

FIXTURES = UPSCALER_FIXTURES
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CASES = sorted(MANIFEST["cases"])


@pytest.mark.parametrize("case", CASES)
def test_golden_fixture_loads_strictly_and_reproduces_outputs(case):
    spec = MANIFEST["cases"][case]
    model = LatentUpscalerV2(factor=float(spec["factor"])).eval()
    assert [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()] == [
        (k, shape, dtype) for k, shape, dtype in spec["state_dict"]
    ]
    model.load_state_dict(load_file(FIXTURES / f"{case}.safetensors"), strict=True)
    io = load_file(FIXTURES / f"{case}_io.safetensors")
    with torch.no_grad():
        out = model(io["input"])
    assert list(out.shape) == spec["output_shape"]
    assert model.output_size(*spec["input_shape"][-2:]) == tuple(spec["output_shape"][-2:])
    assert torch.allclose(out, io["output"], atol=1e-4, rtol=0)


def test_other_widths_and_depths_have_their_own_layout():
    shapes = expected_upscaler_shapes(UpscalerConfig(ch_mid=16, convs=3, factor=1.5))
    assert shapes["sequential.0.weight"] == (16, 4, 3, 3)
    assert shapes["sequential.10.weight"] == (4, 16, 3, 3)
    assert len(shapes) == 2 * 5
    with pytest.raises(ValueError, match="unknown"):
        UpscalerConfig.from_dict({"factor": 2, "blocks": 3})
