"""``python -m training``: encode, train, eval and export interposers (each command has --help)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from interposer.cli import run_command
from interposer.errors import InterposerError
from interposer.spaces import SPACES, get_space

from .config import preset_help
from .vaes import PRECISIONS

SPACE_NAMES = ", ".join(SPACES)


def _add_vae_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("VAEs")
    g.add_argument(
        "--vae", action="append", metavar="FAMILY=SPEC",
        help="the VAE of a family (repeatable): 'taesd' (default), a TAESD folder, an A1111 models/VAE file "
        "(.safetensors), a diffusers folder, or a hub id org/name[/subfolder]",
    )  # fmt: skip
    g.add_argument("--taesd-dir", help="folder with taesd*_encoder/decoder.safetensors (default: the hub)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument(
        "--precision", default="auto", choices=PRECISIONS,
        help="VAE precision: auto = fp32 on the CPU, bf16 on a GPU (fp16 only where bf16 is missing; "
        "non-finite results are redone in fp32)",
    )  # fmt: skip
    g.add_argument("--no-download", action="store_true", help="never contact the Hugging Face hub")


def _load_vaes(args: argparse.Namespace, families: list[str], recorded: dict | None = None) -> dict:
    """VAEs by family: --vae, else what the data manifest recorded, else TAESD."""
    from .vaes import load_vae, parse_vae_specs

    specs = parse_vae_specs(args.vae)
    unknown = sorted(set(specs) - set(families))
    if unknown:
        raise InterposerError(f"--vae given for {', '.join(unknown)}, which is not among {', '.join(families)}.")
    vaes = {}
    for family in families:
        spec = specs.get(family)
        if spec is None and recorded and family in recorded and not args.taesd_dir:
            spec = recorded[family]["source"]
        vaes[family] = load_vae(spec, family, taesd_dir=args.taesd_dir, device=args.device,
                                precision=args.precision, allow_download=not args.no_download)  # fmt: skip
    return vaes


# --------------------------------------------------------------------------- encode


def cmd_encode(args: argparse.Namespace) -> int:
    from .encode import EncodeSettings, encode_folder

    families = list(dict.fromkeys(get_space(f).name for f in args.families))
    if len(families) < 2:
        raise InterposerError("Give at least two families to pair (e.g. --families v1 xl).")
    for folder in args.images:
        if not Path(folder).is_dir():
            raise InterposerError(f"Image folder {folder} does not exist.")
    settings = EncodeSettings(
        crop=args.crop, crops_per_image=args.crops_per_image, min_scale=args.min_scale, flip=not args.no_flip,
        max_side=args.max_side, holdout=args.holdout, holdout_crops=args.holdout_crops, seed=args.seed,
        factors=tuple(sorted(set(args.factors or ()))), rgb=args.rgb, hue=args.hue,
    )  # fmt: skip
    vaes = _load_vaes(args, families)
    manifest = encode_folder(args.images, args.out, vaes, settings, shard_images=args.shard_images,
                             batch=args.batch, progress=not args.quiet)  # fmt: skip
    print(
        f"{args.out}: {len(manifest['train_images'])} training images ({manifest['crops']} crops of {args.crop} px), "
        f"{len(manifest['holdout'])} held out, {len(manifest['skipped'])} skipped; families {', '.join(families)}."
    )
    for name, why in manifest["skipped"].items():
        print(f"  skipped {name}: {why}")
    return 0


# --------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config, parse_overrides
    from .train import train

    overrides = parse_overrides(args.set)
    for key in ("data", "src", "dst", "out", "steps", "batch", "lr", "minutes", "device"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.resume:
        if args.preset or args.config:
            raise InterposerError("--resume takes the configuration from the checkpoint; drop --preset/--config.")
        from .checkpoint import load_checkpoint
        from .train import resume_config

        cfg = resume_config(load_checkpoint(args.resume)[1]["config"], overrides)
    else:
        cfg = build_config(args.preset, args.config, overrides)
        if not args.print_config:
            get_space(cfg.src), get_space(cfg.dst)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    try:
        train(cfg, resume=args.resume, overrides=overrides, stop_at=args.stop_at, progress=not args.quiet)
    except KeyboardInterrupt:
        run = cfg.out or f"runs/{cfg.src}-to-{cfg.dst}"
        print(f"\ninterrupted; continue with: python -m training train --resume {run}", file=sys.stderr)
        return 130
    return 0


# --------------------------------------------------------------------------- eval


def _classify(
    paths: list[Path], tmp: str, ema: bool | None = None, given_direction: str | None = None
) -> list[tuple[str, Path, object, str]]:
    """(role, file, LoadedWeights, what was given) per weights argument; runs and checkpoints are
    exported first, so they are scored exactly as the exported file would be. Roles: upscaler,
    interposer, one-network."""
    from interposer.model import InterposerConfig
    from interposer.spaces import spatial_scale
    from interposer.weights import load_weights

    from .checkpoint import is_checkpoint
    from .evaluate import weights_direction
    from .export import export

    found = []
    for i, target in enumerate(paths):
        if not target.exists():
            raise InterposerError(f"{target} does not exist (give a weights file, a run folder or a checkpoint).")
        file = export(target, Path(tmp) / str(i), "eval", ema=ema) if is_checkpoint(target) else target
        weights = load_weights(file)
        if isinstance(weights.config, InterposerConfig):
            dirn = weights_direction(weights, given_direction)
            one = abs(weights.config.scale - spatial_scale(dirn.src, dirn.dst)) > 1e-6
            found.append(("one-network" if one else "interposer", file, weights, str(target)))
        else:
            found.append(("upscaler", file, weights, str(target)))
    return found


def cmd_eval_upscale(args: argparse.Namespace, found: list, manifest: dict | None) -> int:
    """``eval`` with upscalers (or a convert-and-upscale network) among the weights."""
    from interposer.directions import direction
    from interposer.upscalers import parse_filename

    from .evaluate_upscale import UpscaleModels, evaluate_upscale

    models = UpscaleModels()
    factors = set()
    for role, file, weights, given in found:
        if role == "upscaler":
            family = weights.metadata.get("space") or (parse_filename(file.name) or (None, None))[1]
            if family is None:
                raise InterposerError(f"Cannot tell which family the upscaler {given} is for (no metadata).")
            family = get_space(family).name
            if family in models.upscalers:
                first = models.sources[f"{family} upscaler"]
                raise InterposerError(f"Two {family} upscalers given ({first} and {given}): evaluate one at a time.")
            models.upscalers[family] = file
            models.sources[f"{family} upscaler"] = given
            factors.add(float(weights.config.factor))
        elif role == "interposer":
            models.interposer, models.sources["interposer"] = file, given
        else:
            models.one_network, models.sources["one network"] = file, given
    factor = args.factor or (factors.pop() if len(factors) == 1 else None)
    if factor is None:
        raise InterposerError("Upscalers of different factors given: pick one with --factor F.")
    if args.direction:
        dirn = direction(args.direction)
        src, dst = dirn.src.name, dirn.dst.name
    elif models.interposer is not None or models.one_network is not None:
        from .evaluate import weights_direction

        dirn = weights_direction(next(w for r, _, w, _ in found if r != "upscaler"), None)
        src, dst = dirn.src.name, dirn.dst.name
    elif len(models.upscalers) == 1:
        src = dst = next(iter(models.upscalers))
    else:
        raise InterposerError("Upscalers of two families given: say the route with --direction SRC-to-DST.")
    images = _upscale_images(args, manifest)
    vaes = _load_vaes(args, list(dict.fromkeys([src, dst])), manifest["vaes"] if manifest else None)
    route = src if src == dst else f"{src}-to-{dst}"
    out = Path(args.out or f"eval-{route}-x{factor:g}")
    report = evaluate_upscale(images, vaes, out, src=src, dst=dst, factor=factor, models=models,
                              max_side=args.max_side, device=args.device, grid_images=args.grid_images,
                              label=args.label or "")  # fmt: skip
    _print_upscale(report)
    print(f"Report: {out / 'report.md'}, {out / 'report.json'}; grid: {out / 'grid.png'}")
    return 0


def _upscale_images(args: argparse.Namespace, manifest: dict | None) -> list[tuple[str, str, Path]]:
    """(id, folder label, file) of the images an upscaling evaluation scores (the same choice, and the
    same refusal of training images, as the interposer evaluation)."""
    from .evaluate import eval_images

    return [(e.id, e.folder, e.path) for e in eval_images(args.data, args.images, args.allow_train_images)]


def cmd_eval_policies(args: argparse.Namespace, manifest: dict | None) -> int:
    """``eval DIR --policies ... --factor S``: the upscale policies at any scale, from a folder of
    upscalers of one family named like the published ones (``--tag``)."""
    from interposer.upscalers import parse_filename

    from .evaluate_upscale import UpscaleModels, evaluate_upscale

    folder = Path(args.weights[0])
    if len(args.weights) != 1 or not folder.is_dir() or not args.factor or not args.tag:
        raise InterposerError("--policies takes one folder of upscalers, --tag (their version) and --factor S.")
    found = [parse_filename(p.name) for p in sorted(folder.glob("latent-upscaler-*.safetensors"))]
    found = [f for f in found if f and f[0] == args.tag]
    families = sorted({f[1] for f in found})
    if len(families) != 1:
        raise InterposerError(f"{folder} must hold upscalers of one family with the tag {args.tag} (found {families}).")
    factors = tuple(sorted({f[2] for f in found}))
    models = UpscaleModels(upscaler_dir=folder, upscaler_tag=args.tag, upscaler_factors=factors,
                           policies=tuple(args.policies), sources={"upscalers": f"{folder} ({args.tag}, x"
                           + ", x".join(f"{f:g}" for f in factors) + ")"})  # fmt: skip
    family = get_space(families[0]).name
    vaes = _load_vaes(args, [family], manifest["vaes"] if manifest else None)
    out = Path(args.out or f"eval-{family}-policies-x{args.factor:g}")
    report = evaluate_upscale(_upscale_images(args, manifest), vaes, out, src=family, dst=family, factor=args.factor,
                              models=models, max_side=args.max_side, device=args.device,
                              grid_images=args.grid_images, label=args.label or "")  # fmt: skip
    _print_upscale(report)
    print(f"Report: {out / 'report.md'}, {out / 'report.json'}; grid: {out / 'grid.png'}")
    return 0


def _print_upscale(report: dict) -> None:
    route, count = f"{report['route']} x{report['factor']:g}", report["images"]
    print(f"{route}, mean of {count} images (PSNR dB / SSIM / colour error):")
    for name in report["routes"]:
        m = report["mean"][name]
        print(f"  {name:<24} {m['psnr']:6.2f}  {m['ssim']:.3f}  {m['color']:5.2f}")


def cmd_eval(args: argparse.Namespace) -> int:
    from .encode import read_manifest
    from .evaluate import eval_images, evaluate, fit_linear, summary, weights_direction

    manifest = read_manifest(args.data) if args.data else None
    if args.policies:
        return cmd_eval_policies(args, manifest)
    with tempfile.TemporaryDirectory() as tmp:
        # Runs and checkpoints are exported first, so they are scored exactly as the exported file would be.
        found = _classify([Path(w) for w in args.weights], tmp, args.ema, args.direction)
        if args.factor or any(role != "interposer" for role, *_ in found):
            return cmd_eval_upscale(args, found, manifest)
        if len(found) > 1:
            raise InterposerError("Give one interposer to evaluate (several weights are for upscaling evaluations).")
        _, weights_path, weights, given = found[0]
        images = eval_images(args.data, args.images, args.allow_train_images)
        dirn = weights_direction(weights, args.direction)
        vaes = _load_vaes(args, [dirn.src.name, dirn.dst.name], manifest["vaes"] if manifest else None)
        linear = fit_linear(args.data, dirn) if args.data else None
        out = Path(args.out or (Path(given) / "eval" if Path(given).is_dir() else f"eval-{dirn.name}"))
        report = evaluate(weights_path, images, vaes, out, dirn=dirn, linear=linear, max_side=args.max_side,
                          device=args.device, grid_images=args.grid_images, label=args.label or "",
                          source=given)  # fmt: skip
    print(summary(report))
    print(f"Report: {out / 'report.md'}, {out / 'report.json'}; grid: {out / 'grid.png'}")
    return 0


# --------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export, usage_note

    card = None
    if args.card:
        try:
            report = json.loads(Path(args.card).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InterposerError(f"--card {args.card}: not a readable eval report.json ({exc}).") from exc
        card = {"report": report, "licence": args.licence, "data_note": args.data_note}
    path = export(args.checkpoint, args.out_dir, args.tag, ema=args.ema, reverse=args.reverse, half=args.half,
                  card=card)  # fmt: skip
    print(f"Wrote {path}\n{usage_note(path, args.tag)}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from .card import cards_markdown

    print(cards_markdown(args.files), end="")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Retrain, evaluate and export latent interposers: encode -> train -> eval -> export.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("encode", help="image folder -> paired raw latent shards of two or more families",
                       description="Cut random crops from every image and encode each crop with every family's VAE "
                       "(raw latents). Resumable: run it again to finish or extend a folder.")  # fmt: skip
    p.add_argument("images", nargs="+", help="one or more folders of images (any format Pillow reads)")
    p.add_argument("out", help="output folder (shards + manifest.json)")
    p.add_argument("--families", nargs="+", required=True, metavar="FAMILY", help=f"two or more of {SPACE_NAMES}")
    p.add_argument("--crop", type=int, default=512, help="crop side in pixels, a multiple of 8 (default 512)")
    p.add_argument("--crops-per-image", type=int, default=8, help="default 8")
    p.add_argument("--min-scale", type=float, default=0.5, help="crops come from the image scaled by [min, 1]")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--hue", type=float, default=0.0, metavar="DEG",
                   help="turn each training crop's hue by a random angle up to this many degrees (default 0: "
                   "none); more colours than the images hold, for a target that must learn them all")  # fmt: skip
    p.add_argument("--max-side", type=int, default=1024, help="downscale images to this longer side first")
    p.add_argument(
        "--holdout", type=int, default=0, help="images per folder to keep out of training for eval (seeded pick)"
    )
    p.add_argument(
        "--factors",
        type=float,
        nargs="+",
        metavar="F",
        help="also encode each crop downscaled by these factors: upscaler training pairs (e.g. 1.5 2)",
    )
    p.add_argument("--rgb", action="store_true", help="also keep the crops (uint8) for image-space losses")
    p.add_argument("--holdout-crops", type=int, default=2, help="crops per held-out image for validation losses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-images", type=int, default=16, help="images per shard (the unit of resume)")
    p.add_argument("--batch", type=int, default=8, help="crops per VAE call")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_vae_options(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "train", help="train an interposer (config file + overrides; exact resume)",
        description="Train an InterposerV4 on encoded latents. Options come from the defaults (city96's v4 recipe), "
        "then --preset, then --config, then --set and the flags below.",
    )  # fmt: skip
    p.add_argument("--preset", help=preset_help())
    p.add_argument("--config", help="JSON file (or TOML on Python 3.11+) of options")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override options, e.g. --set lr=1e-3 blocks=6")
    p.add_argument("--data", help="folder written by encode")
    p.add_argument("--src", help=f"source family ({SPACE_NAMES})")
    p.add_argument("--dst", help="target family")
    p.add_argument("--out", help="run folder (default runs/SRC-to-DST)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--minutes", type=float, help="fit the whole run into this many minutes (sets steps)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--resume", metavar="RUN_OR_CHECKPOINT", help="continue a run exactly where it stopped")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="end this session after STEP (with a checkpoint)")
    p.add_argument("--print-config", action="store_true", help="print the resolved options as JSON and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="PSNR/SSIM/colour of every route: interposers (linear map, VAE bridge) and "
                       "upscalers (webui Latent, pixel route, learned)",
                       description="Decode every path with the target VAE and compare with the held-out images "
                       "(PSNR, SSIM, mean ΔRGB; the interposer's signed PSNR gap to the VAE bridge), per folder and "
                       "overall, with the worst image of each; writes report.md, report.json and grid.png "
                       "(worst images first). Given upscalers (or a convert-and-upscale network), it scores the "
                       "hires routes instead: the webui's Latent upscalers, the pixel route, the learned ones.",
                       )  # fmt: skip
    p.add_argument("weights", nargs="+",
                   help="an exported weights file, a run folder or a checkpoint; for upscaling: the upscaler(s), and "
                   "across families the interposer and/or a convert-and-upscale network")  # fmt: skip
    p.add_argument("--factor", type=float, help="upscaling evaluation at this factor (default: the upscaler's)")
    p.add_argument(
        "--policies",
        nargs="+",
        choices=("nearest", "at-least", "at-most"),
        help="score these upscale policies at --factor, from one folder of upscalers (--tag)",
    )
    p.add_argument("--tag", help="with --policies: the version tag of the upscaler files in the folder")
    p.add_argument("--data", help="encoded data: its held-out images, its VAEs, and the linear map's fit")
    p.add_argument("--images", action="extend", nargs="+", metavar="DIR",
                   help="evaluate on these folders (or files) instead of the held-out list; repeatable, "
                   "reported per folder")  # fmt: skip
    p.add_argument("--out", help="report folder (default: RUN/eval or eval-SRC-to-DST)")
    p.add_argument("--direction", help="SRC-to-DST, if the file does not say")
    p.add_argument("--max-side", type=int, default=512, help="downscale images to this longer side (default 512)")
    p.add_argument("--grid-images", type=int, default=4, help="rows in grid.png: the worst images (default 4)")
    p.add_argument("--label", help="a note for the report title")
    p.add_argument("--allow-train-images", action="store_true", help="do not refuse images used for training")
    ema = p.add_mutually_exclusive_group()
    ema.add_argument("--ema", dest="ema", action="store_true", default=None, help="checkpoint: the EMA weights")
    ema.add_argument("--no-ema", dest="ema", action="store_false", help="checkpoint: the raw weights")
    _add_vae_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "export", help="checkpoint -> {src}-to-{dst}_interposer-{tag}.safetensors",
        description="Write a weights file that `interposer` (webui, CLI, API) loads unchanged.",
    )  # fmt: skip
    p.add_argument("checkpoint", help="a checkpoint file or a run folder (its newest checkpoint)")
    p.add_argument("--tag", required=True, help="version tag in the file name; v4.0 = what the webui looks up")
    p.add_argument("--out-dir", default=".", help="folder to write into (default: here)")
    ema = p.add_mutually_exclusive_group()
    ema.add_argument("--ema", dest="ema", action="store_true", default=None, help="the EMA weights (default if kept)")
    ema.add_argument("--no-ema", dest="ema", action="store_false", help="the raw weights")
    p.add_argument("--reverse", action="store_true", help="the dst->src model of a reverse=true run")
    p.add_argument("--half", action="store_true", help="store fp16 tensors (half the size)")
    p.add_argument("--card", metavar="REPORT", help="an eval report.json of this run: put a model card into the file")
    p.add_argument("--licence", default="Apache-2.0", help="the card's licence of the weights (default Apache-2.0)")
    p.add_argument("--data-note", default="", help="the card's words on the training data and where it came from")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "card",
        help="print the model cards of exported files as Markdown",
        description="The held-out table and each file's card (export --card), as docs/models.md.",
    )
    p.add_argument("files", nargs="+", help="exported weights files with a model card")
    p.set_defaults(func=cmd_card)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv), logging.INFO)
