"""How much does crossing latent spaces cost? Interposer vs TAESD bridge vs full SD VAE bridge.

Measured side by side in one run, on one device, at 512^2 and 1024^2 images (latents /8):

* interposer: the v4 network through :class:`interposer.Converter` (published layout);
* TAESD bridge: TAESD-XL decode + TAESD-v1 encode (what a "cheap" decode/encode costs);
* full VAE bridge: diffusers ``AutoencoderKL`` decode (SDXL config) + encode (SD config), the
  path A1111 takes today across families. Random weights cost the same time as real ones.

Each case runs in its own process (``bench/harness.py``) so that the peak-memory column is that
case's alone. Ratios are relative to the interposer in the same run. Absolute times are only
meaningful from a GPU.

    python bench/bench_conversion.py                  # CPU
    python bench/bench_conversion.py --device cuda    # GPU (fp16 by default there)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from harness import DTYPES, device_label, run_case, sd_vae  # noqa: E402

METHODS = ("interposer", "taesd_bridge", "vae_bridge")
NAMES = {v: k for k, v in DTYPES.items()}


def build_interposer(device, dtype, weights_file):
    from interposer import Converter, InterposerV4, ModelCache, WeightsQuery

    query = WeightsQuery(path=weights_file)
    converter = Converter(weights=query, device=str(device), precision=NAMES[dtype], cache=ModelCache())
    return (lambda z: converter.convert(z, "xl", "v1")), sum(p.numel() for p in InterposerV4().parameters())


def build_taesd_bridge(device, dtype, taesd_dir=None):
    from interposer.spaces import SPACES
    from interposer.taesd import TinyVAE, load_tiny_vae, make_decoder, make_encoder

    if taesd_dir:
        xl = load_tiny_vae("xl", taesd_dir, parts=("decoder",), allow_download=False)
        v1 = load_tiny_vae("v1", taesd_dir, parts=("encoder",), allow_download=False)
    else:
        xl, v1 = TinyVAE(SPACES["xl"], None, make_decoder(4)), TinyVAE(SPACES["v1"], make_encoder(4), None)
    dec, enc = xl.decoder.to(device, dtype), v1.encoder.to(device, dtype)
    params = sum(p.numel() for p in dec.parameters()) + sum(p.numel() for p in enc.parameters())
    return (lambda z: enc(dec(z.to(dtype)).clamp(0, 1))), params


def build_vae_bridge(device, dtype):
    import diffusers

    xl, v1 = sd_vae(diffusers).to(device, dtype).eval(), sd_vae(diffusers).to(device, dtype).eval()

    def bridge(z):
        image = xl.decode(z.to(dtype) / 0.13025).sample
        return v1.encode(image).latent_dist.mean * 0.18215

    params = sum(p.numel() for p in xl.decoder.parameters()) + sum(p.numel() for p in v1.encoder.parameters())
    return bridge, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), help="default: fp16 on cuda, fp32 on cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="image sizes (square, px)")
    parser.add_argument("--repeats", type=int, help="timed runs per case (default: 20 on cuda, 3 on cpu)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--taesd-dir", help="real TAESD weights (timing is the same with random ones)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    precision = args.precision or ("fp16" if args.device.startswith("cuda") else "fp32")
    repeats = args.repeats or (20 if args.device.startswith("cuda") else 3)

    from interposer import InterposerV4, direction, save_weights

    label = device_label(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "xl-to-v1_random.safetensors")
        model = InterposerV4()
        save_weights(weights, model.state_dict(), model.config, direction=direction("xl-to-v1"))
        print(f"device: {label}, torch {torch.__version__}, {precision}, median of {repeats} runs, batch 1")
        for size in args.sizes:
            base = None
            for method in args.methods:
                options = {"weights_file": weights} if method == "interposer" else {}
                if method == "taesd_bridge":
                    options = {"taesd_dir": args.taesd_dir}
                result = run_case(f"bench_conversion:build_{method}", options, (1, 4, size // 8, size // 8),
                                  args.device, precision, repeats)  # fmt: skip
                base = base or (result["ms"] if method == "interposer" else None)
                result.update(method=method, size=size, ratio=(result["ms"] / base) if base else None)
                rows.append(result)
                ratio = f"{result['ratio']:8.1f}x" if result["ratio"] else "       -"
                print(
                    f"{size:>5}px  {method:<13} {result['ms']:10.1f} ms  {ratio} vs interposer  "
                    f"{result['params'] / 1e6:7.2f} M params  peak +{result['peak_mib']:8.1f} MiB",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps({"device": label, "precision": precision, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
