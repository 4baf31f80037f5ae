"""Draw the bundled demo image (examples/lakeside.jpg): a procedural lakeside at dusk.

The demo needs an image that ships with the repository and has colour, edges and texture for the
VAEs to get wrong; this draws one from fixed seeds, so it is reproducible and free of any licence.
Run: python examples/make_example_image.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SIZE = 512


def fractal_noise(rng: np.random.Generator, size: int, octaves: int = 6) -> np.ndarray:
    total = np.zeros((size, size))
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.standard_normal((cells + 1, cells + 1))
        img = Image.fromarray(grid.astype(np.float32)).resize((size, size), Image.BICUBIC)
        total += np.asarray(img) / (1.6**octave)
    return (total - total.min()) / (total.max() - total.min())


def ridge(rng: np.random.Generator, base: float, rough: float) -> np.ndarray:
    x = np.linspace(0, 1, SIZE)
    line = np.zeros(SIZE)
    for k in range(1, 9):
        line += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * k * x + rng.uniform(0, 6)) / k**1.3
    return base + rough * line


def draw() -> Image.Image:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    horizon = 0.62
    sky_top, sky_low = np.array([0.16, 0.22, 0.48]), np.array([0.98, 0.62, 0.36])
    t = np.clip(yy / horizon, 0, 1)[..., None]
    img = sky_top * (1 - t) + sky_low * t
    clouds = fractal_noise(rng, SIZE)
    img += (np.clip(clouds - 0.55, 0, 1) * 1.6 * (yy < horizon))[..., None] * np.array([0.9, 0.55, 0.5])
    sun = np.exp(-(((xx - 0.7) ** 2 + (yy - 0.5) ** 2) / 0.0018))
    img += sun[..., None] * np.array([1.0, 0.85, 0.5])
    for base, rough, colour in ((0.42, 0.06, (0.33, 0.28, 0.42)), (0.5, 0.05, (0.18, 0.2, 0.26))):
        top = ridge(rng, base, rough)
        mask = (yy > top[None, :]) & (yy < horizon)
        shade = 0.75 + 0.5 * fractal_noise(rng, SIZE, 5)[..., None]
        img = np.where(mask[..., None], np.array(colour) * shade, img)
    # Pine trees on the near shore.
    for _ in range(38):
        cx, height = rng.uniform(0, 1), rng.uniform(0.07, 0.2)
        tip = horizon - height
        width = height * 0.28 * np.clip((yy - tip) / height, 0, 1)
        mask = (np.abs(xx - cx) < width) & (yy > tip) & (yy < horizon)
        img = np.where(mask[..., None], np.array([0.05, 0.12, 0.08]) * (0.7 + 0.6 * rng.uniform()), img)
    # Lake: the mirrored scene, darker, with ripples.
    below = yy >= horizon
    src_row = np.clip((2 * horizon - yy) * SIZE, 0, SIZE - 1).astype(int)
    ripple = (np.sin(yy * 420 + 3 * fractal_noise(rng, SIZE, 4)) * 0.012 * (yy - horizon) * 10 * SIZE).astype(int)
    src_col = np.clip((xx * SIZE).astype(int) + ripple, 0, SIZE - 1)
    mirrored = img[src_row, src_col] * np.array([0.62, 0.7, 0.8])
    img = np.where(below[..., None], mirrored, img)
    img += rng.normal(0, 0.012, img.shape)
    image = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return image.filter(ImageFilter.SMOOTH_MORE)


if __name__ == "__main__":
    target = Path(__file__).with_name("lakeside.jpg")
    draw().save(target, quality=92)
    print(f"wrote {target}")
