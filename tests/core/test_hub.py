"""Downloads with the real ``huggingface_hub`` client against a local hub on 127.0.0.1.

``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` when it is imported,
so each step runs in a fresh process, the way a user runs the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import FIXTURES, REPO, requires_taesd
from conftest import TAESD_DIR as TAESD
from hub_server import FakeHub
from safetensors.torch import save_file

NAME = "xl-to-v1_interposer-v4.0.safetensors"
KEY = f"city96/SD-Latent-Interposer/v4.0/{NAME}"
GOOD = (FIXTURES / "xl-to-v1_random.safetensors").read_bytes()

RESOLVE = textwrap.dedent(
    """
    import sys
    from interposer import direction, WeightsQuery
    from interposer.weights import resolve_and_load
    from interposer.errors import InterposerError
    try:
        loaded = resolve_and_load(direction("xl-to-v1"), WeightsQuery(allow_download=sys.argv[1] == "1"))
    except InterposerError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(loaded.path)
    """
)


@pytest.fixture
def hub():
    with FakeHub() as server:
        yield server


def run(args, hub, tmp_path, offline=False):
    env = dict(os.environ)
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH=str(REPO))
    env["HF_HUB_OFFLINE"] = "1" if offline else "0"
    env.pop("INTERPOSER_WEIGHTS_DIR", None)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def resolve(hub, tmp_path, offline=False, allow_download=True):
    return run(["-c", RESOLVE, "1" if allow_download else "0"], hub, tmp_path, offline)


def test_download_into_a_folder(hub, tmp_path):
    hub.files[KEY] = GOOD
    result = run(["-m", "interposer", "download", "xl-to-v1", "--dir", str(tmp_path / "models")], hub, tmp_path)
    assert result.returncode == 0, result.stderr
    target = tmp_path / "models" / "v4.0" / NAME
    assert target.read_bytes() == GOOD
    assert "xl-to-v1: ok" in result.stdout
    listing = run(["-m", "interposer", "list", "--weights-dir", str(tmp_path / "models")], hub, tmp_path, offline=True)
    assert f"xl-to-v1   yes        folder: {target}" in listing.stdout
    assert "v1-to-xl   no" in listing.stdout


def test_hub_cache_download_reuse_and_offline(hub, tmp_path):
    hub.files[KEY] = GOOD
    first = resolve(hub, tmp_path)
    assert first.returncode == 0, first.stderr
    path = first.stdout.strip()
    assert "hf_home" in path and path.endswith(NAME)
    assert hub.requests["GET", KEY] == 1

    second = resolve(hub, tmp_path)  # online again: the cache answers, only a HEAD goes out
    assert second.stdout.strip() == path and hub.requests["GET", KEY] == 1

    before = sum(hub.requests.values())
    offline = resolve(hub, tmp_path, offline=True)
    assert offline.returncode == 0 and offline.stdout.strip() == path
    assert sum(hub.requests.values()) == before  # HF_HUB_OFFLINE=1: no request at all


def test_offline_and_missing_says_what_to_do(hub, tmp_path):
    result = resolve(hub, tmp_path, offline=True)
    assert result.returncode == 1
    message = result.stderr
    assert NAME in message
    assert "HF_HUB_OFFLINE" in message
    assert f"{hub.endpoint}/city96/SD-Latent-Interposer/resolve/main/v4.0/{NAME}" in message
    assert "python -m interposer download xl-to-v1" in message
    assert not hub.requests


def test_missing_on_the_hub_is_reported(hub, tmp_path):
    result = resolve(hub, tmp_path)
    assert result.returncode == 1
    assert "The hub has no v4.0/" + NAME in result.stderr


def test_corrupt_download_is_removed_and_never_used(hub, tmp_path):
    hub.files[KEY] = b"<!DOCTYPE html><html><body>Bad gateway</body></html>" * 8
    result = resolve(hub, tmp_path)
    assert result.returncode == 1
    assert "not a valid safetensors" in result.stderr
    assert "fresh download is corrupt too" in result.stderr
    assert hub.requests["GET", KEY] == 2  # the bad copy was dropped and fetched once more
    assert not [p for p in (tmp_path / "hf_home").rglob(NAME) if p.exists()]
    assert resolve(hub, tmp_path, offline=True).returncode == 1  # nothing usable left behind

    folder = tmp_path / "models"
    result = run(["-m", "interposer", "download", "xl-to-v1", "--dir", str(folder)], hub, tmp_path)
    assert result.returncode == 1 and "renamed to" in result.stderr
    assert not (folder / "v4.0" / NAME).exists()
    assert (folder / "v4.0" / (NAME + ".corrupt")).exists()


@requires_taesd
def test_interrupted_transfer_leaves_no_usable_partial_file(hub, tmp_path):
    hub.files[KEY] = GOOD
    hub.truncate.add(KEY)
    folder = tmp_path / "models"
    result = run(["-m", "interposer", "download", "xl-to-v1", "--dir", str(folder)], hub, tmp_path)
    assert result.returncode == 1
    assert hub.requests["GET", KEY] >= 1
    assert not (folder / "v4.0" / NAME).exists()
    bookkeeping = (".incomplete", ".lock", ".metadata", "CACHEDIR.TAG", ".gitignore")
    leftovers = [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(bookkeeping)]
    assert not leftovers  # at most huggingface_hub's own .incomplete file, never one under the final name
    save_file({"latents": torch.zeros(1, 4, 8, 8)}, str(tmp_path / "in.safetensors"))
    again = run(
        ["-m", "interposer", "convert", "in.safetensors", "out.safetensors", "--direction", "xl-to-v1",
         "--weights-dir", str(folder), "--no-download"], hub, tmp_path, offline=True,
    )  # fmt: skip
    assert again.returncode == 1 and f"{NAME} not found" in again.stderr

    # Once the connection is healthy, the same command completes the file.
    hub.truncate.clear()
    result = run(["-m", "interposer", "download", "xl-to-v1", "--dir", str(folder)], hub, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (folder / "v4.0" / NAME).read_bytes() == GOOD


def _diffusers_layout(name: str) -> bytes:
    """An AutoencoderTiny state dict (diffusers keys) built from the sequential TAESD files."""
    from safetensors.torch import load_file, save

    state = {}
    for part, offset in (("encoder", 0), ("decoder", -1)):
        for key, value in load_file(TAESD / f"{name}_{part}.safetensors").items():
            index, _, rest = key.partition(".")
            state[f"{part}.layers.{int(index) + offset}.{rest}"] = value
    return save(state)


@requires_taesd
def test_compare_demo_fetches_taesd_and_weights_from_the_hub(hub, tmp_path):
    """The README's demo path: TAESD from madebyollin's repos (SDXL as single files, SD1 in the
    diffusers layout only) and the interposer file from city96's repo, all through huggingface_hub."""
    hub.files[KEY] = GOOD
    hub.files["madebyollin/taesdxl/taesdxl_encoder.safetensors"] = (TAESD / "taesdxl_encoder.safetensors").read_bytes()
    hub.files["madebyollin/taesdxl/taesdxl_decoder.safetensors"] = (TAESD / "taesdxl_decoder.safetensors").read_bytes()
    hub.files["madebyollin/taesd/diffusion_pytorch_model.safetensors"] = _diffusers_layout("taesd")
    out = tmp_path / "grid.png"
    result = run(["-m", "interposer", "compare", str(REPO / "examples" / "lakeside.jpg"), "--src", "xl", "--dst", "v1",
                  "--out", str(out), "--max-side", "128"], hub, tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    assert "TAESD bridge" in result.stdout and "interposer" in result.stdout
    assert hub.requests["GET", "madebyollin/taesd/diffusion_pytorch_model.safetensors"] >= 1
    # The TAESD bridge panel only depends on TAESD: a good bridge proves both layouts loaded right.
    bridge = float(next(line for line in result.stdout.splitlines() if "TAESD bridge" in line).split()[-2])
    assert bridge > 20
