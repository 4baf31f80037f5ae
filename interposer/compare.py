"""The demo: how far is each way of crossing latent spaces from the original image?

Encode an image with the source family's TAESD, then reach the target space four ways and
decode with the target TAESD: the original, no conversion (what A1111 does today across
families), the decode -> encode bridge, and the interposer. PSNR against the original says
how much of the picture survives each path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .directions import Direction
from .images import labelled_grid, load_image, psnr
from .runtime import ConversionReport, Converter
from .taesd import TinyVAE, load_tiny_vae


@dataclass
class Comparison:
    grid: Path
    psnr: dict[str, float | None]
    ceiling: float
    report: ConversionReport


def compare_paths(
    image: torch.Tensor, src_vae: TinyVAE, dst_vae: TinyVAE, dirn: Direction, converter: Converter
) -> tuple[dict[str, torch.Tensor | None], ConversionReport]:
    """Decoded images of each path, keyed by panel name (``None`` where a path is impossible)."""
    latents = src_vae.encode(image)  # scaled source-space latents, as a first pass would leave them
    same_channels = dirn.src.channels == dirn.dst.channels and dirn.src.spatial_factor == dirn.dst.spatial_factor
    converted, report = converter.run(latents, dirn)
    panels = {
        "original": image,
        "no conversion": dst_vae.decode(latents) if same_channels else None,
        "TAESD bridge": dst_vae.decode(dst_vae.encode(src_vae.decode(latents))),
        "interposer": dst_vae.decode(converted),
    }
    return panels, report


def run_compare(
    image_path: str | os.PathLike,
    dirn: Direction,
    converter: Converter,
    out: str | os.PathLike,
    *,
    taesd_dir: str | None = None,
    allow_download: bool = True,
    max_side: int = 512,
    panel_side: int | None = None,
    quality: int | None = None,
) -> Comparison:
    """Write the grid to ``out`` (PSNRs are of the full-size panels; ``panel_side`` and ``quality``
    only shrink the saved grid: see :func:`~interposer.images.labelled_grid`)."""
    image = load_image(image_path, max_side=max_side, multiple=8)
    src_vae = load_tiny_vae(dirn.src, taesd_dir, allow_download=allow_download)
    dst_vae = load_tiny_vae(dirn.dst, taesd_dir, allow_download=allow_download)
    panels, report = compare_paths(image, src_vae, dst_vae, dirn, converter)
    scores = {name: (None if p is None else psnr(p, image)) for name, p in panels.items() if name != "original"}
    labels = [(name if name == "original" or scores[name] is None else f"{name}: {scores[name]:.1f} dB", p)
              for name, p in panels.items()]  # fmt: skip
    labels = [(f"{label} (n/a)" if p is None else label, p) for label, p in labels]
    grid = labelled_grid(labels, out, side=panel_side, quality=quality)
    ceiling = psnr(dst_vae.decode(dst_vae.encode(image)), image)
    return Comparison(grid=grid, psnr=scores, ceiling=ceiling, report=report)
