"""``encode``: image folders -> paired raw latents of two or more families, in shards.

Every crop is cut (random scale, position and horizontal flip; with ``hue``, a random hue turn of
the training crops) from the image once and encoded by *every* family's VAE, so the latents of one
crop line up pixel for pixel across families: that pairing is what the interposer learns. Latents
are stored RAW (see ``training.vaes``).
With ``factors`` the same crop is also downscaled by each factor (antialiased bicubic, like a
smaller first pass) and encoded again: ``{family}@x{factor}`` latents are the inputs an upscaler
learns to bring to the full-size ``{family}`` latents. With ``rgb`` the crop itself is kept
(uint8) for image-space losses through a frozen decoder.

Layout of the output folder::

    manifest.json              settings, folders, VAEs, held-out and encoded image ids, shards, skips
    train-00000.safetensors    {family: (N, C, h, w) float32, "v1@x2.0": (N, C, h/2, w/2), "rgb": (N, 3, H, W)
                               uint8, "image": (N,) index into manifest["train_images"]}
    holdout.safetensors        the same for the held-out images (validation loss during training)

Several image folders can be encoded into one data folder (e.g. photos and illustrations); image
ids are then ``{folder}/{file}`` (with one folder, just the file name). Held-out images
(``--holdout N`` *per folder*, picked by a seeded shuffle of the sorted names, so the pick in a
folder does not depend on the other folders) are never put in a training shard; ``eval`` reads
their ids from the manifest. Each image's crops come from
its own seeded generator, so an interrupted run resumed later (it skips images already in the
manifest) writes exactly the crops an uninterrupted run would have. Files are written to a
temporary name and renamed, so a crash never leaves a half-written shard or manifest.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from interposer.atomic_files import save_safetensors, write_text
from interposer.errors import InterposerError
from interposer.images import list_images, load_image

from .vaes import VAE

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
HOLDOUT_FILE = "holdout.safetensors"
DATA_FORMAT = "interposer-training-data"
DATA_VERSION = 2


@dataclass(frozen=True)
class EncodeSettings:
    """What decides the crops; a resumed run must use the same (checked against the manifest)."""

    crop: int = 512  # pixels, a multiple of 8 (64 latents)
    crops_per_image: int = 8
    min_scale: float = 0.5  # each crop comes from the image downscaled by a factor in [min_scale, 1]
    flip: bool = True  # random horizontal flips (the same flip for every family)
    max_side: int = 1024  # images are first downscaled to this longer side (the shorter one stays >= crop)
    holdout: int = 0  # images kept out of training for eval (seeded pick)
    holdout_crops: int = 2
    seed: int = 0
    factors: tuple[float, ...] = ()  # also store each crop downscaled by these factors (upscaler inputs)
    rgb: bool = False  # also store the crops themselves (uint8) for image-space losses
    hue: float = 0.0  # rotate each training crop's hue by a random angle in [-hue, hue] degrees (held-out: never)


def latent_key(family: str, factor: float | None = None) -> str:
    """Shard key of a family's latents: ``v1``, or ``v1@x2.0`` for the crop downscaled by 2."""
    if not factor or factor == 1.0:
        return family
    from interposer.directions import factor_text

    return f"{family}@x{factor_text(float(factor))}"


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InterposerError(f"{folder} is not an encoded data folder: it has no {MANIFEST} (run `encode` first).")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != DATA_FORMAT:
        raise InterposerError(f"{path} is not a manifest written by `python -m training encode`.")
    manifest.setdefault("folders", [manifest["images_dir"]])
    manifest["settings"].setdefault("factors", [])
    manifest["settings"].setdefault("rgb", False)
    return manifest


def folder_labels(folders: list[str]) -> list[str]:
    """A short unique label per folder (its name; ``name-2`` for a second folder of that name)."""
    labels: list[str] = []
    for folder in folders:
        base = Path(folder).name or "images"
        label, n = base, 2
        while label in labels:
            label, n = f"{base}-{n}", n + 1
        labels.append(label)
    return labels


def image_id(folders: list[str], index: int, name: str) -> str:
    """The id of image ``name`` of folder ``index``: the name alone when there is one folder."""
    return name if len(folders) == 1 else f"{folder_labels(folders)[index]}/{name}"


def image_path(manifest: dict, ident: str) -> Path:
    """The file of an image id from ``manifest`` (either data format)."""
    folders = manifest["folders"]
    if len(folders) == 1:
        return Path(folders[0]) / ident
    label, _, name = ident.partition("/")
    return Path(folders[folder_labels(folders).index(label)]) / name


def image_folder(manifest: dict, ident: str) -> str:
    """The label of the folder an image id comes from (for per-folder reports)."""
    folders = manifest["folders"]
    return folder_labels(folders)[0] if len(folders) == 1 else ident.partition("/")[0]


def pick_holdout(names: list[str], count: int, seed: int) -> list[str]:
    """``count`` names by a seeded shuffle of the sorted list (stable across runs and machines)."""
    if count <= 0:
        return []
    if count >= len(names):
        raise InterposerError(f"--holdout {count} leaves no training images (the folder has {len(names)}).")
    return sorted(random.Random(seed).sample(sorted(names), count))


def rotate_hue(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """``image`` (..., 3, H, W) in [0, 1] with its hue turned by ``degrees`` about the grey axis (the YIQ
    rotation: luma stays, chroma turns), clamped to [0, 1]. Grey pixels do not change."""
    a = math.radians(degrees)
    cos, sin = math.cos(a), math.sin(a)
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    turn = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    matrix = (torch.linalg.inv(to_yiq) @ turn @ to_yiq).to(image)
    return torch.einsum("ij,...jhw->...ihw", matrix, image).clamp(0, 1)


def random_crops(
    image: torch.Tensor, settings: EncodeSettings, count: int, seed: int, jitter: bool = True
) -> torch.Tensor:
    """``count`` crops (count, 3, crop, crop) of a (1, 3, H, W) image; deterministic for ``seed``.

    With ``settings.hue`` (and ``jitter``: training crops, not held-out ones) each crop's hue is turned
    by a random angle: a few illustrations cannot teach every saturated colour a latent can hold, and a
    held-out illustration in colours the training set lacks comes out in the wrong hue. The angles come
    from their own generator, so the crops' positions do not depend on ``hue``."""
    g = torch.Generator().manual_seed(seed)
    hue_g = torch.Generator().manual_seed(seed ^ 0x48E)
    h, w = image.shape[-2:]
    smallest = settings.crop / min(h, w)  # below this scale the image is smaller than a crop
    crops = []
    for _ in range(count):
        u = torch.rand((), generator=g).item()
        scale = max(settings.min_scale, smallest) + u * (1.0 - max(settings.min_scale, smallest))
        sh, sw = max(settings.crop, round(h * scale)), max(settings.crop, round(w * scale))
        scaled = image if (sh, sw) == (h, w) else F.interpolate(image, (sh, sw), mode="bilinear", antialias=True)
        top = int(torch.randint(0, sh - settings.crop + 1, (), generator=g))
        left = int(torch.randint(0, sw - settings.crop + 1, (), generator=g))
        crop = scaled[..., top : top + settings.crop, left : left + settings.crop]
        if settings.flip and torch.rand((), generator=g).item() < 0.5:
            crop = crop.flip(-1)
        if settings.hue and jitter:
            crop = rotate_hue(crop, (2 * torch.rand((), generator=hue_g).item() - 1) * settings.hue)
        crops.append(crop)
    return torch.cat(crops).clamp(0, 1)


def fit_image(image: torch.Tensor, settings: EncodeSettings) -> torch.Tensor | None:
    """Downscale to ``max_side``, but never so far that a crop no longer fits (panoramas); None if
    the image is smaller than a crop to begin with."""
    h, w = image.shape[-2:]
    if min(h, w) < settings.crop:
        return None
    scale = min(1.0, max(settings.max_side / max(h, w), settings.crop / min(h, w)))
    if scale == 1.0:
        return image
    size = (max(settings.crop, round(h * scale)), max(settings.crop, round(w * scale)))
    return F.interpolate(image, size, mode="bilinear", antialias=True).clamp(0, 1)


def image_seed(seed: int, name: str) -> int:
    """Each image's own seed: crops do not depend on which other images exist or were done."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def downscale(images: torch.Tensor, factor: float) -> torch.Tensor:
    """``images`` made ``factor`` times smaller (antialiased bicubic, clamped to [0, 1])."""
    h, w = images.shape[-2:]
    size = (round(h / factor), round(w / factor))
    return F.interpolate(images, size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def encode_crops(
    crops: torch.Tensor, vaes: dict[str, VAE], batch: int, factors: tuple[float, ...] = ()
) -> dict[str, torch.Tensor]:
    """Latents of every family for ``crops`` and for ``crops`` downscaled by each of ``factors``."""
    out = {}
    for factor in (1.0, *factors):
        images = crops if factor == 1.0 else downscale(crops, factor)
        for name, vae in vaes.items():
            out[latent_key(name, factor)] = torch.cat([vae.encode(chunk) for chunk in images.split(batch)])
    return out


def check_factors(settings: EncodeSettings) -> None:
    """Every downscaled crop must be a whole number of latents (8 px) on a side."""
    for factor in settings.factors:
        side = settings.crop / factor
        if factor <= 1 or abs(side - round(side)) > 1e-6 or round(side) % 8:
            raise InterposerError(
                f"--factors {factor:g}: a {settings.crop}-px crop downscaled by {factor:g} is {side:g} px, not a "
                "multiple of 8; pick a --crop that is (480 works for 1.25, 1.5 and 2; 240 for 1.5 and 2)."
            )


def _check_resume(manifest: dict, settings: EncodeSettings, vaes: dict[str, VAE], images_dirs: list[Path]) -> None:
    wanted = {"settings": _settings_json(settings), "families": sorted(vaes),
              "vaes": {k: v.describe() for k, v in vaes.items()}}  # fmt: skip
    recorded = {**manifest, "settings": {**_settings_json(EncodeSettings()), **manifest.get("settings", {})}}
    for key, value in wanted.items():  # an older manifest lacks settings added since: they had their defaults
        if recorded.get(key) != value:
            raise InterposerError(
                f"The output folder already holds data made with other {key} ({recorded.get(key)} vs {value}). "
                "Use a new output folder, or the same settings to resume."
            )
    if manifest.get("folders") != [str(d) for d in images_dirs]:
        raise InterposerError(
            f"The output folder was encoded from {manifest.get('folders')}, not {[str(d) for d in images_dirs]}: "
            "give the same folders in the same order to resume, or use a new output folder."
        )


def _settings_json(settings: EncodeSettings) -> dict:
    return json.loads(json.dumps(asdict(settings)))  # tuples -> lists, as read back from the manifest


def encode_folder(
    images_dirs: str | os.PathLike | list[str | os.PathLike],
    out: str | os.PathLike,
    vaes: dict[str, VAE],
    settings: EncodeSettings = EncodeSettings(),
    *,
    shard_images: int = 16,
    batch: int = 8,
    progress: bool = True,
) -> dict:
    """Encode (or finish encoding) one or more image folders into ``out``; return the manifest."""
    from tqdm import tqdm

    if isinstance(images_dirs, (str, os.PathLike)):
        images_dirs = [images_dirs]
    dirs, out = [Path(d).resolve() for d in images_dirs], Path(out)
    if len(vaes) < 2:
        raise InterposerError("Give at least two families to pair (e.g. --families v1 xl).")
    if settings.crop % 8 or settings.crop < 64:
        raise InterposerError(f"--crop must be a multiple of 8 and at least 64 pixels, got {settings.crop}.")
    check_factors(settings)
    if not 0 <= settings.hue <= 180:
        raise InterposerError(f"--hue is the largest hue turn in degrees, 0 to 180; got {settings.hue:g}.")
    if len(set(dirs)) != len(dirs):
        raise InterposerError("An image folder is given twice.")
    paths: list[tuple[str, Path]] = []  # (image id, file)
    names: list[list[str]] = []  # per folder, for the held-out pick
    folders = [str(d) for d in dirs]
    for index, folder in enumerate(dirs):
        if not folder.is_dir():
            raise InterposerError(f"Image folder {folder} does not exist.")
        found = list_images(folder)
        if not found:
            raise InterposerError(f"No images (files Pillow reads: .jpg, .png, .webp, .tif, ...) in {folder}.")
        paths += [(image_id(folders, index, p.name), p) for p in found]
        names.append([p.name for p in found])
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        _check_resume(manifest, settings, vaes, dirs)
    else:
        holdout = []
        for index, in_folder in enumerate(names):  # per folder: the pick in one does not depend on the others
            holdout += [image_id(folders, index, n) for n in pick_holdout(in_folder, settings.holdout, settings.seed)]
        manifest = {
            "format": DATA_FORMAT, "version": DATA_VERSION, "images_dir": folders[0], "folders": folders,
            "families": sorted(vaes), "vaes": {k: v.describe() for k, v in vaes.items()},
            "settings": _settings_json(settings), "holdout": holdout,
            "train_images": [], "skipped": {}, "shards": [], "crops": 0, "holdout_file": None,
        }  # fmt: skip
        write_text(out / MANIFEST, json.dumps(manifest, indent=1))

    holdout = set(manifest["holdout"])
    if holdout and manifest["holdout_file"] is None:
        tensors = _encode_images([p for p in paths if p[0] in holdout], vaes, settings, settings.holdout_crops,
                                 batch, manifest, progress=False)  # fmt: skip
        if tensors:
            save_safetensors(out / HOLDOUT_FILE, tensors)
            manifest["holdout_file"] = HOLDOUT_FILE
        write_text(out / MANIFEST, json.dumps(manifest, indent=1))

    done = set(manifest["train_images"]) | set(manifest["skipped"]) | holdout
    todo = [p for p in paths if p[0] not in done]
    bar = tqdm(total=len(todo), desc="encode", unit="img", disable=not progress)
    for start in range(0, len(todo), shard_images):
        group = todo[start : start + shard_images]
        first_index = len(manifest["train_images"])
        tensors = _encode_images(group, vaes, settings, settings.crops_per_image, batch, manifest, bar=bar)
        if tensors:
            name = f"train-{len(manifest['shards']):05d}.safetensors"
            save_safetensors(out / name, tensors)
            count = len(tensors["image"])
            manifest["shards"].append({"file": name, "crops": count, "first_image": first_index})
            manifest["crops"] += count
        write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    bar.close()
    return manifest


def _encode_images(
    paths: list[tuple[str, Path]],
    vaes: dict[str, VAE],
    settings: EncodeSettings,
    crops_per_image: int,
    batch: int,
    manifest: dict,
    *,
    bar=None,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Encode the crops of ``paths`` ((id, file) pairs); readable images are appended to
    ``manifest['train_images']`` (or looked up in ``manifest['holdout']``), the others recorded in
    ``manifest['skipped']``."""
    holdout = manifest["holdout"]
    factors = tuple(settings.factors)
    parts: dict[str, list[torch.Tensor]] = {}
    indexes: list[torch.Tensor] = []
    for ident, path in paths:
        try:
            image = fit_image(load_image(path, max_side=None, multiple=8), settings)
        except Exception as exc:  # PIL raises many types for broken files
            manifest["skipped"][ident] = f"unreadable: {exc}"
        else:
            if image is None:
                manifest["skipped"][ident] = f"too small: the shorter side is under {settings.crop} px"
            else:
                crops = random_crops(image, settings, crops_per_image, image_seed(settings.seed, ident),
                                     jitter=ident not in holdout)  # fmt: skip
                encoded = encode_crops(crops, vaes, batch, factors)
                if settings.rgb:
                    encoded["rgb"] = (crops * 255).round().to(torch.uint8)
                for key, value in encoded.items():
                    parts.setdefault(key, []).append(value)
                if ident in holdout:
                    index = holdout.index(ident)
                else:
                    index = len(manifest["train_images"])
                    manifest["train_images"].append(ident)
                indexes.append(torch.full((len(crops),), index, dtype=torch.int32))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(skipped=len(manifest["skipped"]))
    if not indexes:
        return {}
    return {**{key: torch.cat(chunks) for key, chunks in parts.items()}, "image": torch.cat(indexes)}
