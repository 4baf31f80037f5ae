"""The files the package ships (interposer/bundled): each loads strictly in fp16 and carries its model card."""

from __future__ import annotations

import pytest
import torch

from interposer import lookup
from interposer.directions import bundled_directions
from interposer.model import InterposerV4
from interposer.weights import WeightsQuery, resolve_and_load


def test_every_shipped_file_loads_in_fp16_with_its_model_card():
    """The files in the package: strict load in the v4.0 layout, fp16, a few MB, and the card's numbers."""
    import json

    for dirn in bundled_directions():
        loaded = resolve_and_load(dirn, WeightsQuery(allow_download=False))
        assert loaded.path.parent == lookup.BUNDLED_DIR and loaded.path.stat().st_size < 8_000_000
        assert {t.dtype for t in loaded.state_dict.values() if t.is_floating_point()} == {torch.float16}
        InterposerV4.from_config(loaded.config).load_state_dict(
            {k: v.float() for k, v in loaded.state_dict.items()}, strict=True
        )
        card = json.loads(loaded.metadata["model_card"])
        held_out = card["held_out"]
        # Shipped only 3 dB or more above the best 1x1 linear map; the gap to the TAE bridge is recorded (and shown in
        # docs/models.md), not yet within issue 20's 1 dB.
        assert held_out["psnr"] >= held_out["linear_psnr"] + 3.0, dirn.name
        assert held_out["bridge_psnr"] > 0 and held_out["images"] >= 14, dirn.name
        assert card["licence"] and card["data"] and card["steps"] > 0


def test_the_pictures_of_the_shipped_directions_on_a_tiny_image(tmp_path):
    """``docs/make_pictures.py --bundled`` with the package's files (no weights folder, no download): one picture
    per shipped direction; on a generated scene each interposer is above 20 dB and within 6 dB of the TAE bridge
    (no conversion is impossible across these channel counts)."""
    import importlib.util
    import math
    import sys

    from conftest import PHOTOS, REPO, TAESD_DIR

    if TAESD_DIR is None or not (TAESD_DIR / "taef2_encoder.safetensors").is_file():
        pytest.skip("needs the tiny VAEs of SDXL, FLUX.1 and FLUX.2")
    spec = importlib.util.spec_from_file_location("make_pictures", REPO / "docs" / "make_pictures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        pictures = module.bundled_pictures(PHOTOS / "032.jpg", TAESD_DIR, tmp_path, max_side=128, panel_side=64)
    finally:
        del sys.modules[spec.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"convert-{n}.jpg" for n in module.BUNDLED_PICTURES)
    for name, picture in pictures.items():
        scores = picture.psnr
        assert all(math.isfinite(v) for v in scores.values() if v is not None), name
        # on full-size held-out images 1.3-2.3 dB under the bridge; on a 128-px scene up to 4.2 dB
        assert scores["interposer"] > scores["TAESD bridge"] - 6.0 and scores["interposer"] > 20.0, (name, scores)
        assert scores["no conversion"] is None, name


def test_convert_runs_a_shipped_direction_offline_with_no_weights_folder(tmp_path, capsys):
    """``python -m interposer convert`` on an SDXL latent file: the shipped xl-to-fx, no folder, no download."""
    from safetensors.torch import load_file, save_file

    from interposer.cli import main

    source = tmp_path / "sdxl.safetensors"
    save_file({"samples": torch.randn(1, 4, 16, 16)}, str(source))
    out = tmp_path / "flux.safetensors"
    assert main(["convert", str(source), str(out), "--direction", "xl-to-fx", "--no-download", "--device", "cpu"]) == 0
    converted = load_file(str(out))["samples"]
    assert converted.shape == (1, 16, 16, 16) and torch.isfinite(converted).all()
