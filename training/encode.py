"""``encode``: an image folder -> paired raw latents of two or more families, in shards.

Every crop is cut (random scale, position and horizontal flip) from the image once and encoded
by *every* family's VAE, so the latents of one crop line up pixel for pixel across families:
that pairing is what the interposer learns. Latents are stored RAW (see ``training.vaes``).

Layout of the output folder::

    manifest.json              settings, VAEs, held-out and encoded image names, shards, skips
    train-00000.safetensors    {family: (N, C, h, w) float32, "image": (N,) index into manifest["train_images"]}
    holdout.safetensors        the same for the held-out images (validation loss during training)

Held-out images (``--holdout N``, picked by a seeded shuffle of the sorted names) are never put
in a training shard; ``eval`` reads their names from the manifest. Each image's crops come from
its own seeded generator, so an interrupted run resumed later (it skips images already in the
manifest) writes exactly the crops an uninterrupted run would have. Files are written to a
temporary name and renamed, so a crash never leaves a half-written shard or manifest.
"""

from __future__ import annotations

import json
import logging
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
DATA_VERSION = 1


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


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InterposerError(f"{folder} is not an encoded data folder: it has no {MANIFEST} (run `encode` first).")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != DATA_FORMAT:
        raise InterposerError(f"{path} is not a manifest written by `python -m training encode`.")
    return manifest


def pick_holdout(names: list[str], count: int, seed: int) -> list[str]:
    """``count`` names by a seeded shuffle of the sorted list (stable across runs and machines)."""
    if count <= 0:
        return []
    if count >= len(names):
        raise InterposerError(f"--holdout {count} leaves no training images (the folder has {len(names)}).")
    return sorted(random.Random(seed).sample(sorted(names), count))


def random_crops(image: torch.Tensor, settings: EncodeSettings, count: int, seed: int) -> torch.Tensor:
    """``count`` crops (count, 3, crop, crop) of a (1, 3, H, W) image; deterministic for ``seed``."""
    g = torch.Generator().manual_seed(seed)
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


def encode_crops(crops: torch.Tensor, vaes: dict[str, VAE], batch: int) -> dict[str, torch.Tensor]:
    return {name: torch.cat([vae.encode(chunk) for chunk in crops.split(batch)]) for name, vae in vaes.items()}


def _check_resume(manifest: dict, settings: EncodeSettings, vaes: dict[str, VAE], images_dir: Path) -> None:
    wanted = {"settings": asdict(settings), "families": sorted(vaes),
              "vaes": {k: v.describe() for k, v in vaes.items()}}  # fmt: skip
    for key, value in wanted.items():
        if manifest.get(key) != value:
            raise InterposerError(
                f"The output folder already holds data made with other {key} ({manifest.get(key)} vs {value}). "
                "Use a new output folder, or the same settings to resume."
            )
    if manifest.get("images_dir") != str(images_dir):
        log.warning("resuming with images from %s (the manifest says %s)", images_dir, manifest.get("images_dir"))


def encode_folder(
    images_dir: str | os.PathLike,
    out: str | os.PathLike,
    vaes: dict[str, VAE],
    settings: EncodeSettings = EncodeSettings(),
    *,
    shard_images: int = 16,
    batch: int = 8,
    progress: bool = True,
) -> dict:
    """Encode (or finish encoding) ``images_dir`` into ``out``; return the manifest."""
    from tqdm import tqdm

    images_dir, out = Path(images_dir).resolve(), Path(out)
    if len(vaes) < 2:
        raise InterposerError("Give at least two families to pair (e.g. --families v1 xl).")
    if settings.crop % 8 or settings.crop < 64:
        raise InterposerError(f"--crop must be a multiple of 8 and at least 64 pixels, got {settings.crop}.")
    if not images_dir.is_dir():
        raise InterposerError(f"Image folder {images_dir} does not exist.")
    paths = list_images(images_dir)
    if not paths:
        raise InterposerError(f"No images (.jpg, .png, .webp, .bmp) in {images_dir}.")
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        _check_resume(manifest, settings, vaes, images_dir)
    else:
        manifest = {
            "format": DATA_FORMAT, "version": DATA_VERSION, "images_dir": str(images_dir),
            "families": sorted(vaes), "vaes": {k: v.describe() for k, v in vaes.items()},
            "settings": asdict(settings),
            "holdout": pick_holdout([p.name for p in paths], settings.holdout, settings.seed),
            "train_images": [], "skipped": {}, "shards": [], "crops": 0, "holdout_file": None,
        }  # fmt: skip
        write_text(out / MANIFEST, json.dumps(manifest, indent=1))

    holdout = set(manifest["holdout"])
    if holdout and manifest["holdout_file"] is None:
        tensors = _encode_images([p for p in paths if p.name in holdout], vaes, settings, settings.holdout_crops,
                                 batch, manifest, progress=False)  # fmt: skip
        if tensors:
            save_safetensors(out / HOLDOUT_FILE, tensors)
            manifest["holdout_file"] = HOLDOUT_FILE
        write_text(out / MANIFEST, json.dumps(manifest, indent=1))

    done = set(manifest["train_images"]) | set(manifest["skipped"]) | holdout
    todo = [p for p in paths if p.name not in done]
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
    paths: list[Path],
    vaes: dict[str, VAE],
    settings: EncodeSettings,
    crops_per_image: int,
    batch: int,
    manifest: dict,
    *,
    bar=None,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Encode the crops of ``paths``; readable images are appended to ``manifest['train_images']``
    (or looked up in ``manifest['holdout']``), the others recorded in ``manifest['skipped']``."""
    holdout = manifest["holdout"]
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in vaes}
    indexes: list[torch.Tensor] = []
    for path in paths:
        try:
            image = fit_image(load_image(path, max_side=None, multiple=8), settings)
        except Exception as exc:  # PIL raises many types for broken files
            manifest["skipped"][path.name] = f"unreadable: {exc}"
        else:
            if image is None:
                manifest["skipped"][path.name] = f"too small: the shorter side is under {settings.crop} px"
            else:
                crops = random_crops(image, settings, crops_per_image, image_seed(settings.seed, path.name))
                for name, latents in encode_crops(crops, vaes, batch).items():
                    parts[name].append(latents)
                if path.name in holdout:
                    index = holdout.index(path.name)
                else:
                    index = len(manifest["train_images"])
                    manifest["train_images"].append(path.name)
                indexes.append(torch.full((len(crops),), index, dtype=torch.int32))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(skipped=len(manifest["skipped"]))
    if not indexes:
        return {}
    return {**{name: torch.cat(chunks) for name, chunks in parts.items()}, "image": torch.cat(indexes)}
