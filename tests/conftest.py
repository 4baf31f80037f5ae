"""Shared fixtures: test data (found or made), TAESD models, images and closed-form weights files.

Everything the suite reads comes from one of three places, so it runs on a bare clone as on the project's machines:

* **images**: procedural landscapes (``tests/scenes.py``), drawn into ``.cache/scenes`` the first time;
* **layout fixtures** (random weights in the published layouts, golden outputs): ``$INTERPOSER_SHARED/fixtures``
  (default ``../shared``) where it exists, else made by ``tests/fixture_maker.py`` into ``.cache/fixtures``;
* **TAESD** (real tiny VAEs): ``$INTERPOSER_TAESD_DIR``, else ``../shared/vae/taesd``, else ``.cache/taesd`` (which
  ``./run.sh test`` fills from the hub, ``tests/fetch_taesd.py``). Without any, the webui stand-ins run on linear
  stand-in VAEs (``tests/synthetic_vae.py``) and the tests that measure the real ones skip with one line saying how
  to get them (``requires_taesd``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from data_paths import CACHE, SHARED, taesd_dir  # noqa: E402
from fixture_maker import make_fixtures  # noqa: E402
from scenes import write_scenes  # noqa: E402


def _fixture_root() -> Path:
    shared = SHARED / "fixtures"
    if all((shared / name / "manifest.json").is_file() for name in ("interposer_v4", "latent_upscaler_v2")):
        return shared
    return make_fixtures(CACHE / "fixtures")


FIXTURE_ROOT = _fixture_root()
FIXTURES = FIXTURE_ROOT / "interposer_v4"
UPSCALER_FIXTURES = FIXTURE_ROOT / "latent_upscaler_v2"
TAESD_DIR = taesd_dir()
NO_TAESD = (
    "no TAESD files: run ./run.sh test once with a connection (it fills .cache/taesd from the hub), or set "
    "INTERPOSER_TAESD_DIR to a folder with taesd_encoder.safetensors and the other tiny VAEs"
)
SCENES = [f"{i:03d}.jpg" for i in range(12)] + ["030.jpg", "032.jpg", "045.jpg"]
PHOTOS = write_scenes(CACHE / "scenes", SCENES)
requires_taesd = pytest.mark.skipif(TAESD_DIR is None, reason=NO_TAESD)

from interposer.directions import direction  # noqa: E402
from interposer.errors import WeightsNotFoundError  # noqa: E402
from interposer.images import list_images, load_image  # noqa: E402
from interposer.linear import affine_to_v4, fit_affine  # noqa: E402
from interposer.taesd import load_tiny_vae  # noqa: E402
from interposer.weights import save_weights  # noqa: E402

# Photos used to fit the closed-form maps, and photos held out to check them.
FIT_PHOTOS = 8
CHECK_PHOTOS = ("045.jpg", "030.jpg")


@pytest.fixture(autouse=True)
def _isolate_environment(monkeypatch, tmp_path_factory):
    """No test may reach the network or a user's cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf_home"))
    monkeypatch.delenv("INTERPOSER_WEIGHTS_DIR", raising=False)
    torch.manual_seed(0)


class TinyVaes(dict):
    """The TAESD of each family whose files are there; a test asking for one that is not skips (one line)."""

    def __missing__(self, family: str):
        pytest.skip(f"no TAESD for {family} in {TAESD_DIR}")


@pytest.fixture(scope="session")
def tiny_vaes() -> TinyVaes:
    """TAESD encoders/decoders of the five families that have one, loaded once (linear stand-ins without them)."""
    if TAESD_DIR is None:
        from synthetic_vae import synthetic_vaes

        return TinyVaes(synthetic_vaes(torch.cat([photo(n, 192) for n in _fit_names()])))
    vaes = TinyVaes()
    for name in ("v1", "xl", "v3", "fx", "f2"):
        try:
            vaes[name] = load_tiny_vae(name, TAESD_DIR, allow_download=False)
        except WeightsNotFoundError:
            continue
    return vaes


def photo(name: str, side: int = 256) -> torch.Tensor:
    """A test image (``tests/scenes.py``), downscaled and centre-cropped to ``side`` x ``side`` (TAESD is slow on
    2 cores)."""
    image = load_image(PHOTOS / name, max_side=None)
    h, w = image.shape[-2:]
    scale = side / min(h, w)
    image = torch.nn.functional.interpolate(image, size=(round(h * scale), round(w * scale)), mode="area")
    h, w = image.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return image[..., top : top + side, left : left + side].contiguous()


def _fit_names() -> list[str]:
    return [p.name for p in list_images(PHOTOS) if p.name not in CHECK_PHOTOS][:FIT_PHOTOS]


@pytest.fixture(scope="session")
def fit_images() -> torch.Tensor:
    return torch.cat([photo(n, 192) for n in _fit_names()])


@pytest.fixture(scope="session")
def linear_weights(tmp_path_factory, tiny_vaes, fit_images):
    """Closed-form (least-squares affine) weights in the real v4 layout, for xl<->v1, xl->v3 and fx->v1/xl.

    Fitted on raw latents (TAESD latents / scale), the convention of the published files.
    Returns a folder laid out like a webui weights folder (``v4.0/NAME``) and the file paths.
    """
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for name in ("xl-to-v1", "v1-to-xl", "xl-to-v3", "fx-to-v1", "fx-to-xl"):
        dirn = direction(name)
        src = dirn.src.to_raw(tiny_vaes[dirn.src.name].encode(fit_images))
        dst = dirn.dst.to_raw(tiny_vaes[dirn.dst.name].encode(fit_images))
        a, b = fit_affine(src, dst)
        state, config = affine_to_v4(a, b, blocks=2)
        target = folder / "v4.0" / dirn.filename()
        paths[name] = save_weights(target, state, config, direction=dirn, metadata={"version": "linear-fit"})
    return folder, paths


@pytest.fixture(scope="session")
def wide_weights(tmp_path_factory, tiny_vaes, fit_images, linear_upscalers):
    """``linear_upscalers``' folder plus closed-form maps of the directions nobody publishes: into FLUX.1
    (``xl-to-fx``, ``v1-to-fx``) and to and from FLUX.2 (``xl-to-f2``, ``f2-to-xl``, ``f2-to-v1``): the webui paths
    that use a user's own trained file."""
    import shutil

    folder = tmp_path_factory.mktemp("wide_weights")
    shutil.copytree(linear_upscalers, folder, dirs_exist_ok=True)
    for name in ("xl-to-fx", "v1-to-fx", "xl-to-f2", "f2-to-xl", "f2-to-v1"):
        dirn = direction(name)
        src = dirn.src.to_raw(tiny_vaes[dirn.src.name].encode(fit_images))
        dst = dirn.dst.to_raw(tiny_vaes[dirn.dst.name].encode(fit_images))
        state, config = affine_to_v4(*fit_affine(src, dst), blocks=2)
        target = folder / "v4.0" / dirn.filename()
        save_weights(target, state, config, direction=dirn, metadata={"version": "linear-fit"})
    return folder


@pytest.fixture(scope="session")
def linear_upscalers(tmp_path_factory, tiny_vaes, fit_images, linear_weights):
    """A weights folder with the closed-form interposers *and* least-squares linear upscalers (v2.1 layout,
    published names) for v1 and xl at every published factor: the webui can run ``Latent (NN)`` offline."""
    import shutil

    import torch.nn.functional as F

    from interposer.linear_upscaler import filter_to_upscaler, fit_upscale_filter
    from interposer.upscalers import upscaler

    folder = tmp_path_factory.mktemp("weights_with_upscalers")
    shutil.copytree(linear_weights[0], folder, dirs_exist_ok=True)
    for family in ("v1", "xl"):
        vae = tiny_vaes[family]
        for factor in (1.25, 1.5, 2.0):
            side = 160 if factor == 1.25 else 192  # both sides whole latents (multiples of 8 * factor)
            images = fit_images[..., :side, :side]
            high = vae.space.to_raw(vae.encode(images))
            small = F.interpolate(images, size=(int(side / factor),) * 2, mode="bicubic", antialias=True)
            low = vae.space.to_raw(vae.encode(small.clamp(0, 1)))
            weight, bias = fit_upscale_filter(low, high, factor)
            state, config = filter_to_upscaler(weight, bias, factor)
            spec = upscaler(family, factor)
            save_weights(folder / spec.filename(), state, config, direction=spec, metadata={"version": "linear-fit"})
    return folder
