"""How much does crossing latent spaces cost? Interposer vs TAESD bridge vs full SD VAE bridge.

Measured side by side in one run, on one device, at 512^2 and 1024^2 images (latents /8):

* interposer: the v4 network through :class:`interposer.Converter` (published layout);
* TAESD bridge: TAESD-XL decode + TAESD-v1 encode (what a "cheap" decode/encode costs);
* full VAE bridge: diffusers ``AutoencoderKL`` decode (SDXL config) + encode (SD config), the
  path A1111 takes today across families. Random weights cost the same time as real ones.

Each case runs in its own process so that the peak-memory column is that case's alone
(CPU: growth of the resident set; CUDA: ``torch.cuda.max_memory_allocated``). Ratios are
relative to the interposer in the same run. Absolute times are only meaningful from a GPU.

    python bench/bench_conversion.py                  # CPU
    python bench/bench_conversion.py --device cuda    # GPU (fp16 by default there)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METHODS = ("interposer", "taesd_bridge", "vae_bridge")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sdvae(diffusers):
    return diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )


def _build(method: str, device: torch.device, dtype: torch.dtype, weights_file: str, taesd_dir: str | None):
    """Return (callable on scaled SDXL latents, parameter count)."""
    if method == "interposer":
        from interposer import Converter, InterposerV4, ModelCache, WeightsQuery

        precision = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
        converter = Converter(
            weights=WeightsQuery(path=weights_file), device=str(device), precision=precision, cache=ModelCache()
        )
        return (lambda z: converter.convert(z, "xl", "v1")), sum(p.numel() for p in InterposerV4().parameters())
    if method == "taesd_bridge":
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
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    xl, v1 = _sdvae(diffusers).to(device, dtype).eval(), _sdvae(diffusers).to(device, dtype).eval()

    def bridge(z):
        image = xl.decode(z.to(dtype) / 0.13025).sample
        return v1.encode(image).latent_dist.mean * 0.18215

    params = sum(p.numel() for p in xl.decoder.parameters()) + sum(p.numel() for p in v1.encoder.parameters())
    return bridge, params


def _measure(method, size, device_name, dtype_name, repeats, weights_file, taesd_dir, queue):
    torch.set_grad_enabled(False)
    device, dtype = torch.device(device_name), getattr(torch, dtype_name)
    fn, params = _build(method, device, dtype, weights_file, taesd_dir)
    z = torch.randn(1, 4, size // 8, size // 8, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn(z)  # warm-up (kernel selection, lazy init)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(z)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base  # ru_maxrss is KiB on Linux
    queue.put({"ms": statistics.median(times), "params": params, "peak_mib": max(peak, 0) / 2**20})


def run_case(method, size, device, dtype, repeats, weights_file, taesd_dir) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(method, size, device, dtype, repeats, weights_file, taesd_dir, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


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
    dtype = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[precision]
    repeats = args.repeats or (20 if args.device.startswith("cuda") else 3)

    from interposer import InterposerV4, direction, save_weights

    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "xl-to-v1_random.safetensors")
        model = InterposerV4()
        save_weights(weights, model.state_dict(), model.config, direction=direction("xl-to-v1"))
        device_label = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{os.cpu_count()}"
        print(f"device: {device_label}, torch {torch.__version__}, {precision}, median of {repeats} runs, batch 1")
        rows = []
        for size in args.sizes:
            base = None
            for method in args.methods:
                result = run_case(method, size, args.device, dtype, repeats, weights, args.taesd_dir)
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
        Path(args.json).write_text(json.dumps({"device": device_label, "precision": precision, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
