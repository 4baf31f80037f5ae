"""Mirrors the parts of Neo's modules_forge/packages/huggingface_guess the extension reads: the latent formats."""
