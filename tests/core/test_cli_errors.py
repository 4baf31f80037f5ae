"""Both CLIs answer a user's mistake with one ``error:`` line and exit code 1, never a traceback."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import FIXTURES, PHOTOS, TAESD_DIR, UPSCALER_FIXTURES, requires_taesd
from safetensors.torch import load_file, save_file

from interposer.cli import main
from training.cli import main as training_main

IO = load_file(FIXTURES / "xl-to-v1_random_io.safetensors")
FIXTURE = str(FIXTURES / "xl-to-v1_random.safetensors")
UPSCALER = UPSCALER_FIXTURES / "latent-upscaler-v2.1_SDxl-x2.0_random.safetensors"


def one_error_line(capsys, code, expected: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert expected in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def latents(tmp_path):
    path = tmp_path / "in.safetensors"
    save_file({"samples": IO["input"] * 0.13025}, str(path))
    return path


def convert(latents, output, *extra):
    return main(["convert", str(latents), str(output), "--direction", "xl-to-v1", "--weights", FIXTURE, *extra])


def test_output_under_a_file(latents, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    one_error_line(capsys, convert(latents, tmp_path / "afile" / "out.safetensors"), "is a file, not a folder")


def test_output_is_a_folder(latents, tmp_path, capsys):
    one_error_line(capsys, convert(latents, tmp_path), "it is a folder")


def test_output_that_cannot_be_written(latents, tmp_path, capsys, monkeypatch):
    """Whatever the OS refuses at write time (permissions, a full disk) is one line too."""
    import interposer.atomic_files as atomic

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(atomic, "write_atomically", refuse)
    line = one_error_line(capsys, convert(latents, tmp_path / "out.safetensors"), "Permission denied")
    assert "out.safetensors" in line


def test_output_in_a_missing_folder_is_created(latents, tmp_path):
    assert convert(latents, tmp_path / "new" / "deeper" / "out.safetensors") == 0
    assert (tmp_path / "new" / "deeper" / "out.safetensors").is_file()


@pytest.mark.parametrize(("device", "expected"), [("mps", "cannot use MPS"), ("tpu", "Unknown device 'tpu'"),
                                                  ("cuda:7", "CUDA")])  # fmt: skip
def test_devices_this_torch_lacks(latents, tmp_path, capsys, device, expected):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_error_line(capsys, convert(latents, tmp_path / "o.safetensors", "--device", device), expected)


@requires_taesd
def test_compare_on_a_file_that_is_not_an_image(tmp_path, capsys):
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not an image")
    code = main(["compare", str(bogus), "--direction", "xl-to-v1", "--weights", FIXTURE, "--taesd-dir",
                 str(TAESD_DIR), "--no-download"])  # fmt: skip
    one_error_line(capsys, code, "is not an image Pillow can read")


def test_compare_out_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code = main(["compare", str(PHOTOS / "045.jpg"), "--direction", "xl-to-v1", "--weights", FIXTURE,
                 "--out", str(tmp_path / "afile" / "grid.png"), "--no-download"])  # fmt: skip
    one_error_line(capsys, code, "is a file, not a folder")


def test_empty_batch_is_named_as_such(tmp_path, capsys):
    save_file({"samples": torch.zeros(0, 4, 32, 32)}, str(tmp_path / "empty.safetensors"))
    one_error_line(capsys, convert(tmp_path / "empty.safetensors", tmp_path / "o.safetensors"), "Empty batch")


def test_src_that_contradicts_direction_is_refused(latents, tmp_path, capsys):
    one_error_line(capsys, convert(latents, tmp_path / "o.safetensors", "--src", "v1"), "contradicts --direction")
    assert convert(latents, tmp_path / "o.safetensors", "--src", "sdxl") == 0  # an alias of the same space is fine


def test_a_single_latent_keeps_its_rank(tmp_path):
    save_file({"samples": IO["input"][0] * 0.13025}, str(tmp_path / "one.safetensors"))
    assert convert(tmp_path / "one.safetensors", tmp_path / "o.safetensors") == 0
    out = load_file(tmp_path / "o.safetensors")["samples"]
    assert out.shape == IO["output"][0].shape
    assert torch.allclose(out, IO["output"][0] * 0.18215, atol=1e-4)


def test_verbose_after_the_subcommand(latents, tmp_path):
    assert main(["convert", str(latents), str(tmp_path / "o.safetensors"), "--direction", "xl-to-v1",
                 "--weights", FIXTURE, "-v"]) == 0  # fmt: skip
    assert main(["-v", "list", "--weights-dir", str(tmp_path), "--no-download"]) == 0


def test_convert_upscale_in_one_family_and_across(tmp_path, capsys, linear_weights):
    named = tmp_path / "w" / "latent-upscaler-v2.1_SDxl-x2.0.safetensors"
    named.parent.mkdir()
    shutil.copyfile(UPSCALER, named)
    save_file({"samples": torch.randn(1, 4, 8, 12) * 0.5}, str(tmp_path / "xl.safetensors"))
    code = main(["convert", str(tmp_path / "xl.safetensors"), str(tmp_path / "up.safetensors"), "--src", "xl",
                 "--dst", "xl", "--upscale", "2", "--weights-dir", str(named.parent), "--no-download"])  # fmt: skip
    assert code == 0
    assert load_file(tmp_path / "up.safetensors")["samples"].shape == (1, 4, 16, 24)
    assert "xl x2.0 (1, 4, 8, 12) -> (1, 4, 16, 24)" in capsys.readouterr().out
    folder, _ = linear_weights
    code = main(["convert", str(tmp_path / "xl.safetensors"), str(tmp_path / "v1.safetensors"), "--src", "xl",
                 "--dst", "v1", "--upscale", "2.0", "--order", "upscale-first", "--upscaler-weights", str(named),
                 "--weights-dir", str(folder), "--no-download"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "xl x2.0" in printed and "xl-to-v1 (1, 4, 16, 24)" in printed
    assert main(["convert", str(tmp_path / "xl.safetensors"), str(tmp_path / "o.safetensors"), "--src", "xl",
                 "--dst", "xl", "--weights-dir", str(folder), "--no-download"]) == 1  # fmt: skip
    assert "nothing to convert (add --upscale FACTOR)" in capsys.readouterr().err


def test_upscaler_file_with_any_name_upscales_by_the_given_factor(tmp_path, capsys):
    """A renamed upscaler (no metadata, not the published name) is used at the factor --upscale gives;
    its tensors are still checked against the layout."""
    fixture = UPSCALER.parent / "latent-upscaler-v2.1_SDv1-x1.25_random"
    renamed = tmp_path / "my upscaler.safetensors"
    shutil.copyfile(f"{fixture}.safetensors", renamed)
    io = load_file(f"{fixture}_io.safetensors")
    save_file({"samples": io["input"]}, str(tmp_path / "v1.safetensors"))
    code = main(["convert", str(tmp_path / "v1.safetensors"), str(tmp_path / "up.safetensors"), "--src", "v1",
                 "--dst", "v1", "--upscale", "1.25", "--raw", "--upscaler-weights", str(renamed), "--no-download",
                 "--device", "cpu", "--precision", "fp32"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "v1 x1.25 (1, 4, 16, 24) -> (1, 4, 20, 30)" in capsys.readouterr().out
    assert torch.allclose(load_file(tmp_path / "up.safetensors")["samples"], io["output"], atol=1e-4)
    state = load_file(renamed)
    del state["sequential.36.bias"]
    save_file(state, str(renamed))
    code = main(["convert", str(tmp_path / "v1.safetensors"), str(tmp_path / "up2.safetensors"), "--src", "v1",
                 "--dst", "v1", "--upscale", "1.25", "--upscaler-weights", str(renamed), "--no-download"])  # fmt: skip
    one_error_line(capsys, code, "does not match the latent upscaler v2.1 layout")
    code = main(["convert", str(tmp_path / "v1.safetensors"), str(tmp_path / "up3.safetensors"), "--src", "v1",
                 "--dst", "v1", "--upscale", "1.25", "--upscaler-weights", FIXTURE, "--no-download"])  # fmt: skip
    one_error_line(capsys, code, "holds an interposer v4 model, not a latent upscaler v2.1 model")


@requires_taesd
def test_training_cli_errors_are_one_line_too(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code = training_main(["encode", str(PHOTOS), str(tmp_path / "afile" / "data"), "--families", "v1", "xl",
                          "--taesd-dir", str(TAESD_DIR), "--no-download", "-q"])  # fmt: skip
    one_error_line(capsys, code, "afile")
