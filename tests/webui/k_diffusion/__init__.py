"""Stand-in for the k-diffusion samplers A1111 1.10 pins (crowsonkb/k-diffusion @ ab527a9),
reimplemented from their update rules (see sampling.py)."""
