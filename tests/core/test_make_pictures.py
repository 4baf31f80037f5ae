"""``docs/make_pictures.py`` (the README's pictures) on a tiny image: both files written, labelled panels,
one finite PSNR per panel, the ordering every real photo shows. Seconds on 2 cores, no network.

It runs the script's defaults for the weights (``../shared/measurements/h200-2026-12/weights``, the files
the README's pictures are made with) and the TAESD folder, so a moved folder or a renamed function fails
here rather than the next time someone regenerates the pictures.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
from conftest import PHOTOS, REPO, TAESD_DIR, requires_taesd
from PIL import Image

pytestmark = requires_taesd  # real TAESD files: the CLI, the trainer and the pictures read them

SCRIPT = REPO / "docs" / "make_pictures.py"


@pytest.fixture(scope="module")
def make_pictures():
    spec = importlib.util.spec_from_file_location("make_pictures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.parametrize("family", ["v1", "xl"])
def test_pictures_on_a_tiny_image(make_pictures, tmp_path, family, capsys):
    assert make_pictures.DEFAULT_WEIGHTS.is_dir(), "the H200 weights folder the pictures are made with"
    photo = PHOTOS / "032.jpg"  # a generated scene (tests/scenes.py)
    pictures = make_pictures.make_pictures(
        photo, taesd_dir=TAESD_DIR, out_dir=tmp_path, family=family, max_side=64, panel_side=48, crop=32
    )

    conversion, hires = pictures["conversion"], pictures["hires"]
    assert conversion.path == tmp_path / "convert-xl-to-v1.jpg"
    assert hires.path == tmp_path / f"hires-2x-{family}.jpg"
    assert list(conversion.psnr) == ["no conversion", "TAESD bridge", "interposer"]
    assert list(hires.psnr) == ["Latent", "Latent (NN)", "pixel route"]
    for picture in pictures.values():
        assert all(math.isfinite(v) for v in picture.psnr.values())
        assert math.isfinite(picture.ceiling)
        with Image.open(picture.path) as image:
            assert image.format == "JPEG"
            assert image.height == 22 + (48 if picture is conversion else 32)  # caption strip + panels
            assert image.width % 4 == 0  # four panels side by side
        assert picture.path.stat().st_size < 300 * 1024
    # Even at 64 px, unconverted SDXL latents decoded as SD1.5 are far off; both real paths are not.
    assert conversion.psnr["interposer"] > conversion.psnr["no conversion"] + 5
    assert conversion.psnr["TAESD bridge"] > conversion.psnr["no conversion"] + 5

    assert make_pictures.main([
        "--photo", str(photo), "--taesd-dir", str(TAESD_DIR), "--out-dir", str(tmp_path / "cli"),
        "--family", family, "--max-side", "64", "--panel-side", "48", "--crop", "32",
    ]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "interposer" in printed and "Latent (NN)" in printed and " dB" in printed
    assert (tmp_path / "cli" / f"hires-2x-{family}.jpg").is_file()


def test_crop_box_stays_inside(make_pictures):
    rows, cols = make_pictures.crop_box((40, 64), 32, (0.95, 0.05))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 32, 32, 64)
    rows, cols = make_pictures.crop_box((16, 24), 32, (0.5, 0.5))  # a crop larger than the image: all of it
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 16, 0, 24)
