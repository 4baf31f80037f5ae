"""``python -m interposer``: list, download, convert and compare, without the webui."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .directions import (
    HUB_REPO_ID,
    HUB_REVISION,
    HUB_SUBFOLDER,
    WEIGHTS_VERSION,
    Direction,
    direction,
    published_directions,
)
from .errors import InterposerError
from .runtime import PRECISIONS, Converter
from .safetensors_header import read_safetensors_header
from .spaces import SPACES
from .weights import WeightsQuery, download_from_hub, find_local, load_weights, quarantine

ENV_WEIGHTS_DIR = "INTERPOSER_WEIGHTS_DIR"


def default_weight_folders() -> list[str]:
    """``$INTERPOSER_WEIGHTS_DIR`` (``os.pathsep``-separated), then the webui's
    ``models/LatentInterposer`` when this checkout sits in a webui's ``extensions/`` folder."""
    folders = [p for p in os.environ.get(ENV_WEIGHTS_DIR, "").split(os.pathsep) if p]
    repo = Path(__file__).resolve().parent.parent
    if repo.parent.name == "extensions":
        folders.append(str(repo.parent.parent / "models" / "LatentInterposer"))
    return folders


def _add_weight_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("weights")
    group.add_argument("--weights", metavar="FILE", help="use this weights file instead of looking one up")
    group.add_argument(
        "--weights-dir", metavar="DIR", action="append", default=None,
        help=f"folder to look in for NAME or v4.0/NAME (repeatable; default: ${ENV_WEIGHTS_DIR})",
    )  # fmt: skip
    group.add_argument("--no-download", action="store_true", help="never contact the hub (its cache is still used)")
    group.add_argument("--revision", default=HUB_REVISION, help="hub revision (branch, tag or commit)")
    group.add_argument("--repo", default=HUB_REPO_ID, help="hub repository of the published weights")


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="default: fp16 on GPU, fp32 on CPU")


def _query(args: argparse.Namespace) -> WeightsQuery:
    folders = args.weights_dir if args.weights_dir is not None else default_weight_folders()
    return WeightsQuery(
        path=getattr(args, "weights", None),
        folders=tuple(folders),
        allow_download=not args.no_download,
        revision=args.revision,
        repo_id=args.repo,
    )


def _direction(args: argparse.Namespace) -> Direction:
    if getattr(args, "direction", None):
        return direction(args.direction)
    if not (args.src and args.dst):
        raise InterposerError("Give --src and --dst (e.g. --src xl --dst v1) or --direction xl-to-v1.")
    return direction(args.src, args.dst)


# --------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    query = _query(args)
    print(f"Weights folders: {', '.join(query.folders) or '(none; set --weights-dir or $' + ENV_WEIGHTS_DIR + ')'}")
    print(f"Hub: {args.repo} @ {args.revision}, folder {HUB_SUBFOLDER}\n")
    rows = [("direction", "available", "source")]
    for dirn in published_directions():
        local = find_local(dirn, query.folders)
        if local is not None:
            rows.append((dirn.name, "yes", f"folder: {local}"))
            continue
        cached = _hub_cache_path(dirn, args)
        if cached:
            rows.append((dirn.name, "yes", f"hub cache: {cached}"))
        else:
            rows.append((dirn.name, "no", f"hub (download): {dirn.hub_url(args.revision, args.repo)}"))
    for path, meta in _custom_files(query.folders):
        label = f"{meta.get('src', '?')}-to-{meta.get('dst', '?')}"
        rows.append((label, "yes", f"trained, {meta.get('version', 'custom')}: {path}"))
    width = max(len(r[0]) for r in rows)
    for name, available, source in rows:
        print(f"{name:<{width}}  {available:<9}  {source}")
    return 0


def _hub_cache_path(dirn: Direction, args: argparse.Namespace) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(args.repo, f"{HUB_SUBFOLDER}/{dirn.filename()}", revision=args.revision)
    return found if isinstance(found, str) else None


def _custom_files(folders: Sequence[str]) -> list[tuple[Path, dict[str, str]]]:
    """Trained files (metadata says so) in the weights folders, whatever their version tag."""
    found = []
    for folder in folders:
        for path in sorted(Path(folder).glob("**/*-to-*_interposer-*.safetensors")):
            if path.name.endswith(f"_interposer-{WEIGHTS_VERSION}.safetensors"):
                continue
            try:
                found.append((path, read_safetensors_header(path)[1]))
            except InterposerError as exc:
                print(f"warning: {exc}", file=sys.stderr)
    return found


def cmd_download(args: argparse.Namespace) -> int:
    names = args.directions or ["xl-to-v1", "v1-to-xl"]
    targets = published_directions() if names == ["all"] else [direction(n) for n in names]
    folder = args.dir or next(iter(default_weight_folders()), None)
    failures = 0
    for dirn in targets:
        where = folder or "the Hugging Face cache"
        print(f"{dirn.name}: downloading {dirn.filename()} into {where}")
        try:
            path = download_from_hub(dirn, local_dir=folder, revision=args.revision, repo_id=args.repo)
        except Exception as exc:  # report each failure, keep going with the others
            failures += 1
            print(f"error: {dirn.name}: {exc}", file=sys.stderr)
            continue
        try:
            load_weights(path, dirn)
        except InterposerError as exc:
            failures += 1
            print(f"error: {exc} The file was {quarantine(path)}.", file=sys.stderr)
            continue
        print(f"{dirn.name}: ok, {path}")
    return 1 if failures else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .latent_io import read_latents, write_latents

    dirn = _direction(args)
    raw = True if args.raw else False if args.scaled else None
    latent_file = read_latents(args.input, raw=raw, key=args.key)
    converter = Converter(weights=_query(args), device=args.device, precision=args.precision)
    converted, report = converter.run(latent_file.tensor, dirn, scaled=not latent_file.raw)
    convention = "raw" if latent_file.raw else "scaled"
    meta = {"interposer": json.dumps({"direction": dirn.name, "convention": convention, "weights": report.version})}
    out = write_latents(args.output, converted, latent_file, meta)
    print(f"{report}\n{convention} latents written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import run_compare

    dirn = _direction(args)
    converter = Converter(weights=_query(args), device=args.device, precision=args.precision)
    out = args.out or f"compare_{dirn.name}_{Path(args.image).stem}.png"
    result = run_compare(
        args.image, dirn, converter, out, taesd_dir=args.taesd_dir, allow_download=not args.no_download,
        max_side=args.max_side,
    )  # fmt: skip
    print(f"PSNR against the original ({Path(args.image).name}, {dirn.name}, TAESD decoders):")
    for name, value in result.psnr.items():
        print(f"  {name:<14} " + ("n/a (channel counts differ)" if value is None else f"{value:6.2f} dB"))
    print(f"  (ceiling: the {dirn.dst.name} TAESD round trip of the original reaches {result.ceiling:.2f} dB)")
    print(f"Interposer: {result.report}")
    print(f"Grid written to {result.grid}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m interposer",
        description="Convert Stable Diffusion latents between model families (SD1.x/2.x, SDXL, SD3, FLUX.1, "
        "Stable Cascade) with city96's v4 interposer weights.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="directions, where each file comes from, and whether it is here")
    _add_weight_options(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("download", help="fetch published weights into a folder, with progress")
    p.add_argument(
        "directions", nargs="*", metavar="DIRECTION", help="e.g. xl-to-v1; 'all'; default: xl-to-v1 v1-to-xl"
    )
    p.add_argument("--dir", help=f"target folder (files land in DIR/{HUB_SUBFOLDER}/); default: first weights folder, "
                   "else the Hugging Face cache")  # fmt: skip
    p.add_argument("--revision", default=HUB_REVISION)
    p.add_argument("--repo", default=HUB_REPO_ID)
    p.set_defaults(func=cmd_download)

    spaces = ", ".join(SPACES)
    for name, helptext in (
        ("convert", "convert a latent file (one-tensor .safetensors or ComfyUI .latent) to another space"),
        ("compare", "demo: TAESD-encode an image, cross spaces four ways, write a grid and print PSNRs"),
    ):
        p = sub.add_parser(name, help=helptext, description=helptext)
        if name == "convert":
            p.add_argument("input", help="latent file to read")
            p.add_argument("output", help="file to write (same kind as the input)")
            p.add_argument("--key", help="tensor to convert when the safetensors file holds several")
            kind = p.add_mutually_exclusive_group()
            kind.add_argument("--raw", action="store_true", help="latents are raw VAE output (default for .latent)")
            kind.add_argument(
                "--scaled", action="store_true", help="latents are model-space (default for .safetensors)"
            )
        else:
            p.add_argument("image", help="image file")
            p.add_argument("--out", help="grid PNG to write (default: compare_<direction>_<image>.png)")
            p.add_argument("--taesd-dir", help="folder with TAESD weights (default: download from the hub)")
            p.add_argument("--max-side", type=int, default=512, help="downscale the image to this longer side first")
        p.add_argument("--src", help=f"source space ({spaces})")
        p.add_argument("--dst", help=f"target space ({spaces})")
        p.add_argument("--direction", help="SRC-to-DST instead of --src/--dst")
        _add_runtime_options(p)
        _add_weight_options(p)
        p.set_defaults(func=cmd_convert if name == "convert" else cmd_compare)
    return parser


def run_command(args: argparse.Namespace, verbose_level: int = logging.DEBUG) -> int:
    """Run ``args.func``: our own errors are written for users, so they get one line, not a traceback."""
    logging.basicConfig(level=verbose_level if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except InterposerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))
