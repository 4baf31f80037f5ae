"""Where a webui processing object ``p`` keeps the interposer's per-generation state.

One attribute on ``p`` itself (never inherited by a shallow copy of ``p``: X/Y/Z copies ``p`` per cell), read
here by both the hires hooks (:mod:`.generation`) and the refiner hooks (:mod:`.refiner`), so neither
imports the other.
"""

from __future__ import annotations

from typing import Any

ATTRIBUTE = "latent_interposer_generation"


def attached_to(p: Any) -> Any | None:
    """The generation attached to ``p`` itself, or ``None``."""
    generation = vars(p).get(ATTRIBUTE) if hasattr(p, "__dict__") else None
    return generation if generation is not None and getattr(generation, "p", None) is p else None


def attach(p: Any, generation: Any) -> None:
    vars(p)[ATTRIBUTE] = generation


def detach(p: Any, generation: Any) -> None:
    if vars(p).get(ATTRIBUTE) is generation:
        del vars(p)[ATTRIBUTE]
