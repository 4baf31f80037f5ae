"""Regenerate the README's pictures with the project's own tools (CPU, under a minute on 2 cores).

    .venv/bin/python docs/make_pictures.py            # the H200-trained files; writes docs/images/
    .venv/bin/python docs/make_pictures.py --published --weights-dir models/LatentInterposer --taesd-dir TAESD
                                                      # the same with city96's published files
    .venv/bin/python docs/make_pictures.py --bundled  # convert-{xl-to-fx,v1-to-fx,f2-to-v1}.jpg with
                                                      # the files the package ships (docs/models.md)

1. ``convert-xl-to-v1.jpg``: one photo, SDXL -> SD1.5: original | no conversion | TAESD bridge |
   interposer, made by :func:`interposer.compare.run_compare` (what ``python -m interposer compare``
   runs): the photo is encoded by the SDXL TAESD and decoded by the SD1.5 TAESD after each path.
2. ``hires-2x-<family>.jpg``: hires fix at 2x in one family: original | webui ``Latent`` (bilinear latent
   interpolation) | ``Latent (NN)`` (the learned latent upscaler) | pixel route (decode, Lanczos, re-encode),
   made by the routes of ``python -m training eval`` (:mod:`training.evaluate_upscale`): the first pass is
   the photo downscaled 2x and TAESD-encoded; every route is decoded by the family's TAESD. The panels show
   a crop at 1:1; the PSNR in each label is of the whole image.

Weights: by default the files the project trained with ``--preset gpu`` on an NVIDIA H200 and exported with
``python -m training export RUN --tag gpu`` (``shared/measurements/h200-2026-12/weights/``), *not* city96's
published files; ``--published`` takes city96's v4.0 interposer and v2.1 upscaler under their published names
(the files a webui user has in ``models/LatentInterposer``). The default image is ``examples/lakeside.jpg``,
which ``examples/make_example_image.py`` draws (no licence to record, never trained on). Every panel's PSNR (dB,
against the image) is printed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from interposer.compare import run_compare  # noqa: E402
from interposer.directions import direction  # noqa: E402
from interposer.images import labelled_grid, load_image, psnr  # noqa: E402
from interposer.runtime import Converter, ModelCache  # noqa: E402
from interposer.upscalers import upscaler  # noqa: E402
from interposer.weights import WeightsQuery, find_local  # noqa: E402
from training.evaluate_upscale import BILINEAR, CEILING, LEARNED, PIXEL, UpscaleModels, hires_multiple  # noqa: E402
from training.evaluate_upscale import _panels as upscale_route_panels  # noqa: E402
from training.vaes import load_vae  # noqa: E402

SHARED = REPO.parent / "shared"
MEASUREMENTS = SHARED / "measurements" / "h200-2026-12"
DEFAULT_WEIGHTS = MEASUREMENTS / "weights"
DEFAULT_PHOTO = REPO / "examples" / "lakeside.jpg"
DEFAULT_TAESD = SHARED / "vae" / "taesd"
DEFAULT_OUT = REPO / "docs" / "images"
TAG = "gpu"  # export --tag of the H200 runs
PUBLISHED_TAGS = ("v4.0", "v2.1")  # city96's interposer and upscaler versions
CONVERSION = "xl-to-v1"
FACTOR = 2.0
# The hires picture: which family, and where the 1:1 crop sits (its centre, as fractions of width and
# height; for the default image, the tree line and its reflection).
DEFAULT_FAMILY = "v1"
DEFAULT_CROP = 224
DEFAULT_CENTRE = (0.42, 0.6)
QUALITY = 88  # JPEG: each picture stays well under 300 KB
# The routes of the hires picture, by the names the webui shows.
ROUTES = {BILINEAR: "Latent", LEARNED: "Latent (NN)", PIXEL: "pixel route"}


@dataclass
class Picture:
    path: Path
    psnr: dict[str, float | None]  # panel -> PSNR (dB) against the photo; None where the path is impossible
    ceiling: float  # the target TAESD's own round trip of the photo: no latent path does much better


def conversion_picture(
    photo: str | os.PathLike,
    weights_dir: str | os.PathLike,
    taesd_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    max_side: int = 512,
    panel_side: int | None = 384,
    tag: str = TAG,
) -> Picture:
    """original | no conversion | TAESD bridge | interposer, SDXL -> SD1.5, via ``run_compare``."""
    dirn = direction(CONVERSION)
    path = find_local(dirn, [weights_dir], tag) or Path(weights_dir) / dirn.filename(tag)  # NAME or <tag>/NAME
    query = WeightsQuery(path=str(path), allow_download=False)
    converter = Converter(weights=query, device="cpu", precision="fp32")
    result = run_compare(
        photo, dirn, converter, out, taesd_dir=str(taesd_dir), allow_download=False, max_side=max_side,
        panel_side=panel_side, quality=QUALITY,
    )  # fmt: skip
    return Picture(result.grid, dict(result.psnr), result.ceiling)


# One picture per direction the package ships (docs/models.md): into FLUX.1 from SDXL and SD1.5, out of FLUX.2 into
# SD1.5.
BUNDLED_PICTURES = ("xl-to-fx", "v1-to-fx", "f2-to-v1")


def bundled_pictures(
    photo: str | os.PathLike,
    taesd_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_side: int = 512,
    panel_side: int | None = 384,
) -> dict[str, Picture]:
    """original | no conversion | TAESD bridge | interposer for each of :data:`BUNDLED_PICTURES`, with the file
    the package ships (the lookup a user gets: no weights folder, no download)."""
    pictures = {}
    for name in BUNDLED_PICTURES:
        dirn = direction(name)
        converter = Converter(weights=WeightsQuery(allow_download=False), device="cpu", precision="fp32")
        result = run_compare(
            photo, dirn, converter, Path(out_dir) / f"convert-{name}.jpg", taesd_dir=str(taesd_dir),
            allow_download=False, max_side=max_side, panel_side=panel_side, quality=QUALITY,
        )  # fmt: skip
        pictures[name] = Picture(result.grid, dict(result.psnr), result.ceiling)
    return pictures


def crop_box(size: tuple[int, int], crop: int, centre: tuple[float, float]) -> tuple[slice, slice]:
    """Rows and columns of a ``crop``-pixel square (smaller if the image is) around ``centre`` (fractions)."""
    height, width = size
    side_h, side_w = min(crop, height), min(crop, width)
    top = min(max(0, round(centre[1] * height - side_h / 2)), height - side_h)
    left = min(max(0, round(centre[0] * width - side_w / 2)), width - side_w)
    return slice(top, top + side_h), slice(left, left + side_w)


def hires_picture(
    photo: str | os.PathLike,
    weights_dir: str | os.PathLike,
    taesd_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    family: str = DEFAULT_FAMILY,
    max_side: int = 512,
    crop: int = DEFAULT_CROP,
    centre: tuple[float, float] = DEFAULT_CENTRE,
    tag: str = TAG,
) -> Picture:
    """original | Latent | Latent (NN) | pixel route at 2x in ``family``, via the upscaling eval's routes."""
    hires = load_image(photo, max_side=max_side, multiple=hires_multiple(FACTOR))
    vae = load_vae("taesd", family, taesd_dir=str(taesd_dir), device="cpu", precision="fp32", allow_download=False)
    family = vae.space.name
    models = UpscaleModels(upscalers={family: Path(weights_dir) / upscaler(family, FACTOR).filename(tag)})
    base = Converter(device="cpu", precision="fp32", cache=ModelCache(), upscale_factors=(FACTOR,))
    decoded = upscale_route_panels(hires, FACTOR, vae, vae, [*ROUTES, CEILING], models, base)
    scores = {label: psnr(decoded[name], hires) for name, label in ROUTES.items()}
    rows, cols = crop_box(tuple(hires.shape[-2:]), crop, centre)

    def cut(image: torch.Tensor) -> torch.Tensor:
        return image[..., rows, cols]

    panels = [("original", cut(hires))]
    panels += [(f"{label}: {scores[label]:.1f} dB", cut(decoded[name])) for name, label in ROUTES.items()]
    grid = labelled_grid(panels, out, quality=QUALITY)
    return Picture(grid, scores, psnr(decoded[CEILING], hires))


def make_pictures(
    photo: str | os.PathLike = DEFAULT_PHOTO,
    weights_dir: str | os.PathLike = DEFAULT_WEIGHTS,
    taesd_dir: str | os.PathLike = DEFAULT_TAESD,
    out_dir: str | os.PathLike = DEFAULT_OUT,
    *,
    family: str = DEFAULT_FAMILY,
    max_side: int = 512,
    panel_side: int | None = 384,
    crop: int = DEFAULT_CROP,
    centre: tuple[float, float] = DEFAULT_CENTRE,
    tags: tuple[str, str] = (TAG, TAG),
) -> dict[str, Picture]:
    """Both pictures, written into ``out_dir``; the PSNR of every panel. ``tags``: the interposer's and the
    upscaler's file tags (``PUBLISHED_TAGS`` for city96's files)."""
    out_dir = Path(out_dir)
    torch.manual_seed(0)  # nothing here is random; fixed anyway, so reruns give the same files
    return {
        "conversion": conversion_picture(
            photo, weights_dir, taesd_dir, out_dir / f"convert-{CONVERSION}.jpg", max_side=max_side,
            panel_side=panel_side, tag=tags[0],
        ),
        "hires": hires_picture(
            photo, weights_dir, taesd_dir, out_dir / f"hires-2x-{family}.jpg", family=family,
            max_side=max_side, crop=crop, centre=centre, tag=tags[1],
        ),
    }  # fmt: skip


def describe(pictures: dict[str, Picture]) -> str:
    lines = []
    for picture in pictures.values():
        size = picture.path.stat().st_size
        lines.append(f"{picture.path} ({size / 1024:.0f} KB), PSNR against the photo:")
        for name, value in picture.psnr.items():
            shown = "n/a" if value is None or not math.isfinite(value) else f"{value:6.2f} dB"
            lines.append(f"  {name:<15} {shown}")
        lines.append(f"  (ceiling: the target TAESD's round trip of the photo, {picture.ceiling:.2f} dB)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", default=str(DEFAULT_PHOTO), help="an image the weights were not trained on")
    parser.add_argument("--published", action="store_true",
                        help="city96's files (v4.0 interposer, v2.1 upscaler), not --tag gpu ones")  # fmt: skip
    parser.add_argument("--weights-dir", default=str(DEFAULT_WEIGHTS),
                        help=f"folder with the files exported with --tag {TAG}")  # fmt: skip
    parser.add_argument("--taesd-dir", default=str(DEFAULT_TAESD), help="folder with the TAESD files")
    parser.add_argument("--out-dir", default=str(DEFAULT_OUT))
    parser.add_argument("--family", default=DEFAULT_FAMILY, choices=("v1", "xl"), help="family of the hires picture")
    parser.add_argument("--max-side", type=int, default=512, help="the photo's longer side (as in the evals)")
    parser.add_argument("--panel-side", type=int, default=384, help="conversion picture: panels shrunk to this")
    parser.add_argument("--crop", type=int, default=DEFAULT_CROP, help="hires picture: side of the 1:1 crop")
    parser.add_argument("--crop-centre", type=float, nargs=2, default=DEFAULT_CENTRE, metavar=("FX", "FY"),
                        help="hires picture: centre of the crop, as fractions of width and height")  # fmt: skip
    parser.add_argument(
        "--bundled",
        action="store_true",
        help=f"instead: the pictures of the shipped directions ({', '.join(BUNDLED_PICTURES)})",
    )
    args = parser.parse_args(argv)
    if args.bundled:
        pictures = bundled_pictures(args.photo, args.taesd_dir, args.out_dir, max_side=args.max_side,
                                    panel_side=args.panel_side)  # fmt: skip
        print(f"Photo: {args.photo}")
        print(describe(pictures))
        return 0
    pictures = make_pictures(
        args.photo, args.weights_dir, args.taesd_dir, args.out_dir, family=args.family, max_side=args.max_side,
        panel_side=args.panel_side, crop=args.crop, centre=tuple(args.crop_centre),
        tags=PUBLISHED_TAGS if args.published else (TAG, TAG),
    )  # fmt: skip
    print(f"Photo: {args.photo}")
    print(describe(pictures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
