"""``python -m interposer``: list, download, convert (and upscale) and compare, without the webui.

Every failure a user can cause (a bad path, an unwritable output, a device this torch lacks, a file
that is not an image) ends in one ``error: ...`` line and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .directions import BUNDLED_TAG, HUB_REVISION, Direction, bundled_directions, direction, published_directions
from .errors import InterposerError
from .lookup import bundled_path
from .runtime import ORDERS, PRECISIONS, Converter
from .safetensors_header import read_safetensors_header
from .spaces import SPACES, get_space
from .upscalers import PUBLISHED_FACTORS, UpscalerSpec, parse_filename, published_upscalers, upscaler
from .weights import (
    Spec,
    WeightsQuery,
    download_from_hub,
    find_local,
    load_weights,
    quarantine,
    upscaler_factor,
)

ENV_WEIGHTS_DIR = "INTERPOSER_WEIGHTS_DIR"


def default_weight_folders() -> list[str]:
    """``$INTERPOSER_WEIGHTS_DIR`` (``os.pathsep``-separated), then the webui's
    ``models/LatentInterposer`` when this checkout sits in a webui's ``extensions/`` folder."""
    folders = [p for p in os.environ.get(ENV_WEIGHTS_DIR, "").split(os.pathsep) if p]
    repo = Path(__file__).resolve().parent.parent
    if repo.parent.name == "extensions":
        folders.append(str(repo.parent.parent / "models" / "LatentInterposer"))
    return folders


def _verbose_parent() -> argparse.ArgumentParser:
    """``-v`` accepted before and after the subcommand (``python -m interposer list -v``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")
    return parent


def _add_lookup_options(parser: argparse.ArgumentParser) -> None:
    """Where published files are looked up (every command that finds weights)."""
    group = parser.add_argument_group("weights")
    group.add_argument(
        "--weights-dir", metavar="DIR", action="append", default=None,
        help=f"folder to look in for NAME or VERSION/NAME (repeatable; default: ${ENV_WEIGHTS_DIR})",
    )  # fmt: skip
    group.add_argument("--no-download", action="store_true", help="never contact the hub (its cache is still used)")
    group.add_argument("--revision", default=HUB_REVISION, help="hub revision (branch, tag or commit)")
    group.add_argument("--repo", default=None, help="hub repository (default: city96's interposer/upscaler repos)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="FILE", help="use this interposer file instead of looking one up")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="default: fp16 on GPU, fp32 on CPU")


def _query(args: argparse.Namespace) -> WeightsQuery:
    folders = args.weights_dir if args.weights_dir is not None else default_weight_folders()
    return WeightsQuery(
        path=getattr(args, "weights", None),
        upscaler_path=getattr(args, "upscaler_weights", None),
        folders=tuple(folders),
        allow_download=not args.no_download,
        revision=args.revision,
        repo_id=args.repo,
    )


def _direction(args: argparse.Namespace) -> Direction:
    if getattr(args, "direction", None):
        chosen = direction(args.direction)
        for flag, implied in (("src", chosen.src), ("dst", chosen.dst)):
            value = getattr(args, flag, None)
            if value and get_space(value).name != implied.name:
                raise InterposerError(f"--{flag} {value} contradicts --direction {args.direction}; give one of them.")
        return chosen
    if not (args.src and args.dst):
        raise InterposerError("Give --src and --dst (e.g. --src xl --dst v1) or --direction xl-to-v1.")
    return direction(args.src, args.dst)


def _spec_name(name: str) -> Spec:
    """A download/list name: ``xl-to-v1`` (an interposer) or ``v1-x2.0`` (an upscaler)."""
    return direction(name) if "-to-" in name.lower() else upscaler(name)


# --------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    query = _query(args)
    print(f"Weights folders: {', '.join(query.folders) or '(none; set --weights-dir or $' + ENV_WEIGHTS_DIR + ')'}")
    sections: list[tuple[str, str, list[Spec]]] = [
        ("Interposers", "direction", list(published_directions())),
        ("Latent upscalers", "file", list(published_upscalers())),
    ]
    for title, column, specs in sections:
        first = specs[0]
        print(f"\n{title} ({args.repo or first.hub_repo_id} @ {args.revision}, {first.default_version}):")
        rows = [(column, "available", "source")]
        for spec in specs:
            label = spec.filename() if isinstance(spec, UpscalerSpec) else spec.name
            local = find_local(spec, query.folders)
            cached = None if local is not None else _hub_cache_path(spec, args)
            if local is not None:
                rows.append((label, "yes", f"folder: {local}{_trained_note(local)}"))
            elif cached:
                rows.append((label, "yes", f"hub cache: {cached}"))
            else:
                rows.append((label, "no", f"hub (download): {spec.hub_url(args.revision, args.repo)}"))
        _print_rows(rows)
    print(f"\nInterposers trained by this project (bundled with the extension, {BUNDLED_TAG}; docs/models.md):")
    rows = [("direction", "available", "source")]
    for dirn in bundled_directions():
        local = find_local(dirn, query.folders)
        bundled = bundled_path(dirn)
        if local is not None:
            rows.append((dirn.name, "yes", f"folder: {local}{_trained_note(local)} (used instead of the bundled file)"))
        elif bundled is not None and bundled.is_file():
            rows.append((dirn.name, "yes", f"bundled: {bundled}"))
        else:
            rows.append((dirn.name, "no", f"bundled file missing ({bundled}): update or reinstall the extension"))
    _print_rows(rows)
    custom = [(_custom_label(path, meta), "yes", f"trained, {meta.get('version', 'custom')}: {path}")
              for path, meta in _custom_files(query.folders)]  # fmt: skip
    if custom:
        print("\nTrained files (other tags):")
        _print_rows([("name", "available", "source"), *custom])
    return 0


def _print_rows(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    for name, available, source in rows:
        print(f"{name:<{width}}  {available:<9}  {source}")


def _trained_note(path: Path) -> str:
    """`` (trained, tag ...)`` for an exported file under a published name: it is not city96's file."""
    try:
        meta = read_safetensors_header(path)[1]
    except InterposerError as exc:
        return f" (unreadable: {exc})"
    if meta.get("trained") == "true" or "training" in meta:
        return f" (trained here, not the published file; tag {meta.get('version', '?')})"
    return ""


def _custom_label(path: Path, meta: dict[str, str]) -> str:
    parsed = parse_filename(path.name)
    if parsed is not None:
        return path.name
    return f"{meta.get('src', '?')}-to-{meta.get('dst', '?')}"


def _hub_cache_path(spec: Spec, args: argparse.Namespace) -> str | None:
    from . import hub

    try:
        found = hub.cached(spec.hub_file(args.revision, args.repo))
    except InterposerError:
        return None
    return str(found) if found else None


def _custom_files(folders: Sequence[str]) -> list[tuple[Path, dict[str, str]]]:
    """Trained files in the weights folders with a tag other than the published one (either kind)."""
    found = []
    for folder in folders:
        root = Path(folder)
        candidates = [*root.glob("**/*-to-*_interposer-*.safetensors"), *root.glob("**/latent-upscaler-*.safetensors")]
        for path in sorted(set(candidates)):
            if path.name.endswith("_interposer-v4.0.safetensors"):
                continue
            parsed = parse_filename(path.name)
            if parsed is not None and parsed[0] == "v2.1":
                continue
            try:
                found.append((path, read_safetensors_header(path)[1]))
            except InterposerError as exc:
                print(f"warning: {exc}", file=sys.stderr)
    return found


def cmd_download(args: argparse.Namespace) -> int:
    names = args.names or ["xl-to-v1", "v1-to-xl"]
    expand = {"all": [*published_directions(), *published_upscalers()], "upscalers": published_upscalers(),
              "interposers": published_directions()}  # fmt: skip
    targets: list[Spec] = []
    for name in names:
        targets += expand.get(name.lower()) or [_spec_name(name)]
    folder = args.dir or next(iter(default_weight_folders()), None)
    failures = 0
    for spec in targets:
        subfolder = spec.hub_subfolder
        where = (str(Path(folder) / subfolder) if subfolder else folder) if folder else "the Hugging Face cache"
        bundled = bundled_path(spec)
        if bundled is not None:  # nothing to fetch: it is in the package (or the package is damaged)
            if bundled.is_file():
                print(f"{spec.name}: bundled with the extension, nothing to download ({bundled})")
            else:
                failures += 1
                print(f"error: {spec.name}: the bundled file {bundled} is missing: update or reinstall the "
                      "extension.", file=sys.stderr)  # fmt: skip
            continue
        print(f"{spec.name}: downloading {spec.filename()} into {where}")
        try:
            path = download_from_hub(spec, local_dir=folder, revision=args.revision, repo_id=args.repo)
        except InterposerError as exc:  # report each failure, keep going with the others
            failures += 1
            print(f"error: {spec.name}: {_download_advice(spec, exc, folder, args)}", file=sys.stderr)
            continue
        try:
            load_weights(path, spec)
        except InterposerError as exc:
            failures += 1
            print(f"error: {exc} The file was {quarantine(path)}.", file=sys.stderr)
            continue
        print(f"{spec.name}: ok, {path}")
    return 1 if failures else 0


def _download_advice(spec: Spec, exc: InterposerError, folder: str | None, args: argparse.Namespace) -> str:
    from . import hub

    if not isinstance(exc, hub.HubUnreachableError):
        return str(exc)
    target = folder or "a weights folder"
    urls = spec.hub_file(args.revision, args.repo).urls_text
    return (
        f"{spec.filename()} could not be downloaded: {exc}. Get it from {urls} "
        f"and put it in {target}. {hub.mirror_hint()}"
    )


def cmd_convert(args: argparse.Namespace) -> int:
    from .latent_io import read_latents, write_latents

    _check_output(args.output)
    src, dst, dirn = _convert_spaces(args)
    raw = True if args.raw else False if args.scaled else None
    latent_file = read_latents(args.input, raw=raw, key=args.key)
    converter = Converter(weights=_query(args), device=args.device, precision=args.precision)
    scaled = not latent_file.raw
    tensor = latent_file.tensor
    meta: dict[str, str] = {"convention": "raw" if latent_file.raw else "scaled"}
    if args.upscale is None:
        converted, report = converter.run(tensor, dirn, scaled=scaled)
        reports = [report]
        meta.update(direction=dirn.name, weights=report.version)
    else:
        if args.upscaler_weights:
            factor = upscaler_factor(args.upscaler_weights, args.upscale)
            converter = converter.with_options(upscale_factors=(factor,))
        converted, reports = converter.run_convert_upscale(
            tensor, src, dst, factor=args.upscale, scaled=scaled, order=args.order
        )
        meta.update(upscale=repr(args.upscale), steps=[r.direction for r in reports], src=src, dst=dst)
    out = write_latents(args.output, converted, latent_file, {"interposer": json.dumps(meta)})
    for report in reports:
        print(report)
    print(f"{meta['convention']} latents written to {out}")
    return 0


def _convert_spaces(args: argparse.Namespace) -> tuple[str, str, Direction | None]:
    if not args.direction and args.src and args.dst:
        src, dst = get_space(args.src).name, get_space(args.dst).name
        if src == dst:
            if args.upscale is None:
                raise InterposerError(f"--src and --dst are both {src}: nothing to convert (add --upscale FACTOR).")
            return src, dst, None
    dirn = _direction(args)
    return dirn.src.name, dirn.dst.name, dirn


def _check_output(path: str) -> None:
    """Fail before any work when the output cannot be written (a file in the way, no permission)."""
    target = Path(path)
    parent = target.parent
    blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise InterposerError(f"Cannot write {target}: {blocker} is a file, not a folder.")
    if target.is_dir():
        raise InterposerError(f"Cannot write {target}: it is a folder; give a file name.")
    if blocker is not None and not os.access(blocker, os.W_OK | os.X_OK):
        raise InterposerError(f"Cannot write {target}: no permission to write in {blocker}.")


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import run_compare

    dirn = _direction(args)
    out = args.out or str(Path(args.out_dir) / f"compare_{dirn.name}_{Path(args.image).stem}.png")
    _check_output(out)
    converter = Converter(weights=_query(args), device=args.device, precision=args.precision)
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
    verbose = _verbose_parent()
    parser = argparse.ArgumentParser(
        prog="python -m interposer", parents=[verbose],
        description="Convert Stable Diffusion latents between model families (SD1.x/2.x, SDXL, SD3, FLUX.1, "
        "Stable Cascade) with city96's v4 interposer weights, and upscale them with his v2.1 latent upscalers.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[verbose], help="published files, where each comes from, and trained files")
    _add_lookup_options(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("download", parents=[verbose], help="fetch published weights into a folder")
    p.add_argument(
        "names", nargs="*", metavar="NAME",
        help="interposer directions (xl-to-v1), upscalers (v1-x2.0), 'interposers', 'upscalers' or 'all'; "
        "default: xl-to-v1 v1-to-xl",
    )  # fmt: skip
    p.add_argument("--dir", help="target folder (interposers land in DIR/v4.0/, upscalers in DIR/); default: first "
                   "weights folder, else the Hugging Face cache")  # fmt: skip
    p.add_argument("--revision", default=HUB_REVISION)
    p.add_argument("--repo", default=None, help="hub repository (default: city96's repo of each kind)")
    p.set_defaults(func=cmd_download)

    spaces = ", ".join(SPACES)
    factors = ", ".join(f"{f:g}" for f in PUBLISHED_FACTORS)
    for name, helptext in (
        ("convert", "convert (and/or upscale) a latent file: one-tensor .safetensors or ComfyUI .latent"),
        ("compare", "demo: TAESD-encode an image, cross spaces four ways, write a grid and print PSNRs"),
    ):
        p = sub.add_parser(name, parents=[verbose], help=helptext, description=helptext)
        if name == "convert":
            p.add_argument("input", help="latent file to read")
            p.add_argument("output", help="file to write (same kind as the input)")
            p.add_argument("--key", help="tensor to convert when the safetensors file holds several")
            kind = p.add_mutually_exclusive_group()
            kind.add_argument("--raw", action="store_true", help="latents are raw VAE output (default for .latent)")
            kind.add_argument(
                "--scaled", action="store_true", help="latents are model-space (default for .safetensors)"
            )
            p.add_argument(
                "--upscale", type=float, metavar="FACTOR",
                help=f"also upscale by FACTOR with learned latent upscalers (published: {factors}; others are "
                "reached by chaining and an exact resize); same --src and --dst: upscale only",
            )  # fmt: skip
            p.add_argument("--upscaler-weights", metavar="FILE", help="use this upscaler file")
            p.add_argument("--order", choices=ORDERS, default="convert-first",
                           help="across families: interposer first (default) or upscaler first")  # fmt: skip
        else:
            p.add_argument("image", help="image file")
            p.add_argument("--out", help="grid PNG to write (default: OUT_DIR/compare_<direction>_<image>.png)")
            p.add_argument("--out-dir", default=".", help="folder for the default grid name (default: here)")
            p.add_argument("--taesd-dir", help="folder with TAESD weights (default: download from the hub)")
            p.add_argument("--max-side", type=int, default=512, help="downscale the image to this longer side first")
        p.add_argument("--src", help=f"source space ({spaces})")
        p.add_argument("--dst", help=f"target space ({spaces})")
        p.add_argument("--direction", help="SRC-to-DST instead of --src/--dst")
        _add_run_options(p)
        _add_lookup_options(p)
        p.set_defaults(func=cmd_convert if name == "convert" else cmd_compare)
    return parser


def run_command(args: argparse.Namespace, verbose_level: int = logging.DEBUG) -> int:
    """Run ``args.func``: every error a user can cause gets one line and exit code 1, not a traceback."""
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=verbose_level if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except InterposerError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:  # an unwritable output, a full disk, a folder where a file should be
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
    except MemoryError:
        print("error: out of memory; use smaller inputs (or --max-side) or another --device.", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))
