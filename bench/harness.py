"""Side-by-side timing harness shared by the benchmarks: one process per case, median time, peak memory.

Each case runs in a fresh (spawned) process so that its peak-memory figure is its own: CPU, growth of
the resident set; CUDA, ``torch.cuda.max_memory_allocated`` above what was allocated before the timed
runs. A case is named by a builder, ``module:function``, that takes ``(device, dtype, **options)`` and
returns ``(callable on one input tensor, parameter count)``; the harness makes the input, warms up,
times ``repeats`` runs and reports the median. Only ratios within one run mean anything on a CPU.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sd_vae(diffusers):
    """diffusers AutoencoderKL with the SD1/SDXL architecture (random weights cost what real ones cost)."""
    diffusers.utils.logging.set_verbosity_error()
    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        latent_channels=4, sample_size=512,
    )  # fmt: skip


def device_label(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
        present = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
        flags = " (" + " ".join(f for f in wanted if f in present) + ")"
    except OSError:
        pass
    return f"CPU x{os.cpu_count()}{flags}, {torch.get_num_threads()} torch threads"


def _measure(builder: str, options: dict, shape: tuple, device_name: str, precision: str, repeats: int, queue):
    sys.path.insert(0, str(REPO))
    torch.set_grad_enabled(False)
    device, dtype = torch.device(device_name), DTYPES[precision]
    module, name = builder.split(":")
    fn, params = getattr(importlib.import_module(module), name)(device, dtype, **options)
    x = torch.randn(*shape, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn(x)  # warm-up (kernel selection, lazy init)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(x)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base  # ru_maxrss is KiB on Linux
    queue.put({"ms": statistics.median(times), "params": params, "peak_mib": max(peak, 0) / 2**20,
               "out_shape": list(out.shape)})  # fmt: skip


def run_case(builder: str, options: dict, shape: tuple, device: str, precision: str, repeats: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(builder, options, shape, device, precision, repeats, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result
