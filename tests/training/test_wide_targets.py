"""The trainer into the wider spaces and out of FLUX.2 (issue 20's directions): encode with taef1 and taef2, a tiny
run with the image-space loss through the 16- and 32-channel decoders, eval against the bridge and the linear map,
an fp16 export with its model card, and the card as the docs print it. Plumbing at tiny sizes, not quality."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import PHOTOS, TAESD_DIR, requires_taesd

from interposer.directions import direction
from interposer.model import InterposerConfig
from interposer.weights import WeightsQuery, load_weights, resolve_and_load
from training.card import _stages_note, cards_markdown, read_card, retrain_command
from training.checkpoint import find_checkpoint, load_checkpoint
from training.cli import main
from training.train import build_model

pytestmark = requires_taesd

PICKS = ("004.jpg", "005.jpg", "006.jpg")


@pytest.fixture(scope="module")
def wide_data(tmp_path_factory):
    if not all((TAESD_DIR / f"{n}_encoder.safetensors").is_file() for n in ("taef1", "taef2")):
        pytest.skip(f"no taef1/taef2 in {TAESD_DIR}")
    root = tmp_path_factory.mktemp("wide")
    images = root / "images"
    images.mkdir()
    for name in PICKS:
        (images / name).symlink_to(PHOTOS / name)
    code = main(["encode", str(images), str(root / "data"), "--families", "v1", "fx", "f2", "--holdout", "1", "--rgb",
                 "--taesd-dir", str(TAESD_DIR), "--no-download", "--crop", "96", "--crops-per-image", "2",
                 "--max-side", "160", "--seed", "1", "-q"])  # fmt: skip
    assert code == 0
    return root / "data"


@pytest.mark.parametrize(("src", "dst", "channels"), [("v1", "fx", 16), ("f2", "v1", 4)])
def test_a_tiny_run_with_the_image_loss_into_fx_and_out_of_f2(wide_data, tmp_path, src, dst, channels):
    """A warm start carries each output channel twice: 16 channels need ch_mid 32."""
    out = tmp_path / f"{src}-to-{dst}"
    code = main(["train", "--preset", "tiny", "--data", str(wide_data), "--src", src, "--dst", dst, "--out", str(out),
                 "--set", f"ch_mid={2 * channels}", "image_weight=5", "color_weight=1", "warm_start=linear",
                 "bn=frozen", "crop=8", "image_crop=6", "image_margin=4", "-q"])  # fmt: skip
    assert code == 0
    groups, state = load_checkpoint(find_checkpoint(out))
    assert state["step"] == 12 and groups["model"]["tail.weight"].shape[0] == channels
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"] and summary["val_psnr"] > 5 and summary["val_psnr_linear"] > 5


def test_eval_export_half_with_a_card_and_the_docs_table(wide_data, tmp_path, capsys):
    run = tmp_path / "xl-to-f2"
    assert main(["train", "--preset", "tiny", "--data", str(wide_data), "--src", "v1", "--dst", "f2", "--out", str(run),
                 "--steps", "6", "-q"]) == 0  # fmt: skip
    report = tmp_path / "eval"
    assert main(["eval", str(run), "--data", str(wide_data), "--out", str(report), "--max-side", "96",
                 "--taesd-dir", str(TAESD_DIR), "--no-download", "--grid-images", "0"]) == 0  # fmt: skip
    folder = tmp_path / "weights"
    assert main(["export", str(run), "--tag", "v4.0", "--out-dir", str(folder), "--half", "--card",
                 str(report / "report.json"), "--data-note", "Three test scenes."]) == 0  # fmt: skip
    path = folder / "v1-to-f2_interposer-v4.0.safetensors"
    loaded = resolve_and_load(direction("v1-to-f2"), WeightsQuery(folders=[str(folder)], allow_download=False))
    assert loaded.path == path
    assert {t.dtype for t in loaded.state_dict.values() if t.is_floating_point()} == {torch.float16}
    full = json.loads((report / "report.json").read_text())
    card = read_card(path)
    assert card["direction"] == "v1-to-f2" and card["steps"] == 6 and card["licence"] == "Apache-2.0"
    assert card["held_out"]["psnr"] == full["mean"]["interposer"]["psnr"]
    assert card["held_out"]["linear_psnr"] == full["mean"]["linear map"]["psnr"]
    assert card["retrain"] == "python -m training train --preset tiny --data DATA --src v1 --dst f2 --steps 6"
    assert card["data"]["note"] == "Three test scenes." and card["data"]["vaes"] == ["f2", "fx", "v1"]
    capsys.readouterr()
    assert main(["card", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("| direction |") and "| v1-to-f2 | `v1-to-f2_interposer-v4.0.safetensors` |" in text
    assert cards_markdown([path]) == text and "### v1-to-f2" in text and " MB, fp16), licence: Apache-2.0." in text
    # the same weights as the fp32 export of the same checkpoint, rounded to fp16
    assert main(["export", str(run), "--tag", "fp32", "--out-dir", str(folder)]) == 0
    full_precision = load_weights(folder / "v1-to-f2_interposer-fp32.safetensors")
    assert full_precision.metadata.get("model_card") is None
    for key, value in full_precision.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value.half() if value.is_floating_point() else value), key


def test_card_errors_are_one_line(wide_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", str(wide_data), "--src", "fx", "--dst", "f2", "--out",
                 str(run), "--steps", "2", "-q"]) == 0  # fmt: skip
    wrong = tmp_path / "report.json"
    wrong.write_text(json.dumps({"direction": "xl-to-v1", "mean": {}}))
    capsys.readouterr()
    assert main(["export", str(run), "--tag", "x", "--out-dir", str(tmp_path), "--card", str(wrong)]) == 1
    err = capsys.readouterr().err.strip()
    assert "The eval report is for xl-to-v1, the weights for fx-to-f2." in err and "\n" not in err
    missing = str(tmp_path / "no.json")
    assert main(["export", str(run), "--tag", "x", "--out-dir", str(tmp_path), "--card", missing]) == 1
    assert "not a readable eval report.json" in capsys.readouterr().err
    no_linear = tmp_path / "no-linear.json"  # eval run without --data: no linear map to compare with
    no_linear.write_text(json.dumps({"direction": "fx-to-f2", "mean": {"interposer": {"psnr": 20.0}}}))
    assert main(["export", str(run), "--tag", "x", "--out-dir", str(tmp_path), "--card", str(no_linear)]) == 1
    assert "The eval report lacks VAE bridge, linear map (run eval with --data" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.safetensors"))
    assert main(["export", str(run), "--tag", "plain", "--out-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["card", str(tmp_path / "fx-to-f2_interposer-plain.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("has no model card (export it with --card REPORT).") and "\n" not in err


def test_a_warm_start_too_narrow_for_the_target_is_one_line_naming_the_fix(wide_data, tmp_path, capsys):
    code = main(["train", "--preset", "tiny", "--data", str(wide_data), "--src", "v1", "--dst", "f2", "--out",
                 str(tmp_path / "r"), "--set", "warm_start=linear", "bn=frozen", "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and "needs ch_mid >= 64 (2 x the output channels)" in err and "--set ch_mid=64" in err
    assert "\n" not in err and "Traceback" not in err


def test_the_retrain_command_is_the_nearest_preset_plus_the_differences():
    from training.config import build_config

    config = build_config("cpu", None, {"steps": 2500, "lr": 3e-4, "src": "xl", "dst": "fx", "data": "/x"}).to_dict()
    assert retrain_command(config) == ("python -m training train --preset cpu --data DATA --src xl --dst fx "
                                       "--steps 2500 --lr 0.0003")  # fmt: skip
    config = build_config("gpu", None, {"src": "f2", "dst": "v1", "blocks": 6}).to_dict()
    expected = "python -m training train --preset gpu --data DATA --src f2 --dst v1 --set blocks=6"
    assert retrain_command(config) == expected


def test_a_second_stage_retrains_as_its_first_stage_then_the_finish_preset_from_it():
    from training.config import build_config

    first = build_config("cpu", None, {"steps": 2500, "lr": 3e-4, "src": "xl", "dst": "fx"}).to_dict()
    record = {"config": first, "schedule": [[0, 2500], [2500, 7500]], "step": 7500, "elapsed_s": 1.0, "init": None}
    second = build_config("finish", None, {"src": "xl", "dst": "fx", "data": "/x", "init": "/runs/a"}).to_dict()
    assert retrain_command(second, [[0, 2000]], record) == (
        "python -m training train --preset cpu --data DATA --src xl --dst fx --out RUN1 --steps 2500 --lr 0.0003"
        " && python -m training train --resume RUN1 --data DATA --steps 7500"
        " && python -m training train --preset finish --data DATA --src xl --dst fx --out RUN2 --set init=RUN1"
    )


def test_a_stage_into_another_target_keeps_head_and_core_and_fits_the_tail_again(wide_data, tmp_path, capsys):
    """``init=`` a v1-to-fx run for v1-to-f2: the head and core go on, the tail (16 -> 32 channels) is the least-
    squares read-out of their features; the card tells both directions and retrains both stages. With lr 0 and
    frozen BatchNorm the weights stay as they started (lr 1e-30), so the checkpoint shows the start itself."""
    from training.card import model_card
    from training.data import load_pairs
    from training.train import set_train_mode
    from training.warm_start import refit_tail

    first = tmp_path / "v1-to-fx"
    tiny = ["train", "--preset", "tiny", "--data", str(wide_data)]
    assert main([*tiny, "--src", "v1", "--dst", "fx", "--out", str(first), "--steps", "4", "--set", "bn=frozen",
                 "-q"]) == 0  # fmt: skip
    second = tmp_path / "v1-to-f2"
    assert main([*tiny, "--src", "v1", "--dst", "f2", "--out", str(second), "--steps", "2", "--lr", "1e-30",
                 "--set", "bn=frozen", f"init={first}", "-q"]) == 0  # fmt: skip
    before, after = load_checkpoint(find_checkpoint(first)), load_checkpoint(find_checkpoint(second))
    trained, started = before[0]["model"], after[0]["model"]
    assert started["tail.weight"].shape[0] == 32 and trained["tail.weight"].shape[0] == 16
    assert all(torch.allclose(started[k], v, rtol=0, atol=1e-20) for k, v in trained.items() if "tail." not in k)
    model = build_model(InterposerConfig(ch_in=4, ch_out=32, ch_mid=8, blocks=1), 0.0)
    model.load_state_dict({k: v for k, v in trained.items() if not k.startswith("tail.")}, strict=False)
    set_train_mode(model, False, "frozen")
    refit_tail(model, *load_pairs(wide_data, direction("v1-to-f2")))
    assert torch.allclose(started["tail.weight"], model.tail.weight, rtol=0, atol=1e-6)
    assert torch.allclose(started["tail.bias"], model.tail.bias, rtol=0, atol=1e-6)
    state = after[1]
    assert state["init"]["config"]["dst"] == "fx"
    line = retrain_command(state["config"], state["schedule"], state["init"], state["data"])
    assert "--src v1 --dst fx --out RUN1" in line and "--src v1 --dst f2 --out RUN2" in line and "init=RUN1" in line
    point = {"psnr": 20.0, "ssim": 0.5}
    report = {"direction": "v1-to-f2", "images": 1, "mean": {"interposer": point, "VAE bridge": point,
                                                             "linear map": point}}  # fmt: skip
    card = model_card({**state, "direction": "v1-to-f2"}, report, licence="x", data_note="", retrain=line)
    assert card["stage_directions"] == ["v1-to-fx", "v1-to-f2"]
    assert "the first trained v1-to-fx, whose head and core started v1-to-f2" in _stages_note(card)
    # Another source cannot go on: one line naming the option.
    capsys.readouterr()
    assert main([*tiny, "--src", "f2", "--dst", "fx", "--out", str(tmp_path / "no"), "--set", f"init={first}",
                 "-q"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "was trained with src v1 (this run: f2)" in err and "\n" not in err
    # A checkpoint that lacks part of its core (a damaged file) cannot start another target either: one line.
    from training.checkpoint import save_checkpoint

    groups, state = load_checkpoint(find_checkpoint(first))
    del groups["model"]["core.1.long.0.weight"]
    damaged = tmp_path / "damaged" / "checkpoints" / "step-0000004.safetensors"
    damaged.parent.mkdir(parents=True)
    save_checkpoint(damaged, {"model": groups["model"]}, state)
    assert main([*tiny, "--src", "v1", "--dst", "f2", "--out", str(tmp_path / "no2"), "--set",
                 f"init={damaged.parent.parent}", "-q"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "its head and core do not fit this run's model" in err and "\n" not in err
    # ... nor the same target, where every weight is loaded as it is.
    assert main([*tiny, "--src", "v1", "--dst", "fx", "--out", str(tmp_path / "no3"), "--set",
                 f"init={damaged.parent.parent}", "-q"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "its weights do not fit this run's model" in err and "\n" not in err
