"""The directions this project trains and ships in the package: found without a download, a user's own file first,
never moved away when damaged, and a missing one said as such (not as "nobody publishes it")."""

from __future__ import annotations

import pytest

from interposer import hub, lookup
from interposer.cli import main
from interposer.directions import BUNDLED, BUNDLED_TAG, bundled_directions, direction
from interposer.errors import CorruptWeightsError, WeightsNotFoundError
from interposer.model import InterposerConfig, InterposerV4
from interposer.weights import WeightsQuery, resolve, resolve_and_load, save_weights

XL_FX = direction("xl-to-fx")


def _tiny_file(path, dirn=XL_FX, version="mine"):
    config = InterposerConfig(ch_in=dirn.src.channels, ch_out=dirn.dst.channels, ch_mid=8, blocks=1)
    return save_weights(
        path, InterposerV4.from_config(config).state_dict(), config, direction=dirn, metadata={"version": version}
    )


@pytest.fixture
def package_dir(tmp_path, monkeypatch):
    """A stand-in for ``interposer/bundled`` holding a small xl-to-fx file; the hub must not be asked."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    _tiny_file(folder / XL_FX.filename(BUNDLED_TAG), version=BUNDLED_TAG)
    monkeypatch.setattr(lookup, "BUNDLED_DIR", folder)

    bundled_names = {direction(s, d).filename() for s, d in BUNDLED}
    real_cached = hub.cached

    def no_download(*args, **kwargs):
        raise AssertionError("a download was started")

    def cached(file, *args, **kwargs):
        assert file.filename not in bundled_names, "the hub cache was read for a bundled direction"
        return real_cached(file, *args, **kwargs)

    monkeypatch.setattr(hub, "download", no_download)
    monkeypatch.setattr(hub, "cached", cached)
    return folder


def test_the_bundled_directions_are_the_shipped_three_and_none_is_published():
    assert {d.name for d in bundled_directions()} == {"xl-to-fx", "v1-to-fx", "f2-to-v1"}
    assert all(d.is_bundled and not d.is_published for d in bundled_directions())
    assert not direction("xl-to-v1").is_bundled and not direction("fx-to-f2").is_bundled
    assert not direction("xl-to-fx-x2.0").is_bundled  # a convert-and-upscale file is always the user's


def test_a_bundled_direction_resolves_to_the_package_file_with_downloads_allowed(package_dir, tmp_path):
    query = WeightsQuery(folders=[str(tmp_path / "models")], allow_download=True)
    assert resolve(XL_FX, query) == package_dir / f"xl-to-fx_interposer-{BUNDLED_TAG}.safetensors"
    assert resolve_and_load(XL_FX, query).version == BUNDLED_TAG


def test_a_users_own_file_in_a_weights_folder_wins_over_the_bundled_one(package_dir, tmp_path):
    own = _tiny_file(tmp_path / "models" / "v4.0" / XL_FX.filename(), version="mine-2")
    assert resolve(XL_FX, WeightsQuery(folders=[str(tmp_path / "models")])) == own


def test_another_version_tag_never_falls_back_to_the_bundled_file(package_dir, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"no local file xl-to-fx_interposer-mine\.safetensors"):
        resolve(XL_FX, WeightsQuery(folders=[str(tmp_path)], version="mine"))


def test_a_missing_bundled_file_says_to_reinstall_not_that_nobody_publishes_it(package_dir, tmp_path):
    (package_dir / XL_FX.filename(BUNDLED_TAG)).unlink()
    with pytest.raises(WeightsNotFoundError) as info:
        resolve(XL_FX, WeightsQuery(folders=[str(tmp_path)]))
    message = str(info.value)
    assert "the file the extension ships" in message and "reinstall the extension" in message
    assert "no published weights" not in message and "\n" not in message


def test_a_damaged_bundled_file_is_reported_and_left_in_place(package_dir, tmp_path):
    path = package_dir / XL_FX.filename(BUNDLED_TAG)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptWeightsError, match="reinstall the extension to repair it"):
        resolve_and_load(XL_FX, WeightsQuery(folders=[str(tmp_path)]))
    assert path.is_file() and not list(package_dir.glob("*.corrupt"))


def test_list_shows_bundled_and_overridden_and_download_fetches_nothing(package_dir, tmp_path, capsys):
    models = tmp_path / "models"
    own = _tiny_file(models / direction("v1-to-fx").filename(), dirn=direction("v1-to-fx"))
    assert main(["list", "--weights-dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert f"xl-to-fx   yes        bundled: {package_dir / XL_FX.filename(BUNDLED_TAG)}" in out
    assert f"v1-to-fx   yes        folder: {own}" in out and "used instead of the bundled file" in out
    assert "f2-to-v1   no         bundled file missing" in out
    assert main(["download", "xl-to-fx", "--dir", str(models)]) == 0
    assert "bundled with the extension, nothing to download" in capsys.readouterr().out
    assert main(["download", "f2-to-v1", "--dir", str(models)]) == 1
    assert "is missing: update or reinstall the extension" in capsys.readouterr().err


def test_the_webui_direction_choices_include_the_bundled_directions():
    from interposer.webui.options import WEBUI_DIRECTIONS

    assert all(f"{s}-to-{d}" in WEBUI_DIRECTIONS for s, d in BUNDLED)
    assert "xl-to-v1" in WEBUI_DIRECTIONS and len(set(WEBUI_DIRECTIONS)) == len(WEBUI_DIRECTIONS)
