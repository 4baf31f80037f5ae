"""What the CPU can do fast: the flags that decide whether bf16 autocast pays off on a CPU.

Measured: bf16 autocast on a CPU without native bf16 (AVX2 only) ran the ``cpu`` preset ~3x slower
than fp32 (8.5 s/step vs 2.6 s/step); with AVX512-BF16/AMX it is the faster choice. So ``auto``
picks bf16 on a CPU only where the hardware has it, and an explicit bf16 elsewhere warns once.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

FLAGS_THAT_MATTER = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
SLOW_BF16_NOTE = (
    "precision=bf16 on a CPU without native bf16 (no AVX512-BF16/AMX) runs ~3x slower than fp32 "
    "(measured 8.5 s/step vs 2.6 s/step on an AVX2 machine); use precision=auto or fp32 here."
)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; elsewhere torch's capability string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability().lower()  # e.g. "avx512", "avx2", "default"
    except Exception:  # an old torch: no capability query
        return frozenset()
    return frozenset({capability})


def has_native_bf16() -> bool:
    """True where bf16 matrix/convolution kernels run natively (AVX512-BF16 or AMX on x86; Apple and
    ARM CPUs report no such flags here and get fp32)."""
    return any(flag in cpu_flags() for flag in BF16_FLAGS)


def cpu_summary() -> str:
    """``x86_64, 2 threads, avx2 avx512f avx512_bf16 amx_bf16`` for the start-of-run line."""
    import torch

    flags = [f for f in FLAGS_THAT_MATTER if f in cpu_flags()]
    threads = torch.get_num_threads()
    return (f"{platform.machine()}, {threads} thread{'' if threads == 1 else 's'}, "
            f"flags: {' '.join(flags) or 'none of interest'}")  # fmt: skip
