"""lllyasviel's Forge (f2) and the adapter choice, as decisions (its refiner switch by steps and inside hires fix);
tests/webui/test_forge_modules_and_families.py runs the Forge flavour of the Neo stand-in."""

from __future__ import annotations

import types

import pytest
from neo_env import write_checkpoint

from interposer.webui import options as li_options
from interposer.webui.a1111 import A1111_SAMPLERS
from interposer.webui.forge import FORGE_SAMPLERS, Forge, ForgeNeo, forge_for
from interposer.webui.preflight import refiner_refusal


class SDXL:  # named like huggingface_guess's latent format classes
    scale_factor = 0.13025
    latent_channels = 4


def _generation(tmp_path, sampler: str, *, enable_hr=False, option=None):
    """A duck-typed generation: an SDXL base loaded, an SD1.5 refiner file, the given sampler."""
    refiner = types.SimpleNamespace(filename=write_checkpoint(tmp_path / "sd15.safetensors", "sd15"), title="sd15",
                                    short_title="sd15")  # fmt: skip
    base_info = types.SimpleNamespace(filename=str(tmp_path / "sdxl.safetensors"), title="sdxl", short_title="sdxl")
    base = types.SimpleNamespace(model_config=types.SimpleNamespace(latent_format=SDXL()), sd_checkpoint_info=base_info)
    p = types.SimpleNamespace(sd_model=base, refiner_checkpoint_info=refiner, refiner_switch_at=0.8,
                              sampler_name=sampler, enable_hr=enable_hr, hr_checkpoint_info=None,
                              sample_hr_pass=lambda *a: None, firstpass_image=None)  # fmt: skip
    options = li_options.resolve(lambda key, default: default, str(tmp_path))
    values = option or {}
    return types.SimpleNamespace(p=p, webui=forge_for("f2.0.1v1.10.1-previous-669-gdfdcbab6"), options=options,
                                 option=lambda key, default: values.get(key, default))  # fmt: skip


def test_the_version_tag_picks_the_adapter():
    assert type(forge_for("neo")) is ForgeNeo and type(forge_for("neo 2.21")) is ForgeNeo
    assert type(forge_for("f2.0.1v1.10.1-previous-669-gdfdcbab6")) is Forge
    assert type(forge_for("classic")) is Forge


def test_f2_has_a1111s_samplers_and_its_own():
    assert set(A1111_SAMPLERS.samplers) < set(FORGE_SAMPLERS.samplers)
    assert {"HeunPP2", "IPNDM", "IPNDM_V", "DEIS", "DDPM"} <= set(FORGE_SAMPLERS.samplers)


@pytest.mark.parametrize(("sampler", "refused"), [("Euler", False), ("HeunPP2", False), ("DDPM", False),
                                                  ("IPNDM", True), ("DEIS", True), ("LMS", True)])  # fmt: skip
def test_f2_refusals_before_sampling(tmp_path, sampler, refused):
    message = refiner_refusal(_generation(tmp_path, sampler))
    assert (message is not None) is refused, message
    if refused:
        assert f"cannot carry the {sampler} sampler across the xl-to-v1 refiner switch" in message


def test_f2_switches_by_steps_and_allows_the_refiner_in_hires_fix(tmp_path):
    """Neo skips a refiner with hires fix; f2 runs it in the pass ``hires_fix_refiner_pass`` names (default: the
    second), so an LMS hires pass with an SD1.5 refiner is refused there before sampling."""
    generation = _generation(tmp_path, "LMS", enable_hr=True)
    assert generation.webui.switches_by_steps(generation.option) and generation.webui.refiner_in_hires
    assert "cannot carry the LMS sampler" in refiner_refusal(generation)
    assert not generation.webui.switch_reachable(1.0, generation.option)  # a step fraction never reaches 1
