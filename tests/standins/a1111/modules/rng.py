"""Mirrors modules/rng.py (1.10.1): ImageRNG, one generator per seed, ``first()`` then ``next()``."""

from __future__ import annotations

import torch


class ImageRNG:
    def __init__(self, shape, seeds, subseeds=None, subseed_strength=0.0, seed_resize_from_h=0, seed_resize_from_w=0):
        self.shape = tuple(map(int, shape))
        self.seeds = seeds
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.is_first = True

    def first(self):
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators])

    def next(self):
        if self.is_first:
            self.is_first = False
            return self.first()
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators])
