"""Reaching any hires size with upscalers that exist for a few factors only.

Users set any *Upscale by* (1.25, 1.5, 1.75, 2, 2.5, ...) or explicit sizes, but learned upscalers
exist for fixed factors (the published ones: 1.25, 1.5, 2.0). A plan runs a chain of learned steps
whose product is close to the needed ratio, then resizes the remainder exactly to the webui's
target latent size (so the webui's own interpolation afterwards is an identity).

Policies (``docs/results.md`` has the measured comparison):

* ``at-least`` (the default): the smallest product that reaches the ratio, then a downscale. Measured
  on held-out photos it was never worse than the others and the best where they differ (2.5x from
  1.5x and 2x files: 19.74 dB vs 19.14 for both others; 1.75x: 20.87 vs 20.66 for at-most): learned
  detail shrinks well, an enlarged remainder is blurred again;
* ``nearest``: the chain whose product is closest to the ratio (in log scale); ties go to fewer
  steps, then to the larger product (a downscale of the remainder loses less than an upscale);
* ``at-most``: the largest product below or at the ratio, then an upscale of the remainder.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .upscalers import PUBLISHED_FACTORS

POLICIES = ("nearest", "at-least", "at-most")
DEFAULT_POLICY = "at-least"
MAX_STEPS = 3
_EXACT = 1e-9


@dataclass(frozen=True)
class UpscalePlan:
    """``factors`` to run in order from ``size_in``, then a resize from ``chained`` to ``size_out`` (if they differ)."""

    size_in: tuple[int, int]
    size_out: tuple[int, int]
    factors: tuple[float, ...]
    chained: tuple[int, int]
    note: str = ""  # why this is not the policy's first choice (files missing), for the console line

    @property
    def resize(self) -> str | None:
        """``None`` (the chain lands on the target), ``down`` or ``up``: what the final exact resize does."""
        if self.chained == self.size_out:
            return None
        return "down" if self.chained[0] * self.chained[1] > self.size_out[0] * self.size_out[1] else "up"


def chain_size(size: tuple[int, int], factors: tuple[float, ...]) -> tuple[int, int]:
    """Output size of running ``factors`` in order (each step floors, as nearest upsampling does)."""
    h, w = size
    for factor in factors:
        h, w = int(h * factor), int(w * factor)
    return h, w


def plan_upscale(
    size_in: tuple[int, int],
    size_out: tuple[int, int],
    factors: tuple[float, ...] = PUBLISHED_FACTORS,
    policy: str = DEFAULT_POLICY,
    max_steps: int = MAX_STEPS,
) -> UpscalePlan:
    """The chain of learned factors (possibly none) and the resize that reach ``size_out`` from ``size_in``."""
    if policy not in POLICIES:
        raise ValueError(f"unknown upscale policy {policy!r}; choose one of {', '.join(POLICIES)}")
    (h, w), (th, tw) = size_in, size_out
    if min(h, w, th, tw) < 1:
        raise ValueError(f"cannot plan an upscale from {size_in} to {size_out}")
    ratio = math.sqrt((th / h) * (tw / w))
    candidates = [()]
    for steps in range(1, max_steps + 1):
        candidates += [c for c in itertools.combinations_with_replacement(sorted(factors, reverse=True), steps)]

    def product(chain: tuple[float, ...]) -> float:
        return math.prod(chain) if chain else 1.0

    if policy == "at-least":
        reaching = [c for c in candidates if product(c) >= ratio - _EXACT]
        pool = reaching or candidates
        best = min(pool, key=lambda c: (product(c), len(c))) if reaching else max(pool, key=product)
    elif policy == "at-most":
        below = [c for c in candidates if product(c) <= ratio + _EXACT] or [()]
        best = max(below, key=lambda c: (product(c), -len(c)))
    else:
        best = min(candidates, key=lambda c: (round(abs(math.log(product(c) / ratio)), 9), len(c), -product(c)))
    return UpscalePlan(size_in=(h, w), size_out=(th, tw), factors=tuple(best), chained=chain_size((h, w), best))
