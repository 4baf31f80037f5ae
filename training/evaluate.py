"""``eval``: how close to the original photo does each way of crossing latent spaces get?

For every evaluation image: encode it with the source VAE, reach the target space four ways,
decode with the target VAE and compare with the image:

* **no conversion**: the source latents handed on unchanged in model space (what the webui does
  across families without this extension); only where channel counts and grids match;
* **linear map**: the least-squares per-pixel affine map, fitted on the *training* latents;
* **VAE bridge**: target-encode(source-decode(latents)), the slow reference;
* **interposer**: the weights file, run through ``interposer.runtime.Converter`` exactly as the
  webui and the CLI run it (raw latents in, raw out).

The target VAE's own round trip (decode(encode(image))) is reported as the ceiling: no latent
path can do much better than the target VAE itself.

Metrics per path: PSNR, SSIM and **mean ΔRGB** (:func:`colour_error`: a colour cast, which PSNR
and SSIM barely register but a viewer sees at once). The interposer's **gap to the bridge**
(interposer PSNR − bridge PSNR, signed: positive = the interposer is closer to the photo) is the
number that says whether the fast path can replace the slow one.

Images may come from several folders (``--images A --images B``, or the held-out ids of a data
folder encoded from several): every mean is given per folder and over all images, with the worst
image (lowest interposer PSNR) of each, because a good overall mean can hide one kind of image
that the interposer handles badly. Output: ``report.md``, ``report.json`` and ``grid.png`` (the
``grid_images`` worst images first, one row each).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
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
from .encode import folder_labels, image_folder, image_path, read_manifest
from .vaes import VAE

log = logging.getLogger(__name__)

PATHS = ("no conversion", "linear map", "VAE bridge", "interposer", "target VAE round trip")
METRICS = ("psnr", "ssim", "delta_rgb")
METRIC_NOTES = {
    "psnr": "PSNR (dB) of the decoded image against the original; higher is better",
    "ssim": "mean SSIM (11x11 gaussian window, sigma 1.5) over RGB; higher is better",
    "delta_rgb": "mean absolute difference of the per-channel RGB means of decoded image and original, "
    "0-255 units (a colour cast); lower is better",
    "gap_to_bridge": "interposer PSNR - VAE bridge PSNR (dB); positive = the interposer is closer to the original",
    "all": "means over every image (each folder weighted by its number of images)",
}
MAX_FIT_CROPS = 2048


def colour_error(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean ΔRGB: the mean absolute difference of the per-channel RGB means, in 0-255 units.

    A latent map that is slightly off in one channel tints the whole picture; spread over every
    pixel that costs little PSNR and almost no SSIM, yet it is the first thing a viewer notices.
    Comparing channel means isolates exactly that global cast (0 = same average colour).
    """
    a = image.float().clamp(0, 1).mean(dim=(-2, -1))
    b = reference.float().clamp(0, 1).mean(dim=(-2, -1))
    return float((a - b).abs().mean()) * 255.0


def signed(value: float | None, digits: int = 2, minus: str = "\u2212") -> str:
    """``value`` with its sign always written ("+0.61", "−1.20"): a gap without a sign reads as a size."""
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:+.{digits}f}"
    return text.replace("-", minus) if text.startswith("-") else text


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
    """The least-squares affine map on (a subsample of) the training latents: the baseline a trained
    interposer has to beat to be worth its weights."""
    pairs = load_pairs(data, dirn)
    if pairs is None:
        raise InterposerError(f"{data} has no training latents to fit the linear map on.")
    src, dst = pairs
    step = max(1, len(src) // MAX_FIT_CROPS)
    return fit_affine(src[::step], dst[::step], dirn.default_config().scale)


@dataclass(frozen=True)
class EvalImage:
    """One image to evaluate: its file, the label of the folder it is reported under, and its id
    (``003.jpg`` with one folder, ``photos/003.jpg`` with several, as in an encoded manifest)."""

    path: Path
    folder: str
    id: str


def _given_images(images: Sequence[str | os.PathLike]) -> list[EvalImage]:
    """Files and folders from ``--images``, labelled like ``encode`` labels its folders."""
    groups: dict[Path, list[Path]] = {}  # resolved folder (named even when given as ".") -> its files, in order
    for given in images:
        path = Path(given)
        if path.is_dir():
            folder, files = path, list_images(path)
        elif path.is_file():
            folder, files = path.parent, [path]
        else:
            raise InterposerError(f"Image folder {path} does not exist.")
        if not files:
            raise InterposerError(f"No images (.jpg, .png, .webp, .bmp) in {path}.")
        known = groups.setdefault(folder.resolve(), [])
        known += [f for f in files if f not in known]
    labels = folder_labels([str(key) for key in groups])
    several = len(groups) > 1
    return [
        EvalImage(path, label, f"{label}/{path.name}" if several else path.name)
        for label, files in zip(labels, groups.values(), strict=True)
        for path in files
    ]


def eval_images(
    data: str | os.PathLike | None,
    images: str | os.PathLike | Sequence[str | os.PathLike] | None,
    allow_train: bool,
) -> list[EvalImage]:
    """The images to evaluate on: ``images`` (folders and/or files), else the manifest's held-out
    ids across all of its folders.

    With a manifest, images that were used for training are refused: an evaluation on training
    images says nothing about new ones.
    """
    manifest = read_manifest(data) if data else None
    if images is not None and images != []:
        chosen = _given_images([images] if isinstance(images, (str, os.PathLike)) else list(images))
    elif manifest is not None:
        chosen = [
            EvalImage(image_path(manifest, ident), image_folder(manifest, ident), ident)
            for ident in manifest["holdout"]
            if ident not in manifest["skipped"]
        ]
        if not chosen:
            raise InterposerError(f"{data} has no held-out images: encode with --holdout N, or pass --images DIR.")
    else:
        raise InterposerError("Pass --data DIR (its held-out images) or --images DIR.")
    if manifest is not None and not allow_train:
        trained = {image_path(manifest, ident).resolve() for ident in manifest["train_images"]}
        overlap = [image.id for image in chosen if image.path.resolve() in trained]
        if overlap:
            raise InterposerError(
                f"{len(overlap)} of these images were used for training ({', '.join(overlap[:5])}); "
                "evaluate on held-out images, or pass --allow-train-images to do it anyway."
            )
        train_names = {ident.rpartition("/")[2] for ident in manifest["train_images"]}
        namesakes = [image.id for image in chosen if image.path.name in train_names]
        if namesakes:
            log.warning("%d images share a name with training images (%s): copies?", len(namesakes), namesakes[:5])
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


def _finite(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _score(panel: torch.Tensor | None, image: torch.Tensor) -> dict | None:
    if panel is None:
        return None
    return {"psnr": round(psnr(panel, image), 3), "ssim": round(ssim(panel, image), 4),
            "delta_rgb": round(colour_error(panel, image), 3)}  # fmt: skip


def summarise(rows: list[dict], folder: str) -> dict:
    """Means per path, the signed gap to the bridge and the worst image (lowest interposer PSNR) of ``rows``.

    The gap is the difference of the mean PSNRs, which equals the mean of the per-image gaps.
    """
    mean: dict[str, dict | None] = {}
    for name in PATHS:
        scored = [r[name] for r in rows if r[name] is not None]
        mean[name] = None if not scored else {
            m: round(sum(s[m] for s in scored) / len(scored), 4) for m in METRICS
        }  # fmt: skip
    gap, worst = None, None
    if rows:
        gap = _finite(sum(r["interposer"]["psnr"] - r["VAE bridge"]["psnr"] for r in rows) / len(rows), 3)
        bad = min(rows, key=lambda r: r["interposer"]["psnr"])  # the first of equals: stable
        worst = {"image": bad["image"], "folder": bad["folder"], "psnr": bad["interposer"]["psnr"],
                 "bridge_psnr": bad["VAE bridge"]["psnr"], "gap_to_bridge": bad["gap_to_bridge"],
                 "delta_rgb": bad["interposer"]["delta_rgb"]}  # fmt: skip
    return {"folder": folder, "images": len(rows), "mean": mean, "gap_to_bridge": gap, "worst": worst}


def evaluate(
    weights_path: str | os.PathLike,
    images: Sequence[EvalImage | Path],
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

    ``images``: :class:`EvalImage` (from :func:`eval_images`), or plain paths, reported under the
    name of their folder. ``source``: what to call the weights in the report (a run folder that
    was exported to a temporary file). grid.png holds the ``grid_images`` images with the lowest
    interposer PSNR, worst first: the failures are what a user needs to look at.
    """
    from tqdm import tqdm

    items = [i if isinstance(i, EvalImage) else EvalImage(Path(i), Path(i).parent.name, Path(i).name) for i in images]
    weights = load_weights(weights_path)
    dirn = dirn or weights_direction(weights, None)
    src, dst = vaes[dirn.src.name], vaes[dirn.dst.name]
    converter = Converter(device=device, precision="fp32", cache=ModelCache())  # a fresh cache: files may change
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    skipped: dict[str, str] = {}
    worst: list[tuple[tuple[float, int], str, list]] = []  # the grid_images worst so far, small panels only
    for item in tqdm(items, desc="eval", unit="img"):
        try:
            image = load_image(item.path, max_side=max_side, multiple=8)
        except Exception as exc:  # PIL raises many types for broken files
            skipped[item.id] = str(exc)
            continue
        panels = _panels(image, dirn, src, dst, converter, weights.path, linear)
        row = {"image": item.id, "folder": item.folder, "file": str(item.path), "size": list(image.shape[-2:])}
        row.update({name: _score(panels[name], image) for name in PATHS})
        row["gap_to_bridge"] = _finite(row["interposer"]["psnr"] - row["VAE bridge"]["psnr"], 3)
        rows.append(row)
        if grid_images > 0:
            captions = [(f"original: {item.id}", image)] + [
                (name if row[name] is None else f"{name}: {row[name]['psnr']:.1f} dB", panels[name]) for name in PATHS
            ]
            worst.append(((row["interposer"]["psnr"], len(rows)), item.id, shrink_panels(captions)))
            worst.sort(key=lambda entry: entry[0])
            del worst[grid_images:]
    if not rows:
        raise InterposerError(f"None of the {len(items)} images could be read: {skipped}")
    labels = list(dict.fromkeys(i.folder for i in items))
    overall = summarise(rows, "all")
    report = {
        "direction": dirn.name, "label": label,
        "weights": {"path": source or str(weights.path), "version": weights.version,
                    "constructor": weights.config.to_dict(),
                    "training": json.loads(weights.metadata.get("training", "null"))},
        "vaes": {k: v.describe() for k, v in vaes.items()}, "max_side": max_side,
        "linear_fit": "least squares on the training latents" if linear is not None else None,
        "metrics": METRIC_NOTES,
        "images": len(rows), "skipped": skipped,
        "mean": overall["mean"], "gap_to_bridge": overall["gap_to_bridge"], "worst": overall["worst"],
        "folders": [summarise([r for r in rows if r["folder"] == f], f) for f in labels],
        "grid": [ident for _, ident, _ in worst],
        "per_image": rows,
    }  # fmt: skip
    write_text(out / "report.json", json.dumps(report, indent=1))
    write_text(out / "report.md", markdown(report))
    grid_rows = [labelled_grid(panels, out / f"grid-{n:03d}.png") for n, (_, _, panels) in enumerate(worst)]
    if grid_rows:
        stack_rows(grid_rows, out / "grid.png")
    for row_file in grid_rows:
        row_file.unlink()
    return report


Panels = list[tuple[str, torch.Tensor | None]]


def shrink_panels(panels: Panels, side: int = 256) -> Panels:
    """Grid panels no larger than ``side`` (area downscaling), ``None`` panels kept."""

    def shrink(t: torch.Tensor) -> torch.Tensor:
        h, w = t.shape[-2:]
        ratio = side / max(h, w)
        return t if ratio >= 1 else F.interpolate(t, (round(h * ratio), round(w * ratio)), mode="area")

    return [(label, None if p is None else shrink(p)) for label, p in panels]


def stack_rows(rows: list[Path], path: Path) -> None:
    """Stack grid rows (PNG files) into one image, top to bottom."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in rows]
    grid = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), (32, 32, 32))
    top = 0
    for image in images:
        grid.paste(image, (0, top))
        top += image.height
    grid.save(path)


def _columns(report: dict) -> list[dict]:
    """The summaries shown side by side: all images, then each folder (only "all" with one folder)."""
    overall = {"folder": "all", "images": report["images"], "mean": report["mean"],
               "gap_to_bridge": report["gap_to_bridge"], "worst": report["worst"]}  # fmt: skip
    return [overall] + (report["folders"] if len(report["folders"]) > 1 else [])


def _cell(value: dict | None, key: str, digits: int) -> str:
    return "n/a" if value is None or value[key] is None else f"{value[key]:.{digits}f}"


def markdown(report: dict) -> str:
    """report.md: one table per metric (paths x folders), the worst image per folder, then every image."""
    w = report["weights"]
    columns = _columns(report)
    folders = report["folders"]
    label = f" ({report['label']})" if report["label"] else ""
    where = f" in {len(folders)} folders" if len(folders) > 1 else ""
    lines = [
        f"# {report['direction']} on {report['images']} images{where}{label}",
        "",
        f"Weights: `{w['path']}` ({w['version']}, ch_mid {w['constructor']['ch_mid']}, "
        f"{w['constructor']['blocks']} blocks). Images at max side {report['max_side']} px.",
        "VAEs: " + ", ".join(f"{k}: {v['kind']} `{v['source']}`" for k, v in report["vaes"].items()) + ".",
        "",
        "Each image is encoded by the source VAE, brought to the target space by each path, decoded by the "
        "target VAE and compared with the original. *all*: the mean over every image (each folder weighted "
        "by its number of images).",
    ]  # fmt: skip
    header = "| path | " + " | ".join(f"{c['folder']} ({c['images']})" for c in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    tables = (
        ("psnr", 2, "PSNR (dB, higher is better)"),
        ("ssim", 3, "SSIM (higher is better)"),
        ("delta_rgb", 2, "Mean ΔRGB (0–255, lower is better)"),
    )
    for key, digits, title in tables:
        lines += ["", f"## {title}", ""]
        if key == "delta_rgb":
            lines += ["The mean absolute difference between the per-channel RGB means of the decoded image and "
                      "of the original: a colour cast, which PSNR and SSIM barely register.", ""]  # fmt: skip
        lines += [header, rule]
        for name in PATHS:
            lines.append(f"| {name} | " + " | ".join(_cell(c["mean"][name], key, digits) for c in columns) + " |")
        if key == "psnr":
            gaps = " | ".join(f"**{signed(c['gap_to_bridge'])}**" for c in columns)
            lines.append(f"| **interposer − VAE bridge** | {gaps} |")
    lines += ["", "## Worst image (lowest interposer PSNR)", "",
              "| folder | image | interposer PSNR | VAE bridge PSNR | interposer − bridge | interposer ΔRGB |",
              "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for c in [columns[0], *(folders if len(folders) > 1 else [])]:
        bad = c["worst"]
        if bad is None:
            lines.append(f"| {c['folder']} | (no readable images) | | | | |")
        else:
            lines.append(f"| {c['folder']} | {bad['image']} | {bad['psnr']:.2f} | {bad['bridge_psnr']:.2f} | "
                         f"{signed(bad['gap_to_bridge'])} | {bad['delta_rgb']:.2f} |")  # fmt: skip
    if report["grid"]:
        lines += ["", f"grid.png, worst first: {', '.join(report['grid'])}."]
    lines += ["", "## Per image, PSNR (dB)", "",
              "| image | " + " | ".join(PATHS) + " | interposer − bridge | interposer ΔRGB |",
              "|---|" + "---:|" * (len(PATHS) + 2)]  # fmt: skip
    for row in report["per_image"]:
        lines.append(f"| {row['image']} | " + " | ".join(_cell(row[n], "psnr", 2) for n in PATHS)
                     + f" | {signed(row['gap_to_bridge'])} | {row['interposer']['delta_rgb']:.2f} |")  # fmt: skip
    if report["skipped"]:
        lines += ["", f"Skipped (unreadable): {', '.join(report['skipped'])}"]
    return "\n".join(lines) + "\n"


def _console_unicode() -> bool:
    """Whether stdout can show "−" and "Δ" (a Windows console redirected to a file may be cp1252)."""
    try:
        "\u2212\u0394".encode(sys.stdout.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def summary(report: dict, unicode: bool | None = None) -> str:
    """The printed summary: mean PSNR / SSIM / ΔRGB per path for all images and per folder, the
    signed gap to the bridge, and the worst image of each. ``unicode=None``: as stdout allows."""
    if unicode is None:
        unicode = _console_unicode()
    minus, delta = ("\u2212", "\u0394") if unicode else ("-", "d")
    columns = _columns(report)
    width = 20
    folders = report["folders"]
    where = f" in {len(folders)} folders" if len(folders) > 1 else ""
    lines = [
        f"{report['direction']}, mean of {report['images']} images{where} (PSNR dB / SSIM / mean {delta}RGB 0-255):",
        f"  {'':<24}" + "".join(f"{c['folder']} ({c['images']})".ljust(width) for c in columns).rstrip(),
    ]
    for name in PATHS:
        cells = []
        for c in columns:
            v = c["mean"][name]
            cells.append("n/a" if v is None else f"{v['psnr']:5.2f} {v['ssim']:.3f} {v['delta_rgb']:5.2f}")
        lines.append(f"  {name:<24}" + "".join(cell.ljust(width) for cell in cells).rstrip())
    gaps = "".join(f"{signed(c['gap_to_bridge'], minus=minus):>5} dB".ljust(width) for c in columns)
    lines.append(f"  {'interposer ' + minus + ' bridge':<24}" + gaps.rstrip())
    lines.append("  worst image (lowest interposer PSNR):")
    shown = [c for c in [columns[0], *(folders if len(folders) > 1 else [])] if c["worst"] is not None]
    names = max(len(c["worst"]["image"]) for c in shown) if shown else 0
    for c in shown:
        bad = c["worst"]
        lines.append(f"    {c['folder']:<12} {bad['image']:<{names}}  {bad['psnr']:5.2f} dB "
                     f"(bridge {bad['bridge_psnr']:.2f}, {signed(bad['gap_to_bridge'], minus=minus)})")  # fmt: skip
    return "\n".join(lines)
