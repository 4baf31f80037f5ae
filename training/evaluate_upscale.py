"""``eval`` for upscaling: how close to the full-size photo does each hires route get?

For every held-out image: the photo at ``max_side`` is the *hires* target; the photo downscaled by
``factor`` (the same antialiased bicubic as ``encode``) stands in for the first pass and is encoded
by the *source* VAE. Each route then reaches the target family at the hires latent size, and the
target VAE decodes it for comparison with the photo (PSNR, SSIM, colour error):

* **Latent (bilinear)** / **Latent (nearest-exact)**: the webui's own latent upscalers
  (``F.interpolate`` to the target latent size); across families after the interposer at 1x,
  which is what the extension's conversion followed by the webui's interpolation gives;
* **pixel route (Lanczos)**: source decode -> Lanczos to the hires size -> target encode, the
  route A1111 offers with a pixel upscaler (and its cost: two VAE passes);
* **learned**: same family, the upscaler; across families both chains, **convert -> upscale**
  (interposer at the low resolution, then the target family's upscaler) and **upscale ->
  convert**, and the **one network** that does both, whichever files are given; all run through
  ``interposer.runtime.Converter`` exactly as the webui and the CLI run them;
* **target VAE round trip**: the ceiling no latent route can beat by much.

Output: ``report.md``, ``report.json`` (per image, per folder, mean) and ``grid.png``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F

from interposer.atomic_files import write_text
from interposer.directions import Direction
from interposer.errors import InterposerError
from interposer.images import labelled_grid, load_image, psnr
from interposer.runtime import Converter, ModelCache
from interposer.spaces import LatentSpace, get_space
from interposer.weights import WeightsQuery

from .encode import downscale
from .evaluate import colour_error, shrink_panels, ssim, stack_rows
from .vaes import VAE

log = logging.getLogger(__name__)

BILINEAR, NEAREST, PIXEL = "Latent (bilinear)", "Latent (nearest-exact)", "pixel route (Lanczos)"
LEARNED, ONE_NETWORK = "learned", "one network"
CONVERT_FIRST, UPSCALE_FIRST = "convert -> upscale", "upscale -> convert"
CEILING = "target VAE round trip"


@dataclass
class UpscaleModels:
    """The weights files an upscaling evaluation runs (any may be missing; routes that need it are skipped)."""

    upscalers: dict[str, Path] = field(default_factory=dict)  # family -> upscaler file
    interposer: Path | None = None  # src -> dst at 1x
    one_network: Path | None = None  # src -> dst with scale = factor
    sources: dict[str, str] = field(default_factory=dict)  # what to call each file in the report
    # Or: a folder of upscalers named like the published ones with this tag (several factors), to
    # score the upscale *policies* at any scale (e.g. 1.75x from 1.5x and 2x files).
    upscaler_dir: Path | None = None
    upscaler_tag: str | None = None
    upscaler_factors: tuple[float, ...] = ()
    policies: tuple[str, ...] = ()


def routes(src: LatentSpace, dst: LatentSpace, models: UpscaleModels) -> list[str]:
    """The routes this evaluation can score, in report order."""
    same = src.name == dst.name
    if not same and models.interposer is None:
        raise InterposerError(
            f"An {src.name} -> {dst.name} upscaling evaluation needs the {src.name}-to-{dst.name} interposer "
            "(the webui's Latent routes and both chains use it): pass its weights file or run folder too."
        )
    names = [BILINEAR, NEAREST, PIXEL]
    if models.policies:
        return [*names, *(f"{LEARNED} ({policy})" for policy in models.policies), CEILING]
    if same:
        if dst.name in models.upscalers:
            names.append(LEARNED)
    else:
        if dst.name in models.upscalers:
            names.append(CONVERT_FIRST)
        if src.name in models.upscalers:
            names.append(UPSCALE_FIRST)
        if models.one_network is not None:
            names.append(ONE_NETWORK)
    if len(names) == 3:
        raise InterposerError(
            f"No learned route to score for {src.name} -> {dst.name}: give a {dst.name} upscaler"
            + ("" if same else f", a {src.name} upscaler or a {src.name}-to-{dst.name}-xF one-network model")
            + "."
        )
    return [*names, CEILING]


def hires_multiple(factor: float) -> int:
    """Pixel multiple of the hires image so that hires and first-pass sizes are whole latents
    (16 for 2x, 24 for 1.5x, 40 for 1.25x)."""
    return 8 * Fraction(factor).limit_denominator(100).numerator


def _lanczos(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL's Lanczos resize, what A1111's pixel upscaler 'Lanczos' does."""
    import numpy as np
    from PIL import Image

    array = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    resized = Image.fromarray(array).resize((size[1], size[0]), Image.LANCZOS)
    return torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)[None].float() / 255


def _panels(
    hires: torch.Tensor, factor: float, src: VAE, dst: VAE, names: list[str], models: UpscaleModels, base: Converter
) -> dict[str, torch.Tensor]:
    """Each route's decoded hires image; ``base`` carries the device, precision and the one model cache."""
    lo = downscale(hires, factor)
    z = src.encode(lo)
    size = (hires.shape[-2] // 8, hires.shape[-1] // 8)
    dirn = Direction(src.space, dst.space)

    def convert(latents: torch.Tensor) -> torch.Tensor:
        query = WeightsQuery(path=str(models.interposer), allow_download=False)
        return base.with_options(weights=query).convert(latents, dirn.src.name, dirn.dst.name, scaled=False)

    def upscale(latents: torch.Tensor, family: str, policy: str | None = None) -> torch.Tensor:
        if policy is not None:  # the folder of several factors, planned by the policy
            query = WeightsQuery(folders=[str(models.upscaler_dir)], version=models.upscaler_tag, allow_download=False)
            converter = base.with_options(weights=query, upscale_factors=models.upscaler_factors, upscale_policy=policy)
        else:
            query = WeightsQuery(upscaler_path=str(models.upscalers[family]), allow_download=False)
            converter = base.with_options(weights=query)
        return converter.upscale(latents, family, size=size, scaled=False)

    same = src.space.name == dst.space.name
    in_dst = z if same else convert(z)
    panels = {}
    for name in names:
        if name == BILINEAR:
            latents = F.interpolate(in_dst, size=size, mode="bilinear", antialias=False)
        elif name == NEAREST:
            latents = F.interpolate(in_dst, size=size, mode="nearest-exact")
        elif name == PIXEL:
            latents = dst.encode(_lanczos(src.decode(z), tuple(hires.shape[-2:])))
        elif name == LEARNED:
            latents = upscale(z, dst.space.name)
        elif name.startswith(f"{LEARNED} ("):
            latents = upscale(in_dst, dst.space.name, name[len(LEARNED) + 2 : -1])
        elif name == CONVERT_FIRST:
            latents = upscale(in_dst, dst.space.name)
        elif name == UPSCALE_FIRST:
            latents = convert(upscale(z, src.space.name))
        elif name == ONE_NETWORK:
            query = WeightsQuery(path=str(models.one_network), allow_download=False)
            latents, _ = base.with_options(weights=query).run_convert_upscale(
                z, src.space, dst.space, size=size, scaled=False, order="one-network"
            )
        else:  # the ceiling
            latents = dst.encode(hires)
        panels[name] = dst.decode(latents)
    return panels


def evaluate_upscale(
    images: list[tuple[str, str, Path]],
    vaes: dict[str, VAE],
    out: str | os.PathLike,
    *,
    src: str,
    dst: str,
    factor: float,
    models: UpscaleModels,
    max_side: int = 512,
    device: str = "cpu",
    grid_images: int = 4,
    label: str = "",
) -> dict:
    """Score every route on every image (``images``: (id, folder label, file)); write the reports."""
    from tqdm import tqdm

    src_space, dst_space = get_space(src), get_space(dst)
    names = routes(src_space, dst_space, models)
    # One converter and one fresh cache for the whole evaluation: each file loads once (fresh, not the
    # process-wide cache, because a run folder exported again may change under the same name).
    base = Converter(device=device, precision="fp32", cache=ModelCache(), upscale_factors=(float(factor),))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped, grid = [], {}, []
    for ident, folder, path in tqdm(images, desc=f"eval x{factor:g}", unit="img"):
        try:
            hires = load_image(path, max_side=max_side, multiple=hires_multiple(factor))
        except Exception as exc:  # PIL raises many types for broken files
            skipped[ident] = str(exc)
            continue
        panels = _panels(hires, factor, vaes[src_space.name], vaes[dst_space.name], names, models, base)
        row = {"image": ident, "folder": folder, "size": list(hires.shape[-2:])}
        for name in names:
            p = panels[name]
            row[name] = {"psnr": round(psnr(p, hires), 3), "ssim": round(ssim(p, hires), 4),
                         "color": round(colour_error(p, hires), 2)}  # fmt: skip
        rows.append(row)
        grid.append((row, [("original", hires)] + [(f"{n}: {row[n]['psnr']:.1f} dB", panels[n]) for n in names]))
    if not rows:
        raise InterposerError(f"None of the {len(images)} images could be read: {skipped}")
    best = [n for n in names if n.startswith(LEARNED) or n in (CONVERT_FIRST, UPSCALE_FIRST, ONE_NETWORK)]
    grid.sort(key=lambda item: max(item[0][n]["psnr"] for n in best))  # worst images first
    folders = sorted({r["folder"] for r in rows})
    report = {
        "kind": "upscale", "route": f"{src_space.name} -> {dst_space.name}", "factor": factor, "label": label,
        "models": {k: str(v) for k, v in models.sources.items()}, "max_side": max_side,
        "vaes": {k: v.describe() for k, v in vaes.items()}, "routes": names, "images": len(rows),
        "skipped": skipped, "mean": _mean(rows, names),
        "per_folder": {f: _mean([r for r in rows if r["folder"] == f], names) for f in folders},
        "grid_order": [item[0]["image"] for item in grid[:grid_images]], "per_image": rows,
    }  # fmt: skip
    write_text(out / "report.json", json.dumps(report, indent=1))
    write_text(out / "report.md", markdown(report))
    row_files = [labelled_grid(shrink_panels(p), out / f"grid-{i}.png") for i, (_, p) in enumerate(grid[:grid_images])]
    stack_rows(row_files, out / "grid.png")
    for row_file in row_files:
        row_file.unlink()
    return report


def _mean(rows: list[dict], names: list[str]) -> dict:
    return {
        n: {m: round(sum(r[n][m] for r in rows) / len(rows), 4) for m in ("psnr", "ssim", "color")} for n in names
    } | {"images": len(rows)}


def markdown(report: dict) -> str:
    names = report["routes"]
    label = f" ({report['label']})" if report["label"] else ""
    lines = [
        f"# Upscaling {report['route']} x{report['factor']:g} on {report['images']} held-out images{label}",
        "",
        f"Hires images at max side {report['max_side']} px; the first pass is the image downscaled by "
        f"{report['factor']:g} (antialiased bicubic), encoded by the source VAE. Decoded by the target VAE.",
        "Models: " + (", ".join(f"{k}: `{v}`" for k, v in report["models"].items()) or "none") + ".",
        "",
        "| route | PSNR (dB) | SSIM | colour error (ΔRGB) |",
        "|---|---:|---:|---:|",
    ]
    for n in names:
        m = report["mean"][n]
        lines.append(f"| {n} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['color']:.2f} |")
    if len(report["per_folder"]) > 1:
        lines += ["", "Per folder, PSNR (dB):", "", "| folder | images | " + " | ".join(names) + " |",
                  "|---|---:|" + "---:|" * len(names)]  # fmt: skip
        for folder, m in report["per_folder"].items():
            lines.append(f"| {folder} | {m['images']} | " + " | ".join(f"{m[n]['psnr']:.2f}" for n in names) + " |")
    lines += ["", "Per image, PSNR (dB):", "", "| image | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row in report["per_image"]:
        lines.append(f"| {row['image']} | " + " | ".join(f"{row[n]['psnr']:.2f}" for n in names) + " |")
    if report["skipped"]:
        lines += ["", f"Skipped (unreadable): {', '.join(report['skipped'])}"]
    return "\n".join(lines) + "\n"
