"""Stand-in for the k-diffusion that A1111 1.10.1 pins (crowsonkb/k-diffusion @ ab527a9): the samplers,
the discrete-schedule model wrappers and ``append_dims``, reimplemented from their update rules."""

from . import external, sampling, utils  # noqa: F401
