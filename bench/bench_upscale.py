"""Hires upscaling in latent space vs the pixel route, side by side in one run.

For a hires pass at 2x (512 -> 1024 and 1024 -> 2048 px images, latents /8):

* ``latent bilinear``: the webui's ``Latent`` upscaler (``F.interpolate``), blurry but free;
* ``learned``: ``Latent (NN)`` in one family, city96's v2.1 upscaler layout (64 channels, 16 convs)
  through :class:`interposer.Converter`, as the webui runs it;
* ``learned + interposer``: ``Latent (NN)`` across families (SDXL -> SD1.5): interposer, then upscaler;
* ``pixel route``: what a pixel upscaler costs in the webui: full VAE decode (diffusers
  ``AutoencoderKL``, SD architecture) -> Lanczos 2x (PIL, on the CPU, as the webui's Lanczos upscaler)
  -> full VAE encode. Across families it is the same work (one VAE decodes, the other encodes).

Random weights cost the same time as real ones. Ratios are against ``learned``; absolute times only
mean something from a GPU.

    python bench/bench_upscale.py                  # CPU
    python bench/bench_upscale.py --device cuda    # GPU (fp16 by default there)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from harness import DTYPES, device_label, run_case, sd_vae  # noqa: E402

METHODS = ("latent_bilinear", "learned", "learned_interposer", "pixel_route")
NAMES = {v: k for k, v in DTYPES.items()}


def build_latent_bilinear(device, dtype):
    return (lambda z: F.interpolate(z, scale_factor=2.0, mode="bilinear")), 0


def _converter(device, dtype, folder):
    from interposer import Converter, ModelCache, WeightsQuery

    query = WeightsQuery(folders=(folder,), allow_download=False)
    return Converter(weights=query, device=str(device), precision=NAMES[dtype], cache=ModelCache())


def build_learned(device, dtype, folder):
    from interposer.upscaler_model import LatentUpscalerV2

    converter = _converter(device, dtype, folder)
    return (lambda z: converter.upscale(z, "v1", factor=2.0)), sum(p.numel() for p in LatentUpscalerV2().parameters())


def build_learned_interposer(device, dtype, folder):
    from interposer import InterposerV4
    from interposer.upscaler_model import LatentUpscalerV2

    converter = _converter(device, dtype, folder)
    params = sum(p.numel() for p in LatentUpscalerV2().parameters())
    params += sum(p.numel() for p in InterposerV4().parameters())
    return (lambda z: converter.run_convert_upscale(z, "xl", "v1", factor=2.0)[0]), params


def build_pixel_route(device, dtype):
    import diffusers
    import numpy as np
    from PIL import Image

    first, hires = sd_vae(diffusers).to(device, dtype).eval(), sd_vae(diffusers).to(device, dtype).eval()

    def route(z):
        image = ((first.decode(z.to(dtype) / 0.13025).sample + 1) / 2).clamp(0, 1)
        pixels = (image[0].permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)
        pil = Image.fromarray(pixels)
        big = pil.resize((pil.width * 2, pil.height * 2), Image.LANCZOS)
        tensor = torch.from_numpy(np.asarray(big).copy()).permute(2, 0, 1)[None].to(device, dtype) / 127.5 - 1
        return hires.encode(tensor).latent_dist.mean * 0.18215

    params = sum(p.numel() for p in first.decoder.parameters()) + sum(p.numel() for p in hires.encoder.parameters())
    return route, params


def write_random_weights(folder: Path) -> None:
    """Published-layout files with random weights under the names the webui looks up."""
    from interposer import InterposerV4, direction, save_weights
    from interposer.upscaler_model import LatentUpscalerV2
    from interposer.upscalers import upscaler

    model = InterposerV4()
    save_weights(folder / direction("xl-to-v1").filename(), model.state_dict(), model.config,
                 direction=direction("xl-to-v1"))  # fmt: skip
    spec = upscaler("v1", 2.0)
    up = LatentUpscalerV2(factor=2.0)
    with torch.no_grad():  # keep activations finite over 18 layers of random convs (fp16 would overflow)
        for p in up.parameters():
            p.mul_(0.5)
    save_weights(folder / spec.filename(), up.state_dict(), up.config, direction=spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=tuple(DTYPES), help="default: fp16 on cuda, fp32 on cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="first-pass image sizes (px)")
    parser.add_argument("--repeats", type=int, help="timed runs per case (default: 20 on cuda, 3 on cpu)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    precision = args.precision or ("fp16" if args.device.startswith("cuda") else "fp32")
    repeats = args.repeats or (20 if args.device.startswith("cuda") else 3)
    print(f"device: {device_label(args.device)}, torch {torch.__version__}, {precision}, median of {repeats} runs, "
          "batch 1, hires 2x")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_random_weights(Path(tmp))
        for size in args.sizes:
            base = None
            for method in ("learned", *[m for m in args.methods if m != "learned"]):
                if method not in args.methods and method != "learned":
                    continue
                options = {"folder": tmp} if method.startswith("learned") else {}
                result = run_case(f"bench_upscale:build_{method}", options, (1, 4, size // 8, size // 8),
                                  args.device, precision, repeats)  # fmt: skip
                base = base or result["ms"]
                result.update(method=method, size=f"{size}->{2 * size}", ratio=result["ms"] / base)
                rows.append(result)
                print(f"{size:>5}->{2 * size:<5}px  {method:<19} {result['ms']:10.1f} ms  {result['ratio']:9.2f}x "
                      f"vs learned  {result['params'] / 1e6:7.2f} M params  peak +{result['peak_mib']:8.1f} MiB",
                      flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_label(args.device), "precision": precision,
                                               "rows": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
