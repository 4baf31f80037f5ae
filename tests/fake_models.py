"""Stand-in checkpoints: TAESD is the VAE, and the "UNet" is the exact MMSE denoiser of a narrow
Gaussian around the photo's latents in the model's own space (what a model that learned one image
would predict). Sampling from noise therefore lands on that photo, and a model fed latents of the
wrong family denoises them into garbage, as a real one does."""

from __future__ import annotations

import os
import types
from typing import ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from interposer.spaces import SPACES


def sd_alphas_cumprod(steps: int = 1000) -> torch.Tensor:
    """The SD1/SDXL training schedule ("scaled linear", beta 0.00085 -> 0.012)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


# Keys (and the UNet's first conv) that the webui's config guess looks at, per kind of checkpoint.
_CLIP_L = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
CHECKPOINT_KEYS = {
    "v1": {_CLIP_L: [1, 1], "model.diffusion_model.input_blocks.0.0.weight": [1, 4, 1, 1]},
    "v1-inpainting": {_CLIP_L: [1, 1], "model.diffusion_model.input_blocks.0.0.weight": [1, 9, 1, 1]},
    "v2": {"cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": [1, 1024],
           "model.diffusion_model.input_blocks.0.0.weight": [1, 4, 1, 1]},
    "xl": {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [1, 1],
           "conditioner.embedders.1.model.ln_final.weight": [1],
           "model.diffusion_model.input_blocks.0.0.weight": [1, 4, 1, 1]},
    "xl-refiner": {"conditioner.embedders.0.model.ln_final.weight": [1],
                   "model.diffusion_model.input_blocks.0.0.weight": [1, 4, 1, 1]},
    "xl-inpainting": {"conditioner.embedders.1.model.ln_final.weight": [1],
                      "model.diffusion_model.input_blocks.0.0.weight": [1, 9, 1, 1]},
    "v3": {"model.diffusion_model.x_embedder.proj.weight": [1, 16, 1, 1]},
}  # fmt: skip
# The family each config's model samples in (a checkpoint whose weights do not fit its config fails to load).
CONFIG_FAMILY = {"sd3-inference.yaml": "v3", "sd_xl_base.yaml": "xl", "sd_xl_refiner.yaml": "xl",
                 "sd_xl_inpaint.yaml": "xl"}  # fmt: skip


def write_checkpoint(path: str, kind: str) -> str:
    """A small safetensors file with the keys of a ``kind`` checkpoint (its tensors are tiny)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({key: torch.zeros(shape, dtype=torch.float16) for key, shape in CHECKPOINT_KEYS[kind].items()}, path)
    return path


class FakeModel:
    """``spread``: how far (latent std) the model's samples may wander from the photo.

    ``detail_block``: a refiner-like model that knows the photo's *details* (everything finer than
    ``detail_block`` latent pixels, tight prior) but not its composition and colours (block means,
    broad prior ``spread_low`` around 0), which it must take from the latents it is given, as a refiner
    keeps the composition of the base model's latents and adds detail."""

    def __init__(self, family: str, vae, photo: torch.Tensor, spread: float = 0.05, detail_block: int = 0,
                 spread_low: float = 2.0, conditioning_key: str = "crossattn"):  # fmt: skip
        self.family = family
        self.space = SPACES[family]
        self.vae = vae
        self.photo = photo
        self.spread = spread
        self.detail_block = detail_block
        self.spread_low = spread_low
        self.is_sdxl = family == "xl"
        self.is_sd1 = family == "v1"
        self.is_sd2 = False
        self.is_sd3 = family == "v3"
        self.latent_channels = self.space.channels
        if self.is_sd3:
            self.latent_format = types.SimpleNamespace(scale_factor=1.5305, shift_factor=0.0609)
        else:
            self.scale_factor = self.space.scale
        self.alphas_cumprod = sd_alphas_cumprod()
        self.log_sigmas = (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).log()
        self.model = types.SimpleNamespace(conditioning_key=conditioning_key)
        self.is_sdxl_inpaint = self.is_sdxl and conditioning_key != "crossattn"
        self.cond_stage_key = "crossattn"
        self.parameterization = "eps"
        self.device = torch.device("cpu")
        self.used_config = None
        self.trashed = False
        self.sd_model_checkpoint = None
        self.sd_checkpoint_info = None
        self.apply_calls = 0

    def check_config(self, config: str) -> None:
        """Loading weights of one family into another family's config fails in the webui (size mismatch)."""
        expected = CONFIG_FAMILY.get(os.path.basename(config), "v1")
        if expected != self.family:
            raise RuntimeError(f"Error(s) in loading state_dict: {self.family} weights into config {config}")

    def _alive(self) -> None:
        if self.trashed:
            raise RuntimeError("Tensor on device meta is not on the expected device cpu: the model was unloaded")

    # ------------------------------------------------------------------ the "UNet"
    _targets: ClassVar[dict] = {}  # shared by all instances (and by the weights loaded into one instance)
    pixels_per_latent = 8  # image pixels per latent pixel (FLUX.2 packed: 16)

    def target(self, height: int, width: int) -> torch.Tensor:
        key = (self.family, id(self.photo), height, width)
        if key not in FakeModel._targets:
            side = self.pixels_per_latent
            image = F.interpolate(self.photo, size=(height * side, width * side), mode="area")
            FakeModel._targets[key] = self.vae.encode(image)
        return FakeModel._targets[key]

    def _alpha(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float().clamp(0, len(self.log_sigmas) - 1)
        low = t.floor().long().clamp(max=len(self.log_sigmas) - 2)
        w = t - low
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[low + 1]
        return 1.0 / (1.0 + log_sigma.exp() ** 2)

    def apply_model(self, x_vp, t, cond=None):
        """eps prediction for x_vp = sqrt(a) x0 + sqrt(1 - a) eps: the exact MMSE denoiser of the prior."""
        self._alive()
        self.apply_calls += 1
        a = self._alpha(t.expand(x_vp.shape[0]) if t.ndim == 0 else t).view(-1, 1, 1, 1)
        sigma = ((1 - a) / a).sqrt()
        x = x_vp / a.sqrt()  # variance-exploding view: x = x0 + sigma * eps
        mu = self.target(*x_vp.shape[-2:]).to(x_vp.dtype)
        if self.detail_block:
            grid = (max(1, x.shape[-2] // self.detail_block), max(1, x.shape[-1] // self.detail_block))

            def low(z):
                return F.interpolate(F.adaptive_avg_pool2d(z, grid), size=z.shape[-2:], mode="nearest")

            s_low, s_high = self.spread_low**2, self.spread**2
            x0 = low(x) * (s_low / (s_low + sigma**2)) + (x - low(x) - (mu - low(mu))) * (s_high / (s_high + sigma**2))
            x0 = x0 + (mu - low(mu))
        else:
            x0 = mu + (self.spread**2 / (self.spread**2 + sigma**2)) * (x - mu)
        return (x - x0) / sigma

    # ------------------------------------------------------------------ the VAE (model-space latents)
    def decode_first_stage(self, z):
        self._alive()
        return self.vae.decode(z.float()) * 2 - 1

    def encode_first_stage(self, x):
        self._alive()
        return self.space.to_raw(self.vae.encode((x.float() + 1) / 2))

    def get_first_stage_encoding(self, raw):
        return self.space.to_scaled(raw)
