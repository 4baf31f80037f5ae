"""``eval``: how close to the original photo does each way of crossing latent spaces get?

For every held-out image: encode it with the source VAE, reach the target space four ways,
decode with the target VAE and compare with the image (PSNR, SSIM):

* **no conversion**: the source latents handed on unchanged in model space (what the webui does
  across families without this extension); only where channel counts and grids match;
* **linear map**: the least-squares per-pixel affine map, fitted on the *training* latents;
* **VAE bridge**: target-encode(source-decode(latents)), the slow reference;
* **interposer**: the weights file, run through ``interposer.runtime.Converter`` exactly as the
  webui and the CLI run it (raw latents in, raw out).

The target VAE's own round trip (decode(encode(image))) is reported as the ceiling: no latent
path can do much better than the target VAE itself. Output: ``report.md``, ``report.json`` and
``grid.png`` (one row per image, at most ``grid_images`` rows).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from interposer.atomic_files import write_text
from interposer.directions import Direction, direction
from interposer.errors import InterposerError
from interposer.images import labelled_grid, list_images, load_image, psnr
from interposer.linear import apply_affine, fit_affine
from interposer.runtime import Converter, ModelCache
from interposer.weights import LoadedWeights, WeightsQuery, load_weights

from .data import load_pairs
from .encode import read_manifest
from .vaes import VAE

log = logging.getLogger(__name__)

PATHS = ("no conversion", "linear map", "VAE bridge", "interposer", "target VAE round trip")
MAX_FIT_CROPS = 2048


def ssim(image: torch.Tensor, reference: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 gaussian window, sigma 1.5) over RGB channels, images in [0, 1]."""
    x, y = image.float().clamp(0, 1), reference.float()
    coords = torch.arange(window, dtype=torch.float32) - window // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x)
    channels = x.shape[1]

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable gaussian, 'valid' borders
        t = F.conv2d(t, g.view(1, 1, 1, -1).expand(channels, 1, 1, window), groups=channels)
        return F.conv2d(t, g.view(1, 1, -1, 1).expand(channels, 1, window, 1), groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


def weights_direction(weights: LoadedWeights, given: str | None) -> Direction:
    """The direction a weights file converts: --direction, else its metadata, else its file name."""
    if given:
        return direction(given)
    if weights.metadata.get("src") and weights.metadata.get("dst"):
        return direction(weights.metadata["src"], weights.metadata["dst"])
    match = re.match(r"(\w+)-to-(\w+)_interposer-", weights.path.name)
    if match:
        return direction(match[1], match[2])
    raise InterposerError(f"Cannot tell which direction {weights.path} converts; pass --direction SRC-to-DST.")


def fit_linear(data: str | os.PathLike, dirn: Direction) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = load_pairs(data, dirn)
    if pairs is None:
        raise InterposerError(f"{data} has no training latents to fit the linear map on.")
    src, dst = pairs
    step = max(1, len(src) // MAX_FIT_CROPS)
    return fit_affine(src[::step], dst[::step], dirn.default_config().scale)


def heldout_images(data: str | os.PathLike | None, images: str | os.PathLike | None, allow_train: bool) -> list[Path]:
    """The images to evaluate on: ``images`` (a folder or file), else the manifest's held-out list.

    With a manifest, images that were used for training are refused: an evaluation on training
    images says nothing about new ones.
    """
    manifest = read_manifest(data) if data else None
    if images is not None:
        path = Path(images)
        if path.is_dir():
            chosen = list_images(path)
        elif path.is_file():
            chosen = [path]
        else:
            raise InterposerError(f"Image folder {path} does not exist.")
    elif manifest is not None:
        folder = Path(manifest["images_dir"])
        chosen = [folder / name for name in manifest["holdout"] if name not in manifest["skipped"]]
        if not chosen:
            raise InterposerError(f"{data} has no held-out images: encode with --holdout N, or pass --images DIR.")
    else:
        raise InterposerError("Pass --data DIR (its held-out images) or --images DIR.")
    if manifest is not None and not allow_train:
        trained = {(Path(manifest["images_dir"]) / n).resolve() for n in manifest["train_images"]}
        overlap = [p.name for p in chosen if p.resolve() in trained]
        if overlap:
            raise InterposerError(
                f"{len(overlap)} of these images were used for training ({', '.join(overlap[:5])}); "
                "evaluate on held-out images, or pass --allow-train-images to do it anyway."
            )
        namesakes = [p.name for p in chosen if p.name in set(manifest["train_images"])]
        if namesakes:
            log.warning("%d images share a name with training images (%s): copies?", len(namesakes), namesakes[:5])
    if not chosen:
        raise InterposerError(f"No images (.jpg, .png, .webp, .bmp) in {images}.")
    return chosen


def _panels(
    image: torch.Tensor, dirn: Direction, src: VAE, dst: VAE, converter: Converter, weights_path: Path, linear
) -> dict[str, torch.Tensor | None]:
    z = src.encode(image)
    same_grid = dirn.src.channels == dirn.dst.channels and dirn.src.spatial_factor == dirn.dst.spatial_factor
    query = WeightsQuery(path=str(weights_path), allow_download=False)
    converted = converter.with_options(weights=query).convert(z, dirn.src.name, dirn.dst.name, scaled=False)
    scale = dirn.default_config().scale
    return {
        "no conversion": dst.decode(dirn.dst.to_raw(dirn.src.to_scaled(z))) if same_grid else None,
        "linear map": dst.decode(apply_affine(z, *linear, scale)) if linear is not None else None,
        "VAE bridge": dst.decode(dst.encode(src.decode(z))),
        "interposer": dst.decode(converted),
        "target VAE round trip": dst.decode(dst.encode(image)),
    }


def evaluate(
    weights_path: str | os.PathLike,
    images: list[Path],
    vaes: dict[str, VAE],
    out: str | os.PathLike,
    *,
    dirn: Direction | None = None,
    linear: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_side: int = 512,
    device: str = "cpu",
    grid_images: int = 4,
    label: str = "",
    source: str | None = None,
) -> dict:
    """Score every path on every image; write report.md, report.json and grid.png into ``out``.

    ``source``: what to call the weights in the report (a run folder that was exported to a temporary file).
    """
    from tqdm import tqdm

    weights = load_weights(weights_path)
    dirn = dirn or weights_direction(weights, None)
    src, dst = vaes[dirn.src.name], vaes[dirn.dst.name]
    converter = Converter(device=device, precision="fp32", cache=ModelCache())  # a fresh cache: files may change
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped, grid_rows = [], {}, []
    for path in tqdm(images, desc="eval", unit="img"):
        try:
            image = load_image(path, max_side=max_side, multiple=8)
        except Exception as exc:  # PIL raises many types for broken files
            skipped[path.name] = str(exc)
            continue
        panels = _panels(image, dirn, src, dst, converter, weights.path, linear)
        row = {"image": path.name, "size": list(image.shape[-2:])}
        for name in PATHS:
            p = panels[name]
            row[name] = None if p is None else {"psnr": round(psnr(p, image), 3), "ssim": round(ssim(p, image), 4)}
        rows.append(row)
        if len(grid_rows) < grid_images:
            captions = [("original", image)] + [
                (name if row[name] is None else f"{name}: {row[name]['psnr']:.1f} dB", panels[name]) for name in PATHS
            ]
            grid_rows.append(labelled_grid(_small(captions), out / f"grid-{path.stem}.png"))
    if not rows:
        raise InterposerError(f"None of the {len(images)} images could be read: {skipped}")
    mean = {}
    for name in PATHS:
        scored = [r[name] for r in rows if r[name] is not None]
        mean[name] = None if not scored else {
            m: round(sum(s[m] for s in scored) / len(scored), 4) for m in ("psnr", "ssim")
        }  # fmt: skip
    report = {
        "direction": dirn.name, "label": label,
        "weights": {"path": source or str(weights.path), "version": weights.version,
                    "constructor": weights.config.to_dict(),
                    "training": json.loads(weights.metadata.get("training", "null"))},
        "vaes": {k: v.describe() for k, v in vaes.items()}, "max_side": max_side,
        "linear_fit": "least squares on the training latents" if linear is not None else None,
        "images": len(rows), "skipped": skipped, "mean": mean, "per_image": rows,
    }  # fmt: skip
    write_text(out / "report.json", json.dumps(report, indent=1))
    write_text(out / "report.md", markdown(report))
    _stack(grid_rows, out / "grid.png")
    for row_file in grid_rows:
        row_file.unlink()
    return report


def _small(panels: list[tuple[str, torch.Tensor | None]], side: int = 256) -> list[tuple[str, torch.Tensor | None]]:
    def shrink(t: torch.Tensor) -> torch.Tensor:
        h, w = t.shape[-2:]
        ratio = side / max(h, w)
        return t if ratio >= 1 else F.interpolate(t, (round(h * ratio), round(w * ratio)), mode="area")

    return [(label, None if p is None else shrink(p)) for label, p in panels]


def _stack(rows: list[Path], path: Path) -> None:
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in rows]
    grid = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), (32, 32, 32))
    top = 0
    for image in images:
        grid.paste(image, (0, top))
        top += image.height
    grid.save(path)


def markdown(report: dict) -> str:
    def cell(value: dict | None, key: str, digits: int) -> str:
        return "n/a" if value is None else f"{value[key]:.{digits}f}"

    w = report["weights"]
    label = f" ({report['label']})" if report["label"] else ""
    lines = [
        f"# {report['direction']} on {report['images']} held-out images{label}",
        "",
        f"Weights: `{w['path']}` ({w['version']}, ch_mid {w['constructor']['ch_mid']}, "
        f"{w['constructor']['blocks']} blocks). Images at max side {report['max_side']} px.",
        "VAEs: " + ", ".join(f"{k}: {v['kind']} `{v['source']}`" for k, v in report["vaes"].items()) + ".",
        "",
        "| path | PSNR (dB) | SSIM |",
        "|---|---:|---:|",
    ]  # fmt: skip
    for name in PATHS:
        lines.append(f"| {name} | {cell(report['mean'][name], 'psnr', 2)} | {cell(report['mean'][name], 'ssim', 3)} |")
    lines += ["", "Per image, PSNR (dB):", "", "| image | " + " | ".join(PATHS) + " |", "|---|" + "---:|" * len(PATHS)]
    for row in report["per_image"]:
        lines.append(f"| {row['image']} | " + " | ".join(cell(row[n], "psnr", 2) for n in PATHS) + " |")
    if report["skipped"]:
        lines += ["", f"Skipped (unreadable): {', '.join(report['skipped'])}"]
    return "\n".join(lines) + "\n"
