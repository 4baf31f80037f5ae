"""``python -m training``, the recipe's features: several image folders, upscaler pairs (``--factors``),
RGB crops (``--rgb``), warm starts from the least-squares map, upscalers and convert-and-upscale
interposers, the image-space loss, CPU precision choice, and DDP under torchrun.

Tiny sizes throughout (4 photos, 96-px crops, the ``tiny`` preset, a few steps): plumbing, not quality.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import PHOTOS, REPO, TAESD_DIR, requires_taesd
from safetensors.torch import load_file

from interposer.cli import main as interposer_main
from interposer.directions import direction
from interposer.errors import InterposerError
from interposer.images import load_image
from interposer.linear import apply_affine, fit_affine
from interposer.linear_upscaler import fit_upscale_filter
from interposer.model import InterposerV4
from interposer.upscaler_model import LatentUpscalerV2
from interposer.upscalers import upscaler
from interposer.weights import load_weights
from training import train as train_module
from training.checkpoint import load_checkpoint
from training.cli import main
from training.config import TrainConfig, build_config
from training.data import load_split
from training.encode import (
    EncodeSettings,
    downscale,
    fit_image,
    image_path,
    image_seed,
    pick_holdout,
    random_crops,
)
from training.machine import has_native_bf16
from training.train import _autocast_dtype, train
from training.vaes import load_vae
from training.warm_start import refit_tail, warm_start_interposer, warm_start_upscaler

pytestmark = requires_taesd  # real TAESD files: the CLI, the trainer and the pictures read them

FOLDER_A = ("001.jpg", "002.jpg", "003.jpg")  # three images: a pick of one out of three, not a coin toss
FOLDER_B = ("003.jpg", "004.jpg")  # the same name in both folders: ids must tell them apart
COMMON = ["--families", "xl", "v1", "--taesd-dir", str(TAESD_DIR), "--no-download", "--crop", "96",
          "--crops-per-image", "1", "--holdout-crops", "1", "--max-side", "128", "--seed", "3", "--holdout", "1",
          "-q"]  # fmt: skip
FACTORS = ["--factors", "1.5", "2", "--rgb"]
FAST = ["precision=fp32", "tensorboard=false"]  # exact fp32 on every CPU; no TensorBoard start-up cost


def _copy_photos(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(PHOTOS / name, folder / name)
    return folder


def _log_rows(run):
    with (run / "log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    return _copy_photos(root / "A", FOLDER_A), _copy_photos(root / "B", FOLDER_B)


@pytest.fixture(scope="module")
def data(folders, tmp_path_factory):
    """Two folders into one data folder, one image held out per folder, 1.5x/2x pairs and the RGB crops."""
    out = tmp_path_factory.mktemp("data") / "both"
    assert main(["encode", str(folders[0]), str(folders[1]), str(out), *COMMON, *FACTORS]) == 0
    return out


@pytest.fixture(scope="module")
def data_a(folders, tmp_path_factory):
    """Folder A alone, 2x pairs only (no RGB crops: no decoder to load for the DDP run)."""
    out = tmp_path_factory.mktemp("data") / "a"
    assert main(["encode", str(folders[0]), str(out), *COMMON, "--factors", "2"]) == 0
    return out


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- 1. encode


def test_two_folders_give_prefixed_ids_and_a_per_folder_holdout(data, data_a, folders):
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["folders"] == [str(f.resolve()) for f in folders]
    everything = [*manifest["train_images"], *manifest["holdout"]]
    assert sorted(everything) == sorted([f"A/{n}" for n in FOLDER_A] + [f"B/{n}" for n in FOLDER_B])
    assert len(set(everything)) == len(everything)  # A/003.jpg and B/003.jpg are two images
    # One held out per folder, seeded per folder: A's pick is the pick of A encoded alone.
    holdout_a = [i for i in manifest["holdout"] if i.startswith("A/")]
    holdout_b = [i for i in manifest["holdout"] if i.startswith("B/")]
    assert len(holdout_a) == len(holdout_b) == 1
    alone = json.loads((data_a / "manifest.json").read_text())
    assert alone["holdout"] == [h.removeprefix("A/") for h in holdout_a]
    assert alone["holdout"] == pick_holdout(list(FOLDER_A), 1, 3)
    assert holdout_b == [f"B/{n}" for n in pick_holdout(list(FOLDER_B), 1, 3)]
    assert not set(manifest["holdout"]) & set(manifest["train_images"])
    assert image_path(manifest, "B/003.jpg") == folders[1].resolve() / "003.jpg"
    assert manifest["crops"] == len(manifest["train_images"]) == 3  # one crop per image
    holdout = load_file(data / "holdout.safetensors")
    assert holdout["image"].tolist() == [0, 1]  # indexes into manifest["holdout"]


def test_resume_refuses_other_folders(data, folders, capsys):
    before = (data / "manifest.json").read_text()
    for order in ([folders[1], folders[0]], [folders[0]]):
        assert main(["encode", *map(str, order), str(data), *COMMON, *FACTORS]) == 1
        err = capsys.readouterr().err
        assert "give the same folders in the same order" in err and "Traceback" not in err
    assert (data / "manifest.json").read_text() == before
    # The same folders and settings resume: nothing left to do, nothing changes.
    assert main(["encode", str(folders[0]), str(folders[1]), str(data), *COMMON, *FACTORS]) == 0
    assert json.loads((data / "manifest.json").read_text()) == json.loads(before)


def test_factors_store_downscaled_latents_and_rgb_crops(data):
    manifest = json.loads((data / "manifest.json").read_text())
    settings = EncodeSettings(**{**manifest["settings"], "factors": tuple(manifest["settings"]["factors"])})
    assert settings.factors == (1.5, 2.0) and settings.rgb
    shard = load_file(data / manifest["shards"][0]["file"])
    n = manifest["crops"]
    assert set(shard) == {"v1", "xl", "v1@x1.5", "xl@x1.5", "v1@x2.0", "xl@x2.0", "rgb", "image"}
    for family in ("v1", "xl"):
        assert shard[family].shape == (n, 4, 12, 12)
        assert shard[f"{family}@x1.5"].shape == (n, 4, 8, 8)  # 96 / 1.5 / 8
        assert shard[f"{family}@x2.0"].shape == (n, 4, 6, 6)  # 96 / 2 / 8
    assert shard["rgb"].dtype == torch.uint8 and shard["rgb"].shape == (n, 3, 96, 96)
    # The crop(s) of the first training image, cut again: the stored RGB is them, the x1.5/x2 latents
    # are the VAE's latents of them downscaled.
    ident = manifest["train_images"][0]
    image = fit_image(load_image(image_path(manifest, ident), max_side=None, multiple=8), settings)
    crops = random_crops(image, settings, settings.crops_per_image, image_seed(settings.seed, ident))
    mine = shard["image"] == 0
    assert torch.equal(shard["rgb"][mine], (crops * 255).round().to(torch.uint8))
    # load_vae as the command line calls it: its cached VAE, the one that encoded the data
    vae = load_vae(None, "v1", taesd_dir=str(TAESD_DIR), device="auto", precision="auto", allow_download=False)
    assert torch.allclose(shard["v1"][mine], vae.encode(crops), atol=1e-4)
    for factor in (1.5, 2.0):
        expected = vae.encode(downscale(crops, factor))
        assert torch.allclose(shard[f"v1@x{factor}"][mine], expected, atol=1e-4)
    holdout = load_file(data / "holdout.safetensors")
    assert holdout["v1@x2.0"].shape[1:] == (4, 6, 6) and holdout["rgb"].shape[1:] == (3, 96, 96)


@pytest.mark.parametrize("factor", ["1.25", "4.8"])  # 76.8 px: not whole; 20 px: whole, not a multiple of 8
def test_a_factor_that_is_not_whole_latents_is_refused(folders, tmp_path, capsys, factor):
    out = tmp_path / "d"
    assert main(["encode", str(folders[0]), str(out), *COMMON, "--factors", factor]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --factors {factor}:") and "multiple of 8" in err
    assert not out.exists()


# --------------------------------------------------------------------------- 2. warm starts


def _pairs(c_in, c_out, src_side, dst_side, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = 4 * torch.randn(6, c_in, src_side, src_side, generator=g)
    mix = torch.randn(c_out, c_in, generator=g)
    up = F.interpolate(src, size=(dst_side, dst_side), mode="bilinear")
    dst = torch.einsum("oc,bchw->bohw", mix, up) + torch.randn(6, c_out, dst_side, dst_side, generator=g)
    return src, dst


@pytest.mark.parametrize(("c_in", "c_out", "scale"), [(4, 4, 1.0), (4, 4, 2.0), (16, 4, 1.0)])
def test_warm_started_interposer_computes_the_least_squares_map(c_in, c_out, scale):
    src, dst = _pairs(c_in, c_out, 8, int(8 * scale))
    a, b = fit_affine(src, dst, scale)
    model = InterposerV4(ch_in=c_in, ch_out=c_out, ch_mid=12, scale=scale, blocks=2, dropout=0.1)
    carried = 2 * c_out
    before = model.head.short.weight[carried:].clone()
    warm_start_interposer(model, a, b)
    model.eval()
    x = 4 * torch.randn(2, c_in, 8, 8)
    with torch.no_grad():
        got = model(x)
        expected = apply_affine(x, a, b, scale)
        assert got.shape == expected.shape == (2, c_out, int(8 * scale), int(8 * scale))
        assert (got - expected).abs().max() < 1e-4
        assert expected.abs().max() > 5  # not a trivial map
        # The channels beyond the 2 * c_out carried ones keep their random start and carry signal.
        assert torch.equal(model.head.short.weight[carried:], before)
        assert model.head(x)[:, carried:].abs().sum() > 0
        assert model.core(model.head(x))[:, carried:].abs().sum() > 0
        for block in list(model.core)[1:3]:
            assert block.long[4].weight[carried:].abs().sum() > 0


def test_refit_tail_finds_the_read_out_of_the_kept_features_for_another_target():
    """An init run of another target: head and core kept, the 3x3 tail fitted by least squares onto the new
    target (here one a 3x3 read-out of those very features computes, which the fit must find)."""
    g = torch.Generator().manual_seed(5)
    trained = InterposerV4(ch_in=8, ch_out=4, ch_mid=12, blocks=2, dropout=0.0).eval()
    model = InterposerV4(ch_in=8, ch_out=3, ch_mid=12, blocks=2, dropout=0.0).eval()
    kept = {k: v for k, v in trained.state_dict().items() if not k.startswith("tail.")}
    model.load_state_dict(kept, strict=False)
    teacher = torch.nn.Conv2d(12, 3, 3, padding=1)
    src = 3 * torch.randn(16, 8, 8, 8, generator=g)
    with torch.no_grad():
        dst = teacher(trained.core(trained.head(src)))
        assert (model(src) - dst).abs().mean() > 0.1 * dst.abs().mean()  # the random tail is far from it
        refit_tail(model, src, dst, pixels_per_crop=64, ridge=1e-9)
        assert (model(src) - dst).abs().max() < 1e-3 * dst.abs().max()
        assert torch.allclose(model.tail.weight, teacher.weight, atol=1e-3)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in kept.items())  # the rest is untouched


@pytest.mark.parametrize("factor", [1.5, 2.0])
def test_warm_started_upscaler_computes_the_least_squares_filter(factor):
    src, dst = _pairs(4, 4, 8, int(8 * factor))
    weight, bias = fit_upscale_filter(src, dst, factor)
    model = LatentUpscalerV2(ch_in=4, ch_out=4, ch_mid=12, factor=factor, convs=2).eval()
    warm_start_upscaler(model, weight, bias)
    x = 4 * torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        got = model(x)
        expected = F.conv2d(F.interpolate(x, scale_factor=factor, mode="nearest"), weight, bias, padding=1)
        assert got.shape == expected.shape == (2, 4, int(8 * factor), int(8 * factor))
        assert (got - expected).abs().max() < 1e-4
        # Alive: the first and every inner conv keep random rows beyond the 8 carried channels,
        # and those channels are not all zero after any of them.
        carried = 8
        convs = [i for i, m in enumerate(model.sequential) if isinstance(m, torch.nn.Conv2d)]
        for index in convs[:-1]:
            assert model.sequential[index].weight[carried:].abs().sum() > 0
            assert model.sequential[: index + 2](x)[:, carried:].abs().sum() > 0  # after its ReLU


def test_warm_start_config_checks():
    with pytest.raises(InterposerError, match="warm_start=linear for an interposer needs bn=frozen"):
        TrainConfig.from_dict({"warm_start": "linear"})
    assert TrainConfig.from_dict({"warm_start": "linear", "bn": "frozen"}).bn == "frozen"
    assert TrainConfig.from_dict({"warm_start": "linear", "model": "upscaler", "factor": 2}).bn == "batch"


# --------------------------------------------------------------------------- 3. upscalers, convert-and-upscale


@pytest.fixture(scope="module")
def upscaler_run(data_a, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "up"
    code = main(["train", "--preset", "tiny", "--data", str(data_a), "--out", str(out), "--src", "v1", "--dst", "v1",
                 "--steps", "4", "--set", "model=upscaler", "factor=2", "warm_start=linear", "crop=4", "convs=2",
                 "eval_every=4", "checkpoint_every=4", *FAST, "-q"])  # fmt: skip
    assert code == 0
    return out


def test_upscaler_starts_at_the_linear_map(upscaler_run, data_a):
    summary = json.loads((upscaler_run / "summary.json").read_text())
    assert summary["kind"] == "upscaler" and summary["step"] == 4
    # The least-squares 3x3 filter after nearest 2x, fitted on the training pairs, scored on the held-out ones.
    train_pairs = load_split(data_a, ["v1@x2.0", "v1"])
    held = load_split(data_a, ["v1@x2.0", "v1"], "holdout")
    weight, bias = fit_upscale_filter(train_pairs["v1@x2.0"], train_pairs["v1"], 2.0)
    up = F.interpolate(held["v1@x2.0"], scale_factor=2.0, mode="nearest")
    linear_l1 = F.l1_loss(F.conv2d(up, weight, bias, padding=1), held["v1"]).item()
    assert summary["val_l1_linear"] == pytest.approx(linear_l1, rel=1e-4)
    rows = [r for r in _log_rows(upscaler_run) if r["val_l1"]]
    assert [int(r["step"]) for r in rows] == [0, 4]
    assert float(rows[0]["val_l1"]) == pytest.approx(summary["val_l1_linear"], abs=2e-5)
    assert float(rows[1]["val_l1"]) != pytest.approx(summary["val_l1_linear"], abs=2e-5)  # it trained


def test_upscaler_export_loads_with_the_upscaler_spec_and_is_listed(upscaler_run, tmp_path, capsys):
    folder = tmp_path / "weights"
    assert main(["export", str(upscaler_run), "--tag", "ci-up", "--out-dir", str(folder)]) == 0
    path = folder / "latent-upscaler-ci-up_SDv1-x2.0.safetensors"
    assert [p.name for p in folder.iterdir()] == [path.name]
    loaded = load_weights(path, upscaler("v1", 2))
    assert loaded.kind == "upscaler" and loaded.metadata["trained"] == "true" and loaded.version == "ci-up"
    assert (loaded.config.ch_mid, loaded.config.convs, loaded.config.factor) == (8, 2, 2.0)
    assert json.loads(loaded.metadata["training"])["step"] == 4
    model_state = load_checkpoint(upscaler_run)[0]["model"]
    assert all(torch.equal(value, model_state[key]) for key, value in loaded.state_dict.items())
    with pytest.raises(InterposerError):
        load_weights(path, upscaler("v1", 1.5))
    capsys.readouterr()
    assert interposer_main(["list", "--weights-dir", str(folder), "--no-download"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(path.name))
    assert f"trained, ci-up: {path}" in line


def test_initial_weights_do_not_depend_on_what_drew_random_numbers_before(data_a, tmp_path, monkeypatch):
    """Whatever draws random numbers before the model is built must not change its start: a VAE decoder
    built afresh does (its random init before its weights load), one from load_vae's cache does not; so
    a torchrun worker and an earlier run in the same process would start from different weights."""

    def run(out):
        cfg = build_config("tiny", None, {"data": str(data_a), "out": str(out), "src": "v1", "dst": "v1", "steps": "1",
                                          "model": "upscaler", "factor": "2", "crop": "4", "convs": "1",
                                          "precision": "fp32", "tensorboard": "false"})  # fmt: skip
        train(cfg, progress=False)
        return load_checkpoint(out)[0]["model"]

    plain = run(tmp_path / "a")
    fit = train_module.fit_linear_start

    def fit_drawing_random_numbers(*args, **kwargs):
        torch.rand(1000)
        return fit(*args, **kwargs)

    monkeypatch.setattr(train_module, "fit_linear_start", fit_drawing_random_numbers)
    drawn = run(tmp_path / "b")
    assert all(torch.equal(plain[key], drawn[key]) for key in plain)


def test_upscaler_across_families_is_refused(data, capsys):
    args = ["train", "--preset", "tiny", "--data", str(data), "--src", "xl", "--dst", "v1",
            "--set", "model=upscaler", "factor=2"]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model=interposer factor=2" in err


def test_convert_and_upscale_interposer_trains_and_exports(data_a, tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--preset", "tiny", "--data", str(data_a), "--out", str(out), "--src", "xl", "--dst", "v1",
                 "--steps", "2", "--set", "factor=2", "crop=4", *FAST, "-q"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["direction"] == "xl-to-v1-x2.0" and math.isfinite(summary["val_l1"])
    assert main(["export", str(out), "--tag", "ci-x2", "--out-dir", str(tmp_path)]) == 0
    path = tmp_path / "xl-to-v1-x2.0_interposer-ci-x2.safetensors"
    loaded = load_weights(path, direction("xl", "v1", 2.0))
    assert loaded.config.scale == 2.0 and loaded.metadata["trained"] == "true"
    model = InterposerV4.from_config(loaded.config).eval()
    model.load_state_dict(loaded.state_dict)
    with torch.no_grad():
        assert model(torch.randn(1, 4, 8, 8)).shape == (1, 4, 16, 16)


# --------------------------------------------------------------------------- 4. image-space loss


def test_image_loss_logs_val_psnr(data, tmp_path, monkeypatch):
    calls = []
    original = train_module.image_terms

    def counting(image, target, color_weight, kind):
        calls.append((tuple(image.shape), tuple(target.shape)))
        return original(image, target, color_weight, kind)

    monkeypatch.setattr(train_module, "image_terms", counting)
    out = tmp_path / "img"
    cfg = build_config("tiny", None, {"data": str(data), "out": str(out), "steps": "2", "eval_every": "2",
                                      "crop": "4", "image_weight": "1", "color_weight": "1", "image_batch": "2",
                                      "precision": "fp32", "tensorboard": "false"})  # fmt: skip
    train(cfg, progress=False)
    assert calls == [((2, 3, 32, 32), (2, 3, 32, 32))] * 2  # every step, 2 crops of 4 xl latents = 32 px
    psnrs = [float(r["val_psnr"]) for r in _log_rows(out) if r["val_psnr"]]
    assert len(psnrs) == 2 and all(3 < p < 60 for p in psnrs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_psnr"] == psnrs[-1] and 3 < summary["val_psnr_linear"] < 60


def test_image_loss_mse_is_the_mean_square_error_psnr_measures():
    image, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mse, color = train_module.image_terms(image, target, 0.0, "mse")
    assert mse.item() == pytest.approx(((image - target) ** 2).mean().item()) and color.item() == 0
    l1 = train_module.image_terms(image, target, 0.0)[0]
    assert l1.item() == pytest.approx((image - target).abs().mean().item())
    with pytest.raises(InterposerError, match="image_loss='l2'"):
        TrainConfig.from_dict({"image_loss": "l2"})


def test_image_loss_without_rgb_data_names_the_flag(data_a, tmp_path, capsys):
    args = ["train", "--preset", "tiny", "--data", str(data_a), "--out", str(tmp_path / "r"),
            "--set", "image_weight=1", *FAST]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "--rgb" in err
    assert not (tmp_path / "r" / "checkpoints").exists()


# --------------------------------------------------------------------------- 5. precision


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_a_cpu_is_bf16_only_where_native(native, monkeypatch, caplog):
    monkeypatch.setattr(train_module, "has_native_bf16", lambda: native)
    monkeypatch.setattr("training.machine.has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="training.train"):
        assert _autocast_dtype(TrainConfig(precision="auto"), cpu) == (torch.bfloat16 if native else None)
        assert _autocast_dtype(TrainConfig(precision="fp32"), cpu) is None
    assert caplog.records == []


def test_auto_precision_follows_this_cpu():
    expected = torch.bfloat16 if has_native_bf16() else None
    assert _autocast_dtype(TrainConfig(precision="auto"), torch.device("cpu")) == expected


def test_explicit_bf16_without_native_support_warns_with_the_measured_cost(monkeypatch, caplog):
    monkeypatch.setattr(train_module, "has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="training.train"):
        assert _autocast_dtype(TrainConfig(precision="bf16"), torch.device("cpu")) == torch.bfloat16
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "~3x slower than fp32" in record.getMessage() and "8.5 s/step vs 2.6 s/step" in record.getMessage()
    caplog.clear()
    monkeypatch.setattr(train_module, "has_native_bf16", lambda: True)
    with caplog.at_level(logging.WARNING, logger="training.train"):
        assert _autocast_dtype(TrainConfig(precision="bf16"), torch.device("cpu")) == torch.bfloat16
    assert caplog.records == []


# --------------------------------------------------------------------------- 6. DDP


def _gloo_available() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_gloo_available()


DDP_SET = ["model=upscaler", "factor=2", "crop=4", "convs=2", "steps=6", "eval_every=3", "checkpoint_every=6",
           "precision=fp32", "threads=1", "tensorboard=false"]  # fmt: skip


@pytest.mark.skipif(not _gloo_available(), reason="torch.distributed with the gloo backend is not available")
def test_ddp_on_two_processes_equals_one_process(data_a, tmp_path, restore_threads):
    ddp = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "training", "train", "--preset", "tiny", "--data", str(data_a), "--out", str(ddp),
               "--src", "v1", "--dst", "v1", "--batch", "4", "--set", *DDP_SET, "-q"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        proc.communicate()
        pytest.fail("torchrun did not finish in 120 s")
    assert proc.returncode == 0, output[-3000:]
    assert "x 2 processes" in output and output.count("done: 6 steps") == 1  # only rank 0 reports

    def single(out, batch):
        overrides = dict(item.split("=", 1) for item in DDP_SET)
        cfg = build_config("tiny", None, {**overrides, "data": str(data_a), "out": str(out), "src": "v1", "dst": "v1",
                                          "batch": str(batch)})  # fmt: skip
        train(cfg, progress=False)
        return load_checkpoint(out)[0]["model"]

    one = single(tmp_path / "one", 4)
    two = load_checkpoint(ddp)[0]["model"]
    assert set(one) == set(two)
    for key, value in one.items():
        assert torch.allclose(two[key], value, atol=1e-5, rtol=0), f"{key} differs between DDP and one process"
    # The tolerance tells batches apart: one process on a per-rank share (batch 2) ends elsewhere.
    half = single(tmp_path / "half", 2)
    assert max((half[k] - one[k]).abs().max().item() for k in one) > 1e-3

    # Rank 0 alone wrote the run folder: the same files as one process, every log row once.
    def files(run):
        return sorted(str(p.relative_to(run)) for p in run.rglob("*"))

    assert files(ddp) == files(tmp_path / "one")
    rows_ddp, rows_one = _log_rows(ddp), _log_rows(tmp_path / "one")
    assert [r["step"] for r in rows_ddp] == [r["step"] for r in rows_one]
    val_ddp, val_one = ([float(r["val_l1"]) for r in rows if r["val_l1"]] for rows in (rows_ddp, rows_one))
    assert len(val_ddp) == 3 and val_ddp == pytest.approx(val_one, abs=1e-4)  # steps 0, 3 and 6
    assert json.loads((ddp / "summary.json").read_text())["machine"]["processes"] == 2


# --------------------------------------------------------------------------- one-line errors of the new paths


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["model=upscaler", "factor=1.5"], "--factors 1.5"),  # the data has 2x pairs only
        (["model=upscaler", "factor=2", "reverse=true"], "no reverse"),
        (["model=upscaler", "factor=2", "batch=3", "crop=4"], None),  # any batch splits over one process
    ],
)
def test_training_refusals_are_one_line(data_a, tmp_path, capsys, extra, expected):
    args = ["train", "--preset", "tiny", "--data", str(data_a), "--out", str(tmp_path / "r"), "--src", "v1",
            "--dst", "v1", "--set", *extra, *FAST]  # fmt: skip
    code = main(args)
    err = capsys.readouterr().err
    if expected is None:
        assert code == 0, err
        return
    assert code == 1 and err.count("\n") == 1 and err.startswith("error:") and expected in err, err


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused():
    from interposer.errors import InterposerError
    from training.distributed import World

    assert World(rank=1, size=2).share(8) == slice(4, 8)
    with pytest.raises(InterposerError, match="batch=5 does not split evenly over 2 processes"):
        World(rank=0, size=2).share(5)


def test_the_same_folder_twice_is_refused(folders, tmp_path, capsys):
    assert main(["encode", str(folders[0]), str(folders[0]), str(tmp_path / "d"), *COMMON]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "given twice" in err
