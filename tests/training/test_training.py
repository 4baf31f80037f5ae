"""``python -m training``: the whole pipeline on a few small photos (encode -> train -> eval -> export),
exact resume, and one error path per command. Tiny sizes: this is a test of the plumbing, not of quality."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PHOTOS, REPO, TAESD_DIR, requires_taesd
from PIL import Image
from safetensors.torch import load_file

from interposer.cli import main as interposer_main
from interposer.directions import direction
from interposer.errors import InterposerError
from interposer.images import load_image
from interposer.model import InterposerV4
from interposer.runtime import Converter, ModelCache
from interposer.weights import WeightsQuery, load_weights, resolve_and_load
from training.checkpoint import load_checkpoint
from training.cli import build_parser, main
from training.config import TrainConfig, build_config
from training.data import CropSampler
from training.encode import EncodeSettings, fit_image, image_seed, random_crops, rotate_hue
from training.evaluate import PATHS, ssim
from training.train import lr_at, train

pytestmark = requires_taesd  # real TAESD files: the CLI, the trainer and the pictures read them

XL_V1 = direction("xl-to-v1")
TRAIN_PHOTOS = ("001.jpg", "002.jpg", "003.jpg", "004.jpg")
ENCODE = ["--families", "xl", "v1", "--taesd-dir", str(TAESD_DIR), "--no-download", "--crop", "128",
          "--crops-per-image", "2", "--max-side", "192", "--seed", "3", "-q"]  # fmt: skip


def _link_photos(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(PHOTOS / name)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four photos, one held out (by the seeded pick), encoded at 128 px."""
    root = tmp_path_factory.mktemp("training")
    images = _link_photos(root / "images", TRAIN_PHOTOS)
    assert main(["encode", str(images), str(root / "data"), "--holdout", "1", *ENCODE]) == 0
    return root / "data"


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A tiny run of 12 steps with EMA, checkpoints every 6, through the command line."""
    out = tmp_path_factory.mktemp("run") / "xl-to-v1"
    code = main(["train", "--preset", "tiny", "--data", str(data), "--out", str(out), "--set", "ema=0.9", "-q"])
    assert code == 0
    return out


def test_encode_writes_paired_raw_latents_and_a_manifest(data, tiny_vaes):
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["families"] == ["v1", "xl"]
    assert len(manifest["holdout"]) == 1 and manifest["holdout"][0] not in manifest["train_images"]
    assert sorted([*manifest["train_images"], *manifest["holdout"]]) == list(TRAIN_PHOTOS)
    assert manifest["crops"] == 6 and manifest["vaes"]["xl"]["kind"] == "taesd"
    shard = load_file(data / manifest["shards"][0]["file"])
    assert shard["xl"].shape == shard["v1"].shape == (6, 4, 16, 16)
    # Raw convention: re-encoding the same crop with TAESD and dividing by the scale gives the stored latents.
    name = manifest["train_images"][0]
    settings = EncodeSettings(**manifest["settings"])
    image = fit_image(load_image(PHOTOS / name, max_side=None), settings)
    crops = random_crops(image, settings, settings.crops_per_image, image_seed(settings.seed, name))
    expected = XL_V1.src.to_raw(tiny_vaes["xl"].encode(crops))
    assert torch.allclose(shard["xl"][:2], expected, atol=1e-3)
    assert shard["xl"].abs().mean() > 2  # raw SDXL latents are ~1/0.13 times the scaled ones
    assert (data / "holdout.safetensors").is_file()


def test_encode_resumes_with_the_same_crops_and_skips_bad_images(tmp_path, data):
    images = _link_photos(tmp_path / "images", TRAIN_PHOTOS[:1])
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (40, 40)).save(images / "tiny.png")
    assert main(["encode", str(images), str(tmp_path / "d"), "--shard-images", "1", *ENCODE]) == 0
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert set(manifest["skipped"]) == {"broken.jpg", "tiny.png"}
    assert "too small" in manifest["skipped"]["tiny.png"]
    first = (tmp_path / "d" / "train-00000.safetensors").stat().st_mtime_ns
    # More images appear: only they are encoded, and their crops equal those of the run that had them all.
    full = json.loads((data / "manifest.json").read_text())
    added = next(name for name in TRAIN_PHOTOS[1:] if name in full["train_images"])
    (images / added).symlink_to(PHOTOS / added)
    assert main(["encode", str(images), str(tmp_path / "d"), "--shard-images", "1", *ENCODE]) == 0
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["train_images"] == [TRAIN_PHOTOS[0], added] and len(manifest["shards"]) == 2
    assert (tmp_path / "d" / "train-00000.safetensors").stat().st_mtime_ns == first
    index = full["train_images"].index(added)
    shard = load_file(data / "train-00000.safetensors")
    resumed = load_file(tmp_path / "d" / "train-00001.safetensors")
    assert torch.equal(resumed["v1"], shard["v1"][shard["image"] == index])
    # Other settings in the same folder: refused, nothing overwritten.
    assert main(["encode", str(images), str(tmp_path / "d"), *ENCODE, "--crops-per-image", "3"]) == 1


def test_rotate_hue_keeps_grey_and_luma_and_turns_back():
    image = torch.rand(2, 3, 8, 8) * 0.5 + 0.25  # mid-range colours: nothing clamps
    assert torch.allclose(rotate_hue(image, 0), image, atol=1e-6)
    assert torch.allclose(rotate_hue(rotate_hue(image, 70), -70), image, atol=1e-5)
    grey = torch.full((1, 3, 4, 4), 0.4)
    assert torch.allclose(rotate_hue(grey, 123), grey, atol=1e-6)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    turned = rotate_hue(image, 90)
    assert torch.allclose((turned * luma).sum(-3), (image * luma).sum(-3), atol=1e-5)
    assert (turned - image).abs().mean() > 0.02


@pytest.fixture(scope="module")
def hue_data(tmp_path_factory):
    """The photos of ``data`` encoded again with every training crop's hue turned by up to 90 degrees."""
    root = tmp_path_factory.mktemp("hue")
    images = _link_photos(root / "images", TRAIN_PHOTOS)
    assert main(["encode", str(images), str(root / "data"), "--holdout", "1", *ENCODE, "--rgb", "--hue", "90"]) == 0
    return root / "data"


def test_hue_jitter_turns_training_crops_only_and_older_data_still_resumes(tmp_path, data, hue_data):
    plain, turned = load_file(data / "train-00000.safetensors"), load_file(hue_data / "train-00000.safetensors")
    # Same crops (positions and flips), other colours; the held-out crops are never turned.
    assert turned["xl"].shape == plain["xl"].shape and not torch.allclose(turned["xl"], plain["xl"], atol=0.1)
    assert torch.equal(load_file(hue_data / "holdout.safetensors")["xl"],
                       load_file(data / "holdout.safetensors")["xl"])  # fmt: skip
    settings = EncodeSettings(**{**json.loads((data / "manifest.json").read_text())["settings"], "hue": 90.0})
    name = json.loads((data / "manifest.json").read_text())["train_images"][0]
    image = fit_image(load_image(PHOTOS / name, max_side=None), settings)
    seed = image_seed(settings.seed, name)
    jittered, straight = random_crops(image, settings, 2, seed), random_crops(image, settings, 2, seed, jitter=False)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    unclamped = ((jittered > 0.01) & (jittered < 0.99)).all(-3)
    assert torch.allclose((jittered * luma).sum(-3)[unclamped], (straight * luma).sum(-3)[unclamped], atol=1e-4)
    # A data folder written before --hue existed has no "hue" in its settings: it resumes as hue 0.
    old = tmp_path / "old"
    _link_photos(old / "images", TRAIN_PHOTOS[:2])
    assert main(["encode", str(old / "images"), str(old / "d"), "--shard-images", "1", *ENCODE]) == 0
    manifest = json.loads((old / "d" / "manifest.json").read_text())
    del manifest["settings"]["hue"]
    (old / "d" / "manifest.json").write_text(json.dumps(manifest))
    _link_photos(old / "images", TRAIN_PHOTOS[2:3])
    assert main(["encode", str(old / "images"), str(old / "d"), "--shard-images", "1", *ENCODE]) == 0
    assert len(json.loads((old / "d" / "manifest.json").read_text())["train_images"]) == 3
    assert main(["encode", str(old / "images"), str(old / "d"), *ENCODE, "--hue", "30"]) == 1
    assert main(["encode", str(old / "images"), str(old / "e"), *ENCODE, "--hue", "270"]) == 1
    assert not (old / "e" / "manifest.json").exists()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(run, data, tmp_path):
    cfg = build_config("tiny", None, {"data": str(data), "out": str(tmp_path / "r"), "ema": "0.9"})
    train(cfg, stop_at=6, progress=False)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["step"] == 6
    assert main(["train", "--resume", str(tmp_path / "r"), "-q"]) == 0
    whole, whole_state = load_checkpoint(run)
    resumed, resumed_state = load_checkpoint(tmp_path / "r")
    assert resumed_state["step"] == whole_state["step"] == 12
    assert set(whole) == set(resumed) == {"model", "ema", "optim", "rng"}
    for group, tensors in whole.items():
        for key, value in tensors.items():
            assert torch.equal(value, resumed[group][key]), f"{group}.{key} differs after resume"
    log_lines = (tmp_path / "r" / "log.csv").read_text().splitlines()
    assert [line.split(",")[:3] for line in log_lines] == [
        line.split(",")[:3] for line in (run / "log.csv").read_text().splitlines()
    ]


def test_more_steps_on_resume_are_recorded_and_the_card_retrains_in_two_stages(run, tmp_path):
    """A finished run resumed with --steps restarts its cosine there: the checkpoint keeps where each total was
    set, and the model card's retrain command is the first run plus the resume (one run to 20 would differ)."""
    import shutil

    from training.card import retrain_command

    assert load_checkpoint(run)[1]["schedule"] == [[0, 12]]
    longer = tmp_path / "longer"
    shutil.copytree(run, longer)
    assert main(["train", "--resume", str(longer), "--steps", "20", "-q"]) == 0
    assert load_checkpoint(run)[1]["step"] == 12  # the copy goes on in the copy; the original is untouched
    state = load_checkpoint(longer)[1]
    assert state["step"] == 20 and state["schedule"] == [[0, 12], [12, 20]]
    assert json.loads((longer / "summary.json").read_text())["schedule"] == [[0, 12], [12, 20]]
    config = {**state["config"], "steps": 20}
    assert retrain_command(config, state["schedule"]) == (
        "python -m training train --preset tiny --data DATA --src xl --dst v1 --out RUN --set ema=0.9"
        " && python -m training train --resume RUN --data DATA --steps 20"
    )
    assert retrain_command(config, [[0, 20]]).endswith("--src xl --dst v1 --steps 20 --set ema=0.9")


def test_a_second_stage_starts_from_a_runs_weights_and_the_card_retrains_both(run, data, tmp_path):
    """``--set init=RUN``: a new run (own optimiser, schedule and losses) from a finished run's weights. Its first
    validation is the finished run's last; the checkpoint records the first stage, and the card counts and retrains
    both stages. A resume of the second stage keeps the record."""
    from training.card import model_card, retrain_command

    out = tmp_path / "stage2"
    args = ["train", "--preset", "tiny", "--data", str(data), "--out", str(out), "--steps", "6",
            "--set", "ema=0.9", f"init={run}", "-q"]  # fmt: skip
    assert main(args) == 0
    first = load_checkpoint(run)[1]
    rows = (out / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    start = dict(zip(header, rows[1].split(","), strict=True))
    assert start["step"] == "0" and float(start["val_l1"]) == pytest.approx(first["val_l1"], abs=1e-5)
    state = load_checkpoint(out)[1]
    record = state["init"]
    assert record["step"] == 12 and record["schedule"] == [[0, 12]] and record["init"] is None
    assert record["config"]["data"] == "" and record["config"]["ema"] == 0.9  # portable: no machine paths
    assert json.loads((out / "summary.json").read_text())["init"] == record
    assert retrain_command(state["config"], state["schedule"], record) == (
        "python -m training train --preset tiny --data DATA --src xl --dst v1 --out RUN1 --set ema=0.9"
        " && python -m training train --preset tiny --data DATA --src xl --dst v1 --out RUN2 --steps 6"
        " --set ema=0.9 init=RUN1"
    )
    point = {"psnr": 20.0, "ssim": 0.5}
    report = {"direction": "xl-to-v1", "images": 1, "mean": {"interposer": point, "VAE bridge": point,
                                                             "linear map": point}}  # fmt: skip
    card = model_card({**state, "direction": "xl-to-v1"}, report, licence="x", data_note="", retrain="")
    assert card["steps"] == 18 and card["stages"] == [12, 6]

    assert main(["train", "--resume", str(out), "--steps", "8", "-q"]) == 0
    assert load_checkpoint(out)[1]["init"] == record


def test_a_stage_on_other_data_records_both_and_retrains_each_on_its_own(run, data, hue_data, tmp_path):
    """A finish stage on the same images encoded with --hue: the record keeps the first stage's data, this run's
    data says its hue, and the retrain line gives each stage its own data folder."""
    from training.card import model_card, retrain_command

    out = tmp_path / "hue-stage"
    args = ["train", "--preset", "tiny", "--data", str(hue_data), "--out", str(out), "--steps", "4",
            "--set", "ema=0.9", f"init={run}", "-q"]  # fmt: skip
    assert main(args) == 0
    state = load_checkpoint(out)[1]
    first = json.loads((run / "summary.json").read_text())["data"]
    assert state["init"]["data"]["manifest_sha256"] == first["manifest_sha256"] and first["hue"] == 0.0
    assert state["data"]["hue"] == 90.0 and state["data"]["manifest_sha256"] != first["manifest_sha256"]
    line = retrain_command(state["config"], state["schedule"], state["init"], state["data"])
    assert "--data DATA --src xl --dst v1 --out RUN1" in line and "--data DATA2 --src xl --dst v1 --out RUN2" in line
    assert "DATA3" not in line
    # A stage recorded before stages recorded their data goes with the next stage that has one.
    from training.card import data_names

    recorded = [{"manifest_sha256": h} for h in "aab"]
    assert data_names([None, *recorded]) == ["DATA", "DATA", "DATA", "DATA2"]
    assert data_names([None, None, recorded[0]]) == ["DATA"] * 3
    assert data_names([recorded[0], None]) == ["DATA", "DATA"]
    assert data_names([recorded[0], recorded[2], None]) == ["DATA", "DATA2", "DATA2"]
    point = {"psnr": 20.0, "ssim": 0.5}
    report = {"direction": "xl-to-v1", "images": 1, "mean": {"interposer": point, "VAE bridge": point,
                                                             "linear map": point}}  # fmt: skip
    card = model_card({**state, "direction": "xl-to-v1"}, report, licence="x", data_note="", retrain=line)
    assert card["data"]["hue"] == 90.0


def test_an_init_of_another_layout_is_one_line_naming_the_option(run, data, tmp_path, capsys):
    args = ["train", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "r"), "--set", f"init={run}"]
    assert main([*args, "ch_mid=16", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert f"init={run} was trained with ch_mid 8 (this run: 16)" in err and "\n" not in err
    assert not (tmp_path / "r" / "checkpoints").exists() and not (tmp_path / "r").exists()  # refused before any work
    assert main([*args[:-1], f"init={tmp_path / 'nothing'}", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert "nothing" in err and "\n" not in err and "Traceback" not in err


def test_ctrl_c_saves_the_current_step_and_resume_is_exact(run, data, tmp_path, monkeypatch, capsys):
    """Ctrl-C mid-run: the step finishes, a checkpoint is written at it, and --resume ends bit-identical."""
    import signal

    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs as a background job
    calls = {"n": 0}
    original = CropSampler.sample

    def sample_and_press_ctrl_c_at_step_4(self):
        calls["n"] += 1
        if calls["n"] == 4:
            signal.raise_signal(signal.SIGINT)
        return original(self)

    monkeypatch.setattr(CropSampler, "sample", sample_and_press_ctrl_c_at_step_4)
    out = tmp_path / "r"
    args = ["train", "--preset", "tiny", "--data", str(data), "--out", str(out), "--set", "ema=0.9", "-q"]
    assert main(args) == 130
    assert f"--resume {out}" in capsys.readouterr().err
    assert load_checkpoint(out)[1]["step"] == 4  # not the last periodic checkpoint (none before step 6)
    assert signal.getsignal(signal.SIGINT) is handler_before  # the run put back whatever was there
    monkeypatch.setattr(CropSampler, "sample", original)
    assert main(["train", "--resume", str(out), "-q"]) == 0
    whole, resumed = load_checkpoint(run)[0], load_checkpoint(out)[0]
    for group, tensors in whole.items():
        for key, value in tensors.items():
            assert torch.equal(value, resumed[group][key]), f"{group}.{key} differs after Ctrl-C and resume"


def test_run_folder_has_log_plot_and_summary(run):
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"step-0000006.safetensors", "step-0000012.safetensors"}
    header, *rows = (run / "log.csv").read_text().splitlines()
    assert header.startswith("step,lr,loss,val_l1")
    assert len(rows) == 12 + 3  # a loss row per step, a validation row at steps 0, 6 and 12
    assert (run / "loss.png").stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 12 and math.isfinite(summary["val_l1"]) and math.isfinite(summary["val_l1_linear"])


def test_eval_reports_the_four_paths_on_held_out_images(run, data, tmp_path):
    out = tmp_path / "eval"
    code = main(["eval", str(run), "--data", str(data), "--out", str(out), "--max-side", "128",
                 "--taesd-dir", str(TAESD_DIR), "--no-download"])  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    holdout = json.loads((data / "manifest.json").read_text())["holdout"]
    assert [row["image"] for row in report["per_image"]] == holdout
    assert set(report["mean"]) == set(PATHS)
    for name in PATHS:
        assert math.isfinite(report["mean"][name]["psnr"]) and 0 < report["mean"][name]["ssim"] <= 1
    assert report["mean"]["VAE bridge"]["psnr"] > report["mean"]["no conversion"]["psnr"]
    assert report["weights"]["constructor"]["ch_mid"] == 8 and report["weights"]["training"]["ema"] is True
    assert "| interposer |" in (out / "report.md").read_text()
    width = report["per_image"][0]["size"][1]
    assert Image.open(out / "grid.png").size[0] == 6 * width  # original + five paths


def test_eval_refuses_training_images(run, data, capsys):
    images = json.loads((data / "manifest.json").read_text())["images_dir"]
    assert main(["eval", str(run), "--data", str(data), "--images", images]) == 1
    assert "used for training" in capsys.readouterr().err


def test_export_loads_in_interposer_and_the_webui_lookup(run, tmp_path, capsys):
    folder = tmp_path / "weights"
    assert main(["export", str(run), "--tag", "ci-1", "--out-dir", str(folder)]) == 0
    path = folder / "xl-to-v1_interposer-ci-1.safetensors"
    loaded = load_weights(path, XL_V1)
    assert loaded.version == "ci-1" and (loaded.config.ch_mid, loaded.config.blocks) == (8, 1)
    assert loaded.metadata["src"] == "xl" and loaded.metadata["format_version"] == "1"
    training = json.loads(loaded.metadata["training"])
    assert training["step"] == 12 and training["ema"] is True and training["data"]["images"] == 3
    # The runtime converts with it exactly as the EMA model computes (scaled in, scaled out).
    groups, _ = load_checkpoint(run)
    model = InterposerV4.from_config(loaded.config).eval()
    model.load_state_dict(groups["ema"])
    latents = torch.randn(1, 4, 16, 16)
    converted = Converter(weights=WeightsQuery(path=str(path)), device="cpu", cache=ModelCache()).convert(
        latents, "xl", "v1"
    )
    with torch.no_grad():
        expected = XL_V1.dst.to_scaled(model(XL_V1.src.to_raw(latents)))
    assert torch.allclose(converted, expected, atol=1e-5)
    assert interposer_main(["list", "--weights-dir", str(folder), "--no-download"]) == 0
    assert f"trained, ci-1: {path}" in capsys.readouterr().out
    # Tag v4.0 in a folder of its own: what the webui finds through its "Weights folder" setting.
    assert main(["export", str(run), "--tag", "v4.0", "--out-dir", str(tmp_path / "webui")]) == 0
    found = resolve_and_load(XL_V1, WeightsQuery(folders=[str(tmp_path / "webui")], allow_download=False))
    assert found.config.ch_mid == 8
    # Raw (non-EMA) weights on request.
    assert main(["export", str(run), "--tag", "raw", "--no-ema", "--out-dir", str(folder)]) == 0
    assert json.loads(load_weights(folder / "xl-to-v1_interposer-raw.safetensors").metadata["training"])["ema"] is False


def _strings(value):
    """Every string in a JSON-like value (keys too), JSON strings opened up."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value
        if value.startswith(("{", "[")):  # metadata values are strings: "training" and "constructor" hold JSON
            yield from _strings(json.loads(value))


def _machine_paths(value, *roots) -> list[str]:
    """Strings that give away where things were: rooted paths, ~, or this machine's folders."""
    home = str(Path.home())
    places = [str(r) for r in roots] + [str(Path.cwd()), str(REPO)] + ([home] if home != "/" else [])
    return [s for s in _strings(value) if s.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", s)
            or any(place in s for place in places)]  # fmt: skip


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_exported_metadata_summary_and_config_name_no_machine_paths(run, data, tmp_path):
    """Published weights must not publish the trainer's home folder: the data and VAEs are named by what
    identifies them (names, hashes), never by where they were."""
    assert main(["export", str(run), "--tag", "shared", "--out-dir", str(tmp_path)]) == 0
    metadata = load_weights(tmp_path / "xl-to-v1_interposer-shared.safetensors", XL_V1).metadata
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    for name, shared in (("metadata", metadata), ("summary.json", summary), ("config.json", config)):
        assert not _machine_paths(shared, run.parent, data.parent, TAESD_DIR), (name, _machine_paths(shared))
    training = json.loads(metadata["training"])
    for recorded in (training["data"], summary["data"]):
        assert recorded["manifest_sha256"] == _sha256(data / "manifest.json")
        assert recorded["name"] == "data" and recorded["folders"] == ["images"] and recorded["images"] == 3
        files = {n: _sha256(TAESD_DIR / n) for n in ("taesdxl_encoder.safetensors", "taesdxl_decoder.safetensors")}
        assert recorded["vaes"]["xl"] == {"family": "xl", "kind": "taesd", "name": TAESD_DIR.name, "files": files}
    assert training["config"]["data"] == config["data"] == "" and config["out"] == ""
    assert training["config"]["ch_mid"] == config["ch_mid"] == 8
    assert summary["checkpoint"] == "checkpoints/step-0000012.safetensors"
    # The run's own checkpoint keeps the data folder: resume on this machine needs it.
    assert load_checkpoint(run)[1]["config"]["data"] == str(data)


def test_export_of_a_checkpoint_that_recorded_paths_shares_none(run, data, tmp_path):
    """Checkpoints written before summaries were made portable recorded VAE and data locations."""
    from training.checkpoint import save_checkpoint

    groups, state = load_checkpoint(run)
    state["data"] = {"images": 3, "vaes": {
        "xl": {"family": "xl", "kind": "taesd", "source": str(TAESD_DIR)},
        "v1": {"family": "v1", "kind": "diffusers", "source": str(tmp_path / "gone" / "vae-ft-mse.safetensors")},
    }}  # fmt: skip
    old = save_checkpoint(tmp_path / "old" / "step-0000012.safetensors", groups, state)
    assert main(["export", str(old), "--tag", "old", "--out-dir", str(tmp_path)]) == 0
    metadata = load_weights(tmp_path / "xl-to-v1_interposer-old.safetensors", XL_V1).metadata
    assert not _machine_paths(metadata, tmp_path, data.parent, TAESD_DIR)
    vaes = json.loads(metadata["training"])["data"]["vaes"]
    assert vaes["v1"] == {"family": "v1", "kind": "diffusers", "name": "vae-ft-mse.safetensors"}
    assert vaes["xl"]["files"]["taesdxl_encoder.safetensors"] == _sha256(TAESD_DIR / "taesdxl_encoder.safetensors")


def test_vae_identity_names_files_and_hubs_not_places(tmp_path):
    from training.provenance import vae_identity

    folder = tmp_path / "alice" / "sdxl-vae"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
    cases = {
        str(folder): {"name": "sdxl-vae", "files": {"config.json": _sha256(folder / "config.json"),
                      "diffusion_pytorch_model.safetensors": _sha256(folder / "diffusion_pytorch_model.safetensors")}},
        "madebyollin/sdxl-vae-fp16-fix": {"name": "madebyollin/sdxl-vae-fp16-fix",
                                          "hub": "madebyollin/sdxl-vae-fp16-fix"},
        "taesd": {"name": "taesd", "hub": "madebyollin/taesdxl"},
        r"C:\Users\alice\models\VAE\sdxl_vae.safetensors": {"name": "sdxl_vae.safetensors"},
        "/home/alice/models/VAE/sdxl_vae.safetensors": {"name": "sdxl_vae.safetensors"},
    }  # fmt: skip
    for source, expected in cases.items():
        identity = vae_identity({"family": "xl", "kind": "diffusers", "source": source})
        assert identity == {"family": "xl", "kind": "diffusers", **expected}, source
        assert not _machine_paths(identity, tmp_path)


def test_reverse_model_and_round_trip_losses_export_the_other_direction(data, tmp_path):
    out = tmp_path / "both"
    cfg = build_config("tiny", None, {"data": str(data), "out": str(out), "reverse": "true", "steps": "2"})
    train(cfg, progress=False)
    assert main(["export", str(out), "--tag", "back", "--reverse", "--out-dir", str(tmp_path)]) == 0
    loaded = load_weights(tmp_path / "v1-to-xl_interposer-back.safetensors", direction("v1-to-xl"))
    assert json.loads(loaded.metadata["training"])["reverse"] is True


# --------------------------------------------------------------------------- error paths, one per command at least


@pytest.mark.parametrize("command", ["encode", "train", "eval", "export"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m training " + command in capsys.readouterr().out


def test_train_help_lists_every_preset(capsys):
    from training.config import PRESETS

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help: compare as one line
    assert {"cpu", "gpu", "tiny", "v4"} <= set(PRESETS)
    for name in PRESETS:
        assert f"{name} (" in text, f"--preset help does not name {name}"


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "training", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "encode" in result.stdout and "export" in result.stdout


def test_encode_errors(tmp_path, capsys):
    assert main(["encode", str(tmp_path / "missing"), str(tmp_path / "out"), *ENCODE]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["encode", str(tmp_path), str(tmp_path / "out"), "--families", "xl", "sd9"]) == 1
    assert "Unknown latent space 'sd9'" in capsys.readouterr().err
    assert main(["encode", str(tmp_path), str(tmp_path / "out"), "--families", "xl"]) == 1
    assert "at least two families" in capsys.readouterr().err


def test_train_errors(run, data, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "no-such-run")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--data", str(data), "--out", str(run)]) == 1
    assert "already has checkpoints" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--set", "lr=0.1"]) == 1
    assert "Cannot change lr when resuming" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--set", "blocks=many", "--data", str(data)]) == 1
    assert "blocks must be an integer" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--set", "colour=blue"]) == 1
    assert "Unknown training options: colour" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path)]) == 1
    assert "has no manifest.json" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--data", str(data), "--src", "v3"]) == 1
    assert "not of v3" in capsys.readouterr().err


def test_export_and_eval_errors(run, tmp_path, capsys):
    assert main(["export", str(run), "--tag", "x", "--out-dir", str(tmp_path)]) == 0
    exported = tmp_path / "xl-to-v1_interposer-x.safetensors"
    assert main(["export", str(exported), "--tag", "y"]) == 1
    assert "is not a training checkpoint" in capsys.readouterr().err
    assert main(["export", str(run), "--tag", "../evil"]) == 1
    assert "Tag '../evil'" in capsys.readouterr().err
    assert main(["export", str(run), "--tag", "z", "--reverse"]) == 1
    assert "no reverse model" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.safetensors"), "--images", str(PHOTOS)]) == 1
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- units


def test_config_files_and_overrides(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"lr": 0.002, "blocks": 4}))
    cfg = build_config("cpu", str(tmp_path / "c.json"), {"steps": "300", "flip": "off"})
    assert (cfg.lr, cfg.blocks, cfg.steps, cfg.flip, cfg.batch, cfg.ch_mid) == (0.002, 4, 300, False, 16, 48)
    if sys.version_info >= (3, 11):
        (tmp_path / "c.toml").write_text("[train]\nlr = 3e-4\nloss = 'mse'\n")
        assert build_config(None, str(tmp_path / "c.toml")).loss == "mse"
    with pytest.raises(InterposerError, match="Invalid training options: loss='l3'"):
        TrainConfig.from_dict({"loss": "l3"})


def test_lr_schedule_warms_up_holds_and_decays():
    cfg = TrainConfig(lr=1.0, warmup=10, decay_start=0.5, min_lr=0.1)
    assert lr_at(0, cfg, 100) == pytest.approx(0.1) and lr_at(9, cfg, 100) == 1.0
    assert lr_at(49, cfg, 100) == 1.0 and lr_at(75, cfg, 100) == pytest.approx(0.55)
    assert lr_at(100, cfg, 100) == pytest.approx(0.1)


def test_sampler_crops_line_up_and_flip_together():
    latents = torch.arange(2 * 4 * 16 * 16, dtype=torch.float32).view(2, 4, 16, 16)
    sampler = CropSampler(latents, latents.clone(), XL_V1, crop=8, batch=16, flip=True, seed=0)
    assert sampler.crop_px == 64
    x, y = sampler.sample()
    assert x.shape == (16, 4, 8, 8) and torch.equal(x, y)
    state = sampler.state_dict()
    again = sampler.sample()
    sampler.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(again, sampler.sample(), strict=True))


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    image = torch.rand(1, 3, 32, 32)
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim((image + 0.3 * torch.randn_like(image)).clamp(0, 1), image) < 0.8


def test_diffusers_vae_works_in_the_raw_convention(tmp_path, monkeypatch):
    diffusers = pytest.importorskip("diffusers")
    from training import vaes

    torch.manual_seed(0)
    model = diffusers.AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4, layers_per_block=1)
    model.save_pretrained(tmp_path / "vae")
    vae = vaes.load_vae(str(tmp_path / "vae"), "xl", device="cpu")
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = model.encode(image * 2 - 1).latent_dist.mean
    assert torch.allclose(vae.encode(image), expected, atol=1e-5)
    decoded = vae.decode(expected)
    assert decoded.shape == (1, 3, 16, 16) and decoded.min() >= 0 and decoded.max() <= 1
    with pytest.raises(InterposerError, match="has 4 latent channels, but Stable Diffusion 3"):
        vaes.load_vae(str(tmp_path / "vae"), "v3", device="cpu")
    # A single file (an A1111 models/VAE file) loads with the family's config written locally: no hub request.
    seen = {}

    def fake_from_single_file(path, config, local_files_only):
        seen.update(json.loads((Path(config) / "config.json").read_text()), offline=local_files_only)
        return model

    monkeypatch.setattr(diffusers.AutoencoderKL, "from_single_file", fake_from_single_file)
    (tmp_path / "sdxl_vae.safetensors").write_bytes(b"")
    vaes.load_vae(str(tmp_path / "sdxl_vae.safetensors"), "xl", device="cpu")
    assert seen["scaling_factor"] == 0.13025 and seen["latent_channels"] == 4 and seen["offline"] is True
