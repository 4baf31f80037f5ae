"""Finding and validating weights files: order, layouts people have, and broken files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import FIXTURES

from interposer.advice import CLI
from interposer.directions import direction
from interposer.errors import CorruptWeightsError, WeightsNotFoundError
from interposer.model import InterposerConfig, InterposerV4
from interposer.webui.advice import WEBUI
from interposer.weights import (
    WeightsQuery,
    find_local,
    load_weights,
    quarantine,
    resolve,
    resolve_and_load,
    save_weights,
)

XL_V1 = direction("xl-to-v1")
FIXTURE = FIXTURES / "xl-to-v1_random.safetensors"


def _copy_fixture(folder, subfolder=""):
    target = folder / subfolder / XL_V1.filename()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURE, target)
    return target


def test_folder_layouts_name_and_versioned_subfolder(tmp_path):
    flat, nested = tmp_path / "flat", tmp_path / "nested"
    assert find_local(XL_V1, [flat, nested]) is None
    in_nested = _copy_fixture(nested, "v4.0")
    assert find_local(XL_V1, [flat, nested]) == in_nested
    in_flat = _copy_fixture(flat)
    assert find_local(XL_V1, [flat, nested]) == in_flat  # earlier folder wins


def test_explicit_path_wins_over_folders(tmp_path):
    in_folder = _copy_fixture(tmp_path / "a")
    explicit = _copy_fixture(tmp_path / "b")
    assert resolve(XL_V1, WeightsQuery(path=str(explicit), folders=[str(in_folder.parent)])) == explicit
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve(XL_V1, WeightsQuery(path=str(tmp_path / "missing.safetensors")))


def test_missing_and_offline_error_names_file_folder_and_url(tmp_path):
    query = WeightsQuery(folders=[str(tmp_path / "models")], allow_download=False)
    with pytest.raises(WeightsNotFoundError) as info:
        resolve(XL_V1, query)
    message = str(info.value)
    assert "xl-to-v1_interposer-v4.0.safetensors" in message
    assert str(tmp_path / "models") in message
    assert (
        "https://huggingface.co/city96/SD-Latent-Interposer/resolve/main/v4.0/xl-to-v1_interposer-v4.0.safetensors"
        in message
    )
    assert "automatic download is off" in message
    assert message.count("https://") == 1  # no mirror set: one URL, huggingface.co's


def test_with_a_mirror_set_the_message_also_names_huggingface_co(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example.org")
    with pytest.raises(WeightsNotFoundError) as info:
        resolve(XL_V1, WeightsQuery(folders=[str(tmp_path)], allow_download=False))
    path = "city96/SD-Latent-Interposer/resolve/main/v4.0/xl-to-v1_interposer-v4.0.safetensors"
    assert f"from https://mirror.example.org/{path} or https://huggingface.co/{path} " in str(info.value)


def test_unpublished_direction_lists_the_published_ones(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        resolve(direction("fx-to-f2"), WeightsQuery(folders=[str(tmp_path)]))
    assert "no published weights" in str(info.value)
    assert "xl-to-v1" in str(info.value) and "ca-to-v3" in str(info.value)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: b"", "too short"),
        (lambda data: b"<!DOCTYPE html><html>Not found</html>" * 4, "not a valid safetensors"),
        (lambda data: b"\x80\x02}q\x00(X\x05\x00\x00\x00torch" + data[:100], "not a valid safetensors"),
        (lambda data: data + b"extra", "truncated or corrupt"),
    ],
    ids=["truncated", "empty", "html", "pickle", "trailing-bytes"],
)
def test_broken_files_are_reported_with_their_path(tmp_path, damage, expected):
    target = tmp_path / XL_V1.filename()
    target.write_bytes(damage(FIXTURE.read_bytes()))
    with pytest.raises(CorruptWeightsError, match=expected) as info:
        load_weights(target, XL_V1)
    assert str(target) in str(info.value)


def test_wrong_keys_and_shapes(tmp_path):
    state = InterposerV4().state_dict()
    cfg = InterposerConfig()
    save_weights(tmp_path / "missing.safetensors", {k: v for k, v in state.items() if "core.3." not in k}, cfg)
    with pytest.raises(CorruptWeightsError, match="missing keys"):
        load_weights(tmp_path / "missing.safetensors", XL_V1)
    state["tail.bias"] = torch.zeros(5)
    save_weights(tmp_path / "shape.safetensors", state, cfg)
    with pytest.raises(CorruptWeightsError, match=r"tail.bias.*\(5,\).*\(4,\)"):
        load_weights(tmp_path / "shape.safetensors", XL_V1)


def test_file_for_another_direction_is_refused(tmp_path):
    with pytest.raises(CorruptWeightsError, match="maps 16 to 4 channels"):
        load_weights(FIXTURES / "fx-to-v1_random.safetensors", XL_V1)
    path = save_weights(
        tmp_path / "w.safetensors", InterposerV4().state_dict(), InterposerConfig(), direction=direction("v1-to-xl")
    )
    with pytest.raises(CorruptWeightsError, match="converts v1-to-xl, not xl-to-v1"):
        load_weights(path, XL_V1)


def test_corrupt_file_in_a_folder_is_moved_away_and_not_picked_up_again(tmp_path):
    folder = tmp_path / "models"
    target = _copy_fixture(folder, "v4.0")
    target.write_bytes(target.read_bytes()[:1000])
    query = WeightsQuery(folders=[str(folder)], allow_download=False)
    with pytest.raises(CorruptWeightsError) as info:
        resolve_and_load(XL_V1, query)
    assert "renamed to" in str(info.value) and str(target) in str(info.value)
    assert not target.exists() and target.with_name(target.name + ".corrupt").exists()
    with pytest.raises(WeightsNotFoundError):
        resolve_and_load(XL_V1, query)


def test_explicit_corrupt_file_is_reported_not_moved(tmp_path):
    target = tmp_path / "mine.safetensors"
    target.write_bytes(FIXTURE.read_bytes()[:500])
    with pytest.raises(CorruptWeightsError):
        resolve_and_load(XL_V1, WeightsQuery(path=str(target)))
    assert target.exists()


def test_quarantine_of_a_hub_cache_link_removes_link_and_blob(tmp_path):
    blob = tmp_path / "blobs" / "abc"
    blob.parent.mkdir()
    blob.write_bytes(b"x")
    link = tmp_path / "snapshots" / "rev" / "name.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(blob)
    assert "Hugging Face cache" in quarantine(link)
    assert not link.exists() and not blob.exists()


def test_non_default_layout_loads_from_metadata_without_code_changes(tmp_path):
    cfg = InterposerConfig(ch_in=4, ch_out=4, ch_mid=24, scale=1.0, blocks=3)
    model = InterposerV4.from_config(cfg)
    path = save_weights(
        tmp_path / "x.safetensors", model.state_dict(), cfg, direction=XL_V1, metadata={"version": "mine-1"}
    )
    loaded = load_weights(path, XL_V1)
    assert loaded.config == cfg and loaded.version == "mine-1"
    assert json.loads(loaded.metadata["constructor"])["ch_mid"] == 24


def test_layout_inferred_from_shapes_when_metadata_is_absent(tmp_path):
    """Files without metadata (the published ones) get their layout from the shapes."""
    cfg = InterposerConfig(ch_mid=32, blocks=2)
    from safetensors.torch import save_file

    save_file(InterposerV4.from_config(cfg).state_dict(), str(tmp_path / XL_V1.filename()))
    loaded = load_weights(tmp_path / XL_V1.filename(), XL_V1)
    assert loaded.config == cfg and loaded.version == "v4.0"


def test_save_is_atomic(tmp_path, monkeypatch):
    import safetensors.torch

    target = tmp_path / "w.safetensors"
    target.write_bytes(b"previous")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        save_weights(target, InterposerV4().state_dict(), InterposerConfig())
    assert target.read_bytes() == b"previous"
    assert not list(tmp_path.glob("*.tmp")), "a failed write must not leave its temporary file behind"


def test_saved_files_honour_the_umask_not_safetensors_0600(tmp_path):
    """safetensors creates 0600 files; a webui running as another user must still read exported weights."""
    import os

    old = os.umask(0o022)
    try:
        path = save_weights(tmp_path / "w.safetensors", InterposerV4().state_dict(), InterposerConfig())
    finally:
        os.umask(old)
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o644
    assert load_weights(path, XL_V1).config == InterposerConfig()


def test_a_lookup_that_may_not_download_touches_nothing(tmp_path):
    """Downloads off: no hf_hub_download(local_dir=...), so no .cache/ or v4.0/ folders appear."""
    folder = tmp_path / "models" / "LatentInterposer"
    folder.mkdir(parents=True)
    query = WeightsQuery(folders=(str(folder),), allow_download=False, download_dir=str(folder))
    with pytest.raises(WeightsNotFoundError, match="automatic download is off"):
        resolve(XL_V1, query)
    assert list(folder.iterdir()) == []


def _unreachable_hub(monkeypatch, endpoint: str | None):
    """resolve() as if the hub (or the mirror ``endpoint``) had failed its one request; nothing goes out."""
    from interposer import hub

    if endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
    else:
        monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    def fail(*args, **kwargs):
        raise hub.HubUnreachableError(f"the hub at {hub.endpoint()} did not answer within 4 s")

    monkeypatch.setattr(hub, "download", fail)


@pytest.mark.parametrize("for_webui", [False, True])
def test_mirror_hint_without_a_mirror_fits_where_it_is_shown(tmp_path, monkeypatch, for_webui):
    _unreachable_hub(monkeypatch, None)
    query = WeightsQuery(folders=[str(tmp_path)], download_dir=str(tmp_path), advice=WEBUI if for_webui else CLI)
    with pytest.raises(WeightsNotFoundError) as info:
        resolve(XL_V1, query)
    message = str(info.value)
    assert "If the hub is blocked where you are, set HF_ENDPOINT to a mirror" in message
    assert "HF_ENDPOINT=https://hf-mirror.com" in message
    if for_webui:
        assert message.endswith("and restart the webui.") and "run the command again" not in message
        assert "webui-user" in message
    else:
        assert message.endswith("and run the command again.") and "restart" not in message


@pytest.mark.parametrize("for_webui", [False, True])
def test_mirror_hint_with_a_mirror_set_names_the_mirror(tmp_path, monkeypatch, for_webui):
    _unreachable_hub(monkeypatch, "https://mirror.example.org/")
    query = WeightsQuery(folders=[str(tmp_path)], download_dir=str(tmp_path), advice=WEBUI if for_webui else CLI)
    with pytest.raises(WeightsNotFoundError) as info:
        resolve(XL_V1, query)
    message = str(info.value)
    assert "The mirror at https://mirror.example.org (HF_ENDPOINT) did not serve the file" in message
    assert "If the hub is blocked" not in message and "set HF_ENDPOINT to a mirror" not in message
    assert message.endswith("and restart the webui." if for_webui else "and run the command again.")
    assert query.key(XL_V1) == WeightsQuery(folders=[str(tmp_path)], download_dir=str(tmp_path)).key(XL_V1)


def test_webui_message_names_urls_folder_and_setting_and_no_command(tmp_path):
    """The webui cannot run `python -m interposer` for its user: the URL, the folder and the setting instead."""
    from interposer.upscalers import upscaler
    from interposer.webui.options import SECTION, SETTINGS_BY_KEY

    folder = tmp_path / "models" / "LatentInterposer"
    setting = f"Settings → {SECTION[1]} → {SETTINGS_BY_KEY['latent_interposer_allow_download'].label}"
    for spec in (XL_V1, upscaler("v1-x1.25")):
        query = WeightsQuery(folders=(str(folder),), allow_download=False, download_dir=str(folder), advice=WEBUI)
        with pytest.raises(WeightsNotFoundError) as info:
            resolve(spec, query)
        message = str(info.value)
        assert f"Download {spec.filename()} from {spec.hub_url()} and put it in the folder {folder}." in message
        assert message.endswith(f"Or turn on {setting} to let the webui fetch it.")
        assert "python -m" not in message and "--dir" not in message and "--weights-dir" not in message


def test_webui_message_with_downloads_on_does_not_point_at_the_setting(tmp_path, monkeypatch):
    _unreachable_hub(monkeypatch, None)
    folder = tmp_path / "models" / "LatentInterposer"
    query = WeightsQuery(folders=(str(folder),), download_dir=str(folder), advice=WEBUI)
    with pytest.raises(WeightsNotFoundError) as info:
        resolve(XL_V1, query)
    message = str(info.value)
    assert f"from {XL_V1.hub_url()} and put it in the folder {folder}." in message
    assert "Settings →" not in message and "python -m" not in message


def test_cli_message_keeps_a_runnable_download_command(tmp_path):
    folder = tmp_path / "weights"
    with pytest.raises(WeightsNotFoundError) as info:
        resolve(XL_V1, WeightsQuery(folders=(str(folder),), allow_download=False))
    message = str(info.value)
    assert f"put it in the folder {folder} (or run `python -m interposer download xl-to-v1 --dir {folder}`)." in message
    assert "Settings →" not in message
