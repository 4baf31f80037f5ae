"""Forge Neo's scripts/xyz_grid.py: the same AxisOption classes and per-cell ``copy(p)`` as A1111 1.10.1, and the
"Hires upscaler" axis lists ``shared.latent_upscale_modes`` then the pixel upscalers (xyz_grid.py 308)."""

from standin_reuse import reuse

reuse(globals(), "scripts/xyz_grid.py")
