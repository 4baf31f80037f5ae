"""TAESD loading: the shared sequential safetensors, A1111's .pth files, diffusers' layout."""

from __future__ import annotations

import pytest
import torch
from conftest import TAESD_DIR, photo, requires_taesd
from safetensors.torch import load_file, save_file

from interposer.errors import InterposerError, WeightsNotFoundError
from interposer.images import psnr
from interposer.taesd import _from_diffusers, load_part, load_tiny_vae, make_decoder, make_encoder

pytestmark = requires_taesd  # real TAESD files: the CLI, the trainer and the pictures read them


def test_round_trip_of_a_photo(tiny_vaes):
    image = photo("045.jpg", 128)
    for name in ("v1", "xl"):
        latents = tiny_vaes[name].encode(image)
        assert latents.shape == (1, 4, 16, 16)
        assert psnr(tiny_vaes[name].decode(latents), image) > 20


def test_sixteen_channel_families(tiny_vaes):
    image = photo("045.jpg", 64)
    assert tiny_vaes["v3"].encode(image).shape == (1, 16, 8, 8)
    assert tiny_vaes["fx"].encode(image).shape == (1, 16, 8, 8)


def test_taef2_loads_strictly_with_its_pool_branches_and_round_trips():
    """taef2 is TAESD's flux_2 variant (pool branches in three encoder and three decoder Blocks): 32 channels at /8."""
    vae = load_tiny_vae("f2", TAESD_DIR, allow_download=False)
    assert sum(1 for m in vae.modules() if hasattr(m, "pool")) == 6
    image = photo("045.jpg", 128)
    latents = vae.encode(image)
    assert latents.shape == (1, 32, 16, 16)
    assert psnr(vae.decode(latents), image) > 25


def test_a1111_pth_files_load_with_the_weights_only_loader(tmp_path, tiny_vaes):
    for part in ("encoder", "decoder"):
        state = load_file(TAESD_DIR / f"taesd_{part}.safetensors")
        torch.save({k: v.float() for k, v in state.items()}, tmp_path / f"taesd_{part}.pth")
    vae = load_tiny_vae("v1", tmp_path, allow_download=False)
    x = photo("045.jpg", 64)
    assert torch.allclose(vae.encode(x), tiny_vaes["v1"].encode(x), atol=1e-5)


def test_diffusers_autoencoder_tiny_layout_maps_strictly(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    model = diffusers.AutoencoderTiny(latent_channels=4)
    state = model.state_dict()
    for part, make in (("encoder", make_encoder), ("decoder", make_decoder)):
        module = make(4)
        module.load_state_dict(_from_diffusers(state, part), strict=True)
    # And through a file in the folder layout <folder>/taesd/diffusion_pytorch_model.safetensors
    (tmp_path / "taesd").mkdir()
    save_file(state, str(tmp_path / "taesd" / "diffusion_pytorch_model.safetensors"))
    vae = load_tiny_vae("v1", tmp_path, allow_download=False)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = model.encoder(x * 2 - 1)  # diffusers takes [-1, 1] images and maps them to [0, 1] itself
    assert torch.allclose(vae.encode(x), expected, atol=1e-5)


def test_wrong_file_for_the_family(tmp_path):
    with pytest.raises(InterposerError, match="not a TAESD encoder for v3"):
        load_part(TAESD_DIR / "taesd_encoder.safetensors", "v3", "encoder")
    with pytest.raises(WeightsNotFoundError, match="No taesdxl_encoder"):
        load_tiny_vae("xl", tmp_path, allow_download=False)
