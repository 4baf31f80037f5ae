"""Procedural test "photos": landscapes with sky, clouds, sun, ridges, trees, houses and a lake, drawn from a seed.

The tests need natural-looking images (colour, edges, texture at every scale) to encode with real VAEs, fit
closed-form maps on and measure conversions against; these are drawn here, reproducibly and free of any licence,
so the suite runs on a bare clone (no photo folder beside it). Each seed gives another palette, horizon, sun,
skyline, tree line and lake; :func:`write_scenes` saves a folder of them as JPEGs, named like a photo folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def _example_image_module():
    """``examples/make_example_image.py`` (the demo image's drawing), whose noise the scenes share."""
    path = Path(__file__).resolve().parent.parent / "examples" / "make_example_image.py"
    spec = importlib.util.spec_from_file_location("make_example_image", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fractal_noise = _example_image_module().fractal_noise

SKIES = (  # (top, low) sky colours; the first (seeds 0, 5, ..., 30, 45) a bright day, as most photos are
    ((0.25, 0.45, 0.78), (0.78, 0.86, 0.95)),
    ((0.16, 0.22, 0.48), (0.98, 0.62, 0.36)),
    ((0.35, 0.30, 0.50), (0.95, 0.75, 0.60)),
    ((0.10, 0.12, 0.25), (0.55, 0.35, 0.45)),
    ((0.45, 0.62, 0.85), (0.92, 0.93, 0.88)),
)
GROUNDS = ((0.33, 0.28, 0.42), (0.25, 0.40, 0.20), (0.55, 0.45, 0.30), (0.30, 0.32, 0.38), (0.45, 0.50, 0.28))


def _ridge(rng: np.random.Generator, size: int, base: float, rough: float) -> np.ndarray:
    x = np.linspace(0, 1, size)
    line = np.zeros(size)
    for k in range(1, 9):
        line += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * k * x + rng.uniform(0, 6)) / k**1.3
    return base + rough * line


def draw_scene(seed: int, size: int = 512) -> Image.Image:
    """One landscape, the same for the same ``seed`` and ``size`` on every machine (numpy's PCG64)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    horizon = rng.uniform(0.5, 0.72)
    top, low = (np.array(c) for c in SKIES[seed % len(SKIES)])
    t = np.clip(yy / horizon, 0, 1)[..., None]
    img = top * (1 - t) + low * t
    clouds = fractal_noise(rng, size)
    tint = rng.uniform(0.5, 1.0, 3)
    img += (np.clip(clouds - rng.uniform(0.45, 0.65), 0, 1) * 1.6 * (yy < horizon))[..., None] * tint
    sun_x, sun_y = rng.uniform(0.15, 0.85), rng.uniform(0.15, horizon - 0.1)
    img += np.exp(-(((xx - sun_x) ** 2 + (yy - sun_y) ** 2) / rng.uniform(0.001, 0.003)))[..., None] * low
    ground = np.array(GROUNDS[(seed // 2) % len(GROUNDS)])
    for depth, (base, rough) in enumerate(((horizon - 0.2, 0.06), (horizon - 0.12, 0.05))):
        ridge = _ridge(rng, size, base, rough)
        mask = (yy > ridge[None, :]) & (yy < horizon)
        shade = 0.7 + 0.6 * fractal_noise(rng, size, 5)[..., None]
        img = np.where(mask[..., None], ground * (0.6 + 0.4 * depth) * shade, img)
    for _ in range(int(rng.integers(3, 9))):  # houses: flat walls, a darker roof line, lit windows
        cx, w, h = rng.uniform(0.05, 0.95), rng.uniform(0.03, 0.08), rng.uniform(0.04, 0.1)
        wall = rng.uniform(0.4, 0.95, 3)
        body = (np.abs(xx - cx) < w / 2) & (yy > horizon - h) & (yy < horizon)
        img = np.where(body[..., None], wall, img)
        roof = (np.abs(xx - cx) < w / 2 + 0.005) & (yy > horizon - h - 0.012) & (yy <= horizon - h)
        img = np.where(roof[..., None], wall * 0.35, img)
        windows = body & (np.sin(xx * size * 0.9) > 0.6) & (np.sin(yy * size * 0.9) > 0.5)
        img = np.where(windows[..., None], np.array([1.0, 0.85, 0.45]), img)
    for _ in range(int(rng.integers(15, 45))):  # trees
        cx, height = rng.uniform(0, 1), rng.uniform(0.05, 0.2)
        tip = horizon - height
        width = height * 0.28 * np.clip((yy - tip) / height, 0, 1)
        mask = (np.abs(xx - cx) < width) & (yy > tip) & (yy < horizon)
        img = np.where(mask[..., None], np.array([0.05, 0.14, 0.08]) * (0.6 + 0.8 * rng.uniform()), img)
    below = yy >= horizon  # the lake: the scene mirrored, darker, rippled
    src_row = np.clip((2 * horizon - yy) * size, 0, size - 1).astype(int)
    ripple = (np.sin(yy * 420 + 3 * fractal_noise(rng, size, 4)) * 0.012 * (yy - horizon) * 10 * size).astype(int)
    src_col = np.clip((xx * size).astype(int) + ripple, 0, size - 1)
    img = np.where(below[..., None], img[src_row, src_col] * np.array([0.62, 0.7, 0.8]), img)
    img += rng.normal(0, 0.012, img.shape)
    image = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return image.filter(ImageFilter.SMOOTH_MORE)


def write_scenes(folder: Path, names: list[str], size: int = 512) -> Path:
    """``folder/<name>`` for each name (``045.jpg`` -> seed 45), drawn once: a folder that reads like photos."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / name
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp.jpg")
            draw_scene(int(Path(name).stem), size).save(tmp, quality=92)
            tmp.replace(path)
    return folder
