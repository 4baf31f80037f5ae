"""``python -m training eval`` across several image folders: per-folder rows, the worst image of each,
mean ΔRGB, the signed gap to the VAE bridge and a worst-first grid.

The weights are closed-form (a least-squares affine map written in the v4 layout), so nothing is
trained; VAEs are the tiny TAESDs from ../shared, never the network. Images are small (max side 96)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import PHOTOS, TAESD_DIR, photo, requires_taesd
from PIL import Image

from interposer.directions import direction
from interposer.linear import affine_to_v4, fit_affine
from interposer.weights import save_weights
from training.cli import build_parser, main
from training.evaluate import PATHS, colour_error, eval_images, signed, summary

pytestmark = requires_taesd  # real TAESD files: the CLI, the trainer and the pictures read them

XL_V1 = direction("xl-to-v1")
VAE_ARGS = ["--taesd-dir", str(TAESD_DIR), "--no-download"]
MINUS = "\u2212"


def _write_weights(path, a, b):
    state, config = affine_to_v4(a, b, blocks=1)
    return save_weights(path, state, config, direction=XL_V1, metadata={"version": "linear-fit"})


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_vaes):
    """xl -> v1 least-squares weights fitted on two photos the evaluations below do not use."""
    images = torch.cat([photo("010.jpg", 128), photo("011.jpg", 128)])
    src = XL_V1.src.to_raw(tiny_vaes["xl"].encode(images))
    dst = XL_V1.dst.to_raw(tiny_vaes["v1"].encode(images))
    return _write_weights(tmp_path_factory.mktemp("w") / XL_V1.filename(), *fit_affine(src, dst))


@pytest.fixture(scope="module")
def bad_weights(tmp_path_factory):
    """Weights that map every latent to zero: far worse than the bridge on every image."""
    return _write_weights(tmp_path_factory.mktemp("bad") / XL_V1.filename(), torch.zeros(4, 4), torch.zeros(4))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two image folders: "photos" (two photos) and "art" (a photo and a noise image, the hard case)."""
    root = tmp_path_factory.mktemp("images")
    for folder, names in (("photos", ("001.jpg", "002.jpg")), ("art", ("003.jpg",))):
        (root / folder).mkdir()
        for name in names:
            (root / folder / name).symlink_to(PHOTOS / name)
    pixels = (torch.rand(96, 96, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(root / "art" / "noise.png")
    return root / "photos", root / "art"


@pytest.fixture(scope="module")
def report(weights, folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    code = main(["eval", str(weights), "--images", str(folders[0]), "--images", str(folders[1]), "--out", str(out),
                 "--max-side", "96", "--grid-images", "3", *VAE_ARGS])  # fmt: skip
    assert code == 0
    return json.loads((out / "report.json").read_text()), out


def _by_interposer_psnr(rows):
    return sorted(rows, key=lambda r: r["interposer"]["psnr"])


def test_two_folders_give_a_row_per_folder_and_the_overall_mean(report):
    report, out = report
    assert [f["folder"] for f in report["folders"]] == ["photos", "art"]
    assert [f["images"] for f in report["folders"]] == [2, 2] and report["images"] == 4
    ids = [row["image"] for row in report["per_image"]]
    assert ids == ["photos/001.jpg", "photos/002.jpg", "art/003.jpg", "art/noise.png"]
    assert [row["folder"] for row in report["per_image"]] == ["photos", "photos", "art", "art"]
    for folder in report["folders"]:
        rows = [r for r in report["per_image"] if r["folder"] == folder["folder"]]
        for name in ("VAE bridge", "interposer", "target VAE round trip"):
            for metric in ("psnr", "ssim", "delta_rgb"):
                expected = sum(r[name][metric] for r in rows) / len(rows)
                assert folder["mean"][name][metric] == pytest.approx(expected, abs=1e-3)
        assert folder["mean"]["linear map"] is None  # no --data: nothing to fit it on
    # Overall: the mean over all images, not over the folder means (the folders could differ in size).
    everything = report["per_image"]
    assert report["mean"]["interposer"]["psnr"] == pytest.approx(
        sum(r["interposer"]["psnr"] for r in everything) / 4, abs=1e-3
    )
    assert set(report["mean"]) == set(PATHS)
    md = (out / "report.md").read_text()
    assert "| path | all (4) | photos (2) | art (2) |" in md and "## Mean ΔRGB" in md


def test_worst_image_per_folder_and_overall(report):
    report, _ = report
    rows = report["per_image"]
    assert report["worst"]["image"] == _by_interposer_psnr(rows)[0]["image"] == "art/noise.png"
    for folder in report["folders"]:
        mine = [r for r in rows if r["folder"] == folder["folder"]]
        worst = _by_interposer_psnr(mine)[0]
        assert folder["worst"]["image"] == worst["image"]
        assert folder["worst"]["psnr"] == worst["interposer"]["psnr"]
        assert folder["worst"]["bridge_psnr"] == worst["VAE bridge"]["psnr"]
    assert report["folders"][1]["worst"]["image"] == "art/noise.png"


def test_gap_to_the_bridge_is_signed_interposer_minus_bridge(report):
    report, out = report
    for row in report["per_image"]:
        assert row["gap_to_bridge"] == pytest.approx(row["interposer"]["psnr"] - row["VAE bridge"]["psnr"], abs=2e-3)
    for summary_row in [report, *report["folders"]]:
        mean = summary_row["mean"]
        assert summary_row["gap_to_bridge"] == pytest.approx(
            mean["interposer"]["psnr"] - mean["VAE bridge"]["psnr"], abs=2e-3
        )
    md = (out / "report.md").read_text()
    assert f"| **interposer − VAE bridge** | **{signed(report['gap_to_bridge'])}** |" in md


def test_grid_shows_the_worst_images_first(report):
    report, out = report
    rows = report["per_image"]
    assert report["grid"] == [r["image"] for r in _by_interposer_psnr(rows)[:3]]
    assert report["grid"][0] == "art/noise.png"
    sizes = {r["image"]: r["size"] for r in rows}
    grid = Image.open(out / "grid.png")
    assert grid.size[1] == sum(sizes[i][0] + 22 for i in report["grid"])  # one captioned row per image
    assert not list(out.glob("grid-*.png"))  # the row files are gone


def test_a_bad_interposer_has_a_negative_gap_everywhere(bad_weights, folders, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["eval", str(bad_weights), "--images", str(folders[0]), str(folders[1]), "--out", str(out),
                 "--max-side", "64", "--grid-images", "1", *VAE_ARGS])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 4  # both folders from one --images
    assert all(r["gap_to_bridge"] < 0 for r in report["per_image"])
    assert report["gap_to_bridge"] < 0 and all(f["gap_to_bridge"] < 0 for f in report["folders"])
    assert report["mean"]["interposer"]["delta_rgb"] > report["mean"]["VAE bridge"]["delta_rgb"]
    gap = signed(report["gap_to_bridge"])
    assert gap.startswith(MINUS) and gap in (out / "report.md").read_text()
    # The printed summary: a column per folder and the gap with its sign.
    assert "all (4)" in printed and "photos (2)" in printed and "art (2)" in printed
    assert "bridge" in printed and ("-" + gap[1:] in printed or gap in printed)
    text = summary(report, unicode=False)
    assert text.isascii() and f"-{gap[1:]} dB" in text


def test_held_out_ids_across_all_folders_of_a_manifest(weights, folders, tmp_path):
    data = tmp_path / "data"
    assert main(["encode", str(folders[0]), str(folders[1]), str(data), "--holdout", "1", "--families", "xl", "v1",
                 "--crop", "64", "--crops-per-image", "1", "--max-side", "96", "-q", *VAE_ARGS]) == 0  # fmt: skip
    manifest = json.loads((data / "manifest.json").read_text())
    chosen = eval_images(data, None, allow_train=False)
    assert [i.id for i in chosen] == manifest["holdout"] and len(chosen) == 2
    assert [i.folder for i in chosen] == ["photos", "art"]
    assert all(i.path.is_file() and i.path.name == i.id.partition("/")[2] for i in chosen)
    out = tmp_path / "eval"
    assert main(["eval", str(weights), "--data", str(data), "--out", str(out), "--max-side", "96", *VAE_ARGS]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["image"] for r in report["per_image"]] == manifest["holdout"]
    assert [f["folder"] for f in report["folders"]] == ["photos", "art"]
    assert math.isfinite(report["mean"]["linear map"]["psnr"])  # fitted on the manifest's training latents
    # A folder that holds training images is refused, whichever of the folders it is.
    assert main(["eval", str(weights), "--data", str(data), "--images", str(folders[1]), *VAE_ARGS]) == 1


def test_images_option_takes_several_folders_and_repeats():
    args = build_parser().parse_args(["eval", "w.safetensors", "--images", "a", "b", "--images", "c"])
    assert args.images == ["a", "b", "c"]
    assert build_parser().parse_args(["eval", "w.safetensors"]).images is None


def test_two_folders_of_the_same_name_get_distinct_labels(tmp_path):
    for parent in ("x", "y"):
        (tmp_path / parent / "img").mkdir(parents=True)
        (tmp_path / parent / "img" / "001.jpg").symlink_to(PHOTOS / "001.jpg")
    chosen = eval_images(None, [tmp_path / "x" / "img", tmp_path / "y" / "img"], allow_train=False)
    assert [(i.folder, i.id) for i in chosen] == [("img", "img/001.jpg"), ("img-2", "img-2/001.jpg")]
    single = eval_images(None, str(tmp_path / "x" / "img"), allow_train=False)
    assert [(i.folder, i.id) for i in single] == [("img", "001.jpg")]  # one folder: plain names, as in encode


# --------------------------------------------------------------------------- units


def test_colour_error_is_zero_for_identical_images_and_sees_a_tint():
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    assert colour_error(image, image) == 0
    tinted = image.clone()
    tinted[:, 0] += 30 / 255  # +30 on red, nothing on green and blue: a mean over channels of 10
    assert colour_error(tinted, image) == pytest.approx(10.0, abs=1e-3)
    assert colour_error(image, tinted) == pytest.approx(10.0, abs=1e-3)
    # It measures the cast only: the same pixels in another order have the same average colour.
    shuffled = image.flatten(2)[..., torch.randperm(32 * 32)].view_as(image)
    assert colour_error(shuffled, image) == pytest.approx(0.0, abs=1e-4)


def test_signed_always_writes_the_sign():
    assert signed(0.614) == "+0.61"
    assert signed(-1.2) == f"{MINUS}1.20"
    assert signed(-1.2, minus="-") == "-1.20"
    assert signed(0.0) == "+0.00"
    assert signed(None) == "n/a" and signed(float("nan")) == "n/a"
