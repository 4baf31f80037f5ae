"""``python -m interposer``: each command's happy path and one error path (in process; the
subprocess runs with a real hub are in test_hub.py)."""

from __future__ import annotations

import pytest
import torch
from conftest import FIXTURES, PHOTOS, TAESD_DIR, requires_taesd
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from interposer.cli import build_parser, main
from interposer.images import load_image

IO = load_file(FIXTURES / "xl-to-v1_random_io.safetensors")
FIXTURE = str(FIXTURES / "xl-to-v1_random.safetensors")


@pytest.mark.parametrize("command", ["list", "download", "convert", "compare"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m interposer " + command in capsys.readouterr().out


def test_list_shows_custom_trained_files(tmp_path, capsys, linear_weights):
    folder, _ = linear_weights
    assert main(["list", "--weights-dir", str(folder), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "xl-to-v1   yes        folder:" in out
    assert "fx-to-xl   yes        folder:" in out
    assert "ca-to-v1   no         hub (download): https://" in out


def test_list_reports_a_broken_custom_file(tmp_path, capsys):
    (tmp_path / "xl-to-v1_interposer-mine.safetensors").write_bytes(b"junk")
    assert main(["list", "--weights-dir", str(tmp_path)]) == 0
    assert "too short to be a safetensors file" in capsys.readouterr().err


def test_convert_safetensors_scaled_by_default(tmp_path, capsys):
    save_file({"samples": IO["input"] * 0.13025}, str(tmp_path / "in.safetensors"))
    code = main(["convert", str(tmp_path / "in.safetensors"), str(tmp_path / "out.safetensors"),
                 "--src", "xl", "--dst", "v1", "--weights", FIXTURE, "--device", "cpu"])  # fmt: skip
    assert code == 0
    out = load_file(tmp_path / "out.safetensors")["samples"]
    assert torch.allclose(out, IO["output"] * 0.18215, atol=1e-4)
    assert "scaled latents written" in capsys.readouterr().out


def test_convert_comfy_latent_is_raw_and_keeps_its_format(tmp_path):
    meta = {"prompt": "{}"}
    save_file({"latent_tensor": IO["input"], "latent_format_version_0": torch.tensor([])},
              str(tmp_path / "in.latent"), metadata=meta)  # fmt: skip
    assert main(["convert", str(tmp_path / "in.latent"), str(tmp_path / "out.latent"),
                 "--direction", "xl-to-v1", "--weights", FIXTURE]) == 0  # fmt: skip
    with safe_open(str(tmp_path / "out.latent"), "pt") as handle:
        assert set(handle.keys()) == {"latent_tensor", "latent_format_version_0"}
        assert handle.metadata()["prompt"] == "{}"
        assert torch.allclose(handle.get_tensor("latent_tensor"), IO["output"], atol=1e-4)


def test_convert_old_comfy_latent_without_version_marker(tmp_path):
    """ComfyUI's old format stored latents times 0.18215; it divides them back, so do we."""
    save_file({"latent_tensor": IO["input"] * 0.18215}, str(tmp_path / "old.latent"))
    assert main(["convert", str(tmp_path / "old.latent"), str(tmp_path / "out.latent"),
                 "--direction", "xl-to-v1", "--weights", FIXTURE]) == 0  # fmt: skip
    out = load_file(tmp_path / "out.latent")["latent_tensor"]
    assert torch.allclose(out, IO["output"], atol=1e-4)


def test_convert_refuses_ambiguous_files_and_wrong_channels(tmp_path, capsys):
    save_file({"a": IO["input"], "b": IO["input"].clone()}, str(tmp_path / "two.safetensors"))
    assert main(["convert", str(tmp_path / "two.safetensors"), str(tmp_path / "o.safetensors"),
                 "--direction", "xl-to-v1", "--weights", FIXTURE]) == 1  # fmt: skip
    assert "pass --key" in capsys.readouterr().err
    save_file({"x": torch.zeros(1, 16, 8, 8)}, str(tmp_path / "sd3.safetensors"))
    assert main(["convert", str(tmp_path / "sd3.safetensors"), str(tmp_path / "o.safetensors"),
                 "--direction", "xl-to-v1", "--weights", FIXTURE]) == 1  # fmt: skip
    assert "have 4 channels, got 16" in capsys.readouterr().err
    assert not (tmp_path / "o.safetensors").exists()


@requires_taesd
def test_compare_writes_the_grid_and_prints_four_psnrs(tmp_path, capsys, linear_weights):
    folder, _ = linear_weights
    out = tmp_path / "grid.png"
    code = main(["compare", str(PHOTOS / "045.jpg"), "--src", "xl", "--dst", "v1", "--weights-dir", str(folder),
                 "--no-download", "--taesd-dir", str(TAESD_DIR), "--out", str(out), "--max-side", "256"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    values = {line.split()[0]: float(line.split()[-2]) for line in text.splitlines()
              if line.strip().startswith(("no ", "TAESD", "interposer ")) and line.strip().endswith("dB")}  # fmt: skip
    assert set(values) == {"no", "TAESD", "interposer"}
    assert values["interposer"] > values["no"] + 4  # the converted panel is far closer to the photo
    height, width = load_image(PHOTOS / "045.jpg", max_side=256).shape[-2:]
    with Image.open(out) as grid:
        assert grid.size == (4 * width, height + 22)  # four panels under a caption strip


@requires_taesd
def test_compare_without_a_tiny_vae_for_the_space(tmp_path, capsys):
    weights = str(FIXTURES / "ca-to-v1_random.safetensors")
    code = main(["compare", str(PHOTOS / "045.jpg"), "--direction", "ca-to-v1", "--weights", weights,
                 "--taesd-dir", str(TAESD_DIR), "--no-download"])  # fmt: skip
    assert code == 1
    assert "There is no TAESD for Stable Cascade" in capsys.readouterr().err


def test_unknown_direction_lists_the_published_ones(capsys, tmp_path):
    assert main(["download", "fx-to-f2", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no published weights for fx-to-f2" in err and "xl-to-v1" in err
