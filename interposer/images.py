"""Image helpers for the demo, the tests and training: load, crop, grid, PSNR."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import InterposerError


class InvalidImageError(InterposerError, ValueError):
    """A file that Pillow cannot read as an image."""


def image_suffixes() -> tuple[str, ...]:
    """Every file suffix Pillow can open here (.jpg, .png, .webp, .tif, .tiff, .bmp, ...), lower case."""
    from PIL import Image

    readable = {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return tuple(sorted(readable))


def load_image(path: str | os.PathLike, max_side: int | None = 512, multiple: int = 8) -> torch.Tensor:
    """An RGB image as a (1, 3, H, W) float tensor in [0, 1], downscaled so its longer side is at
    most ``max_side`` and centre-cropped to a multiple of ``multiple`` (what a VAE needs)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InvalidImageError(f"Image {path} does not exist.")
    try:
        opened = Image.open(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidImageError(f"{path} is not an image Pillow can read ({exc}).") from exc
    with opened as img:
        try:
            img = img.convert("RGB")
        except OSError as exc:  # truncated or broken image data
            raise InvalidImageError(f"{path} is a broken image ({exc}).") from exc
        if max_side and max(img.size) > max_side:
            ratio = max_side / max(img.size)
            img = img.resize(
                (max(multiple, round(img.width * ratio)), max(multiple, round(img.height * ratio))), Image.LANCZOS
            )
        width, height = (img.width // multiple) * multiple, (img.height // multiple) * multiple
        if width == 0 or height == 0:
            raise InvalidImageError(f"{path} is {img.width}x{img.height}: smaller than {multiple} px.")
        left, top = (img.width - width) // 2, (img.height - height) // 2
        img = img.crop((left, top, left + width, top + height))
        array = np.array(img, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def to_pil(image: torch.Tensor):
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> PIL image."""
    from PIL import Image

    image = image.detach().float().cpu().clamp(0, 1)
    if image.ndim == 4:
        image = image[0]
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8))


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    mse = torch.mean((image.float().clamp(0, 1) - reference.float()) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def labelled_grid(
    panels: Sequence[tuple[str, torch.Tensor | None]],
    path: str | os.PathLike,
    *,
    side: int | None = None,
    quality: int | None = None,
) -> Path:
    """Save panels side by side, each with a caption above it; ``None`` panels are left grey.

    ``side``: shrink the panels so that their longer side is at most this many pixels.
    ``quality``: the JPEG quality when ``path`` ends in ``.jpg``/``.jpeg`` (Pillow's default otherwise).
    """
    from PIL import Image, ImageDraw

    first = next(p for _, p in panels if p is not None)
    height, width = first.shape[-2:]
    if side is not None and max(height, width) > side:
        ratio = side / max(height, width)
        height, width = max(1, round(height * ratio)), max(1, round(width * ratio))
    caption = 22
    grid = Image.new("RGB", (width * len(panels), height + caption), (32, 32, 32))
    draw = ImageDraw.Draw(grid)
    for i, (label, panel) in enumerate(panels):
        if panel is not None:
            grid.paste(to_pil(panel).resize((width, height)), (i * width, caption))
        else:
            grid.paste(Image.new("RGB", (width, height), (96, 96, 96)), (i * width, caption))
        draw.text((i * width + 6, 5), label, fill=(255, 255, 255))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    grid.save(path, **({"quality": quality} if jpeg and quality is not None else {}))
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The files in ``folder`` whose suffix Pillow reads, sorted by name."""
    suffixes = set(image_suffixes())
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in suffixes and p.is_file())
