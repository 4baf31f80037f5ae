"""Mirrors huggingface_guess/latent.py (Neo @ 3df257a): the latent format of each model family, as the engines
expose it in ``model_config.latent_format`` (class, ``scale_factor``, ``shift_factor``, ``latent_channels``).
``process_in``/``process_out`` are the scaling the webui applies between VAE and sampler latents."""

from __future__ import annotations


class LatentFormat:
    scale_factor: float = 1.0
    latent_channels: int = 4

    def process_in(self, latent):
        return latent * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor


class SD15(LatentFormat):
    def __init__(self):
        self.scale_factor = 0.18215


class SDXL(LatentFormat):
    def __init__(self):
        self.scale_factor = 0.13025


class Flux(LatentFormat):
    """FLUX.1, Chroma, Z-Image, Lumina 2 / Neta Lumina."""

    def __init__(self):
        self.latent_channels = 16
        self.scale_factor = 0.3611
        self.shift_factor = 0.1159

    def process_in(self, latent):
        return (latent - self.shift_factor) * self.scale_factor

    def process_out(self, latent):
        return (latent / self.scale_factor) + self.shift_factor


class Wan21(LatentFormat):
    """Wan 2.1/2.2, Qwen-Image, Anima: per-channel mean/std, 5-D latents (the stand-in keeps only the name)."""

    def __init__(self):
        self.latent_channels = 16
        self.scale_factor = 1.0


class Flux2(LatentFormat):
    def __init__(self):
        self.latent_channels = 128
        self.scale_factor = 1.0


class SDXL_Flux2(LatentFormat):
    """Mugen's (Neo 2.2x model_list.Mugen): an SDXL UNet on the 32-channel Flux.2 VAE at /8 (its engine still says
    ``is_sdxl=True``)."""

    def __init__(self):
        self.latent_channels = 32
        self.scale_factor = 1.0
