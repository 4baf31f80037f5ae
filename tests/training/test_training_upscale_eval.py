"""``python -m training eval`` for upscaling: the webui's Latent routes, the pixel route, the learned
upscaler, both cross-family chains, and the upscale policies at a scale no file has.

Weights are closed form (least-squares upscale filters and affine interposers written in the
published layouts), so nothing is trained; VAEs are the tiny TAESDs from ../shared; images are small.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import PHOTOS, TAESD_DIR, photo, requires_taesd

from interposer.directions import direction
from interposer.images import load_image, psnr
from interposer.linear import affine_to_v4, fit_affine
from interposer.linear_upscaler import filter_to_upscaler, fit_upscale_filter
from interposer.upscalers import upscaler
from interposer.weights import save_weights
from training.cli import main
from training.encode import downscale
from training.evaluate_upscale import BILINEAR, CEILING, CONVERT_FIRST, LEARNED, PIXEL, UPSCALE_FIRST

pytestmark = requires_taesd  # real TAESD files: the CLI, the trainer and the pictures read them

VAE_ARGS = ["--taesd-dir", str(TAESD_DIR), "--no-download"]
XL_V1 = direction("xl-to-v1")


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_vaes):
    """Least-squares upscalers (v1 and xl, x1.5 and x2, tag "lsq") and an xl -> v1 interposer, fitted on
    two photos the evaluations do not use."""
    folder = tmp_path_factory.mktemp("weights")
    hires = torch.cat([photo("010.jpg", 192), photo("011.jpg", 192)])
    for family in ("v1", "xl"):
        vae, space = tiny_vaes[family], XL_V1.src if family == "xl" else XL_V1.dst
        hi = space.to_raw(vae.encode(hires))
        for factor in (1.5, 2.0):
            lo = space.to_raw(vae.encode(downscale(hires, factor)))
            state, config = filter_to_upscaler(*fit_upscale_filter(lo, hi, factor), factor)
            spec = upscaler(family, factor)
            save_weights(folder / spec.filename("lsq"), state, config, direction=spec)
    src = XL_V1.src.to_raw(tiny_vaes["xl"].encode(hires))
    dst = XL_V1.dst.to_raw(tiny_vaes["v1"].encode(hires))
    state, config = affine_to_v4(*fit_affine(src, dst), blocks=1)
    save_weights(folder / XL_V1.filename("lsq"), state, config, direction=XL_V1)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images") / "photos"
    folder.mkdir()
    for name in ("001.jpg", "002.jpg"):
        (folder / name).symlink_to(PHOTOS / name)
    return folder


def _eval(out, *args) -> dict:
    assert main(["eval", *map(str, args), "--out", str(out), "--max-side", "96", *VAE_ARGS]) == 0
    return json.loads((out / "report.json").read_text())


def test_same_family_routes_match_a_direct_computation(weights, images, tmp_path, tiny_vaes):
    report = _eval(tmp_path, weights / "latent-upscaler-lsq_SDv1-x2.0.safetensors", "--images", images)
    assert report["route"] == "v1 -> v1" and report["factor"] == 2.0
    assert report["routes"] == [BILINEAR, "Latent (nearest-exact)", PIXEL, LEARNED, CEILING]
    assert report["per_folder"]["photos"]["images"] == 2 and len(report["grid_order"]) == 2
    # The webui's bilinear Latent, computed here by hand: downscale, encode, interpolate, decode.
    vae = tiny_vaes["v1"]
    hires = load_image(images / "001.jpg", max_side=96, multiple=16)
    z = vae.encode(downscale(hires, 2.0))
    by_hand = psnr(vae.decode(F.interpolate(z, size=(hires.shape[-2] // 8, hires.shape[-1] // 8), mode="bilinear")),
                   hires)  # fmt: skip
    row = next(r for r in report["per_image"] if r["image"] == "001.jpg")
    assert row[BILINEAR]["psnr"] == pytest.approx(by_hand, abs=1e-3)
    # The least-squares filter is fitted to beat bilinear interpolation of the same latents.
    assert report["mean"][LEARNED]["psnr"] > report["mean"][BILINEAR]["psnr"]
    assert report["mean"][CEILING]["psnr"] > report["mean"][LEARNED]["psnr"]


def test_cross_family_scores_both_chains_and_needs_the_interposer(weights, images, tmp_path, capsys):
    files = [weights / f"latent-upscaler-lsq_SD{f}-x2.0.safetensors" for f in ("v1", "xl")]
    report = _eval(tmp_path, *files, weights / XL_V1.filename("lsq"), "--images", images)
    assert report["route"] == "xl -> v1"
    assert CONVERT_FIRST in report["routes"] and UPSCALE_FIRST in report["routes"]
    assert report["mean"][CONVERT_FIRST]["psnr"] != report["mean"][UPSCALE_FIRST]["psnr"]
    capsys.readouterr()
    assert main(["eval", *map(str, files), "--direction", "xl-to-v1", "--images", str(images),
                 "--out", str(tmp_path / "x"), *VAE_ARGS]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the xl-to-v1 interposer" in err[0]


def test_policies_at_a_scale_no_file_has(weights, images, tmp_path):
    """1.75x from x1.5 and x2 files: 'nearest' and 'at-least' both take x2 and shrink, 'at-most' takes x1.5
    and enlarges; each lands on the exact hires size."""
    folder = tmp_path / "v1"
    folder.mkdir()
    for factor in ("1.5", "2.0"):
        (folder / f"latent-upscaler-lsq_SDv1-x{factor}.safetensors").symlink_to(
            weights / f"latent-upscaler-lsq_SDv1-x{factor}.safetensors"
        )
    report = _eval(tmp_path / "out", folder, "--policies", "nearest", "at-least", "at-most", "--factor", "1.75",
                   "--tag", "lsq", "--images", images)  # fmt: skip
    names = [f"{LEARNED} ({p})" for p in ("nearest", "at-least", "at-most")]
    assert report["routes"][3:6] == names and report["factor"] == 1.75
    mean = report["mean"]
    assert mean[names[0]]["psnr"] == mean[names[1]]["psnr"] != mean[names[2]]["psnr"]
    assert all(row["size"][0] % 56 == 0 for row in report["per_image"])  # 1.75 = 7/4: whole latents both ways


@pytest.mark.parametrize(
    "given, extra, expected",
    [
        (
            ["latent-upscaler-lsq_SDv1-x1.5.safetensors", "latent-upscaler-lsq_SDv1-x2.0.safetensors"],
            [],
            "Two v1 upscalers given",
        ),
        (
            ["latent-upscaler-lsq_SDv1-x1.5.safetensors", "latent-upscaler-lsq_SDxl-x2.0.safetensors"],
            [],
            "different factors",
        ),
        (
            ["latent-upscaler-lsq_SDv1-x2.0.safetensors", "latent-upscaler-lsq_SDxl-x2.0.safetensors"],
            [],
            "--direction SRC-to-DST",
        ),
        ([XL_V1.filename("lsq"), XL_V1.filename("lsq")], [], "Give one interposer"),
        (["latent-upscaler-lsq_SDv1-x2.0.safetensors"], ["--policies", "nearest"], "--policies takes one folder"),
    ],
)
def test_eval_refusals_are_one_line(weights, images, tmp_path, capsys, given, extra, expected):
    args = ["eval", *(str(weights / g) for g in given), *extra, "--images", str(images), "--out", str(tmp_path),
            *VAE_ARGS]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
