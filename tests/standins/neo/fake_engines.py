"""Stand-in engines of Forge Neo (``backend/diffusion_engine``), over the A1111 stand-in's ``FakeModel`` (TAESD as
the VAE, the exact MMSE denoiser of a narrow prior around a photo's latents as the "UNet").

What the extension may read is shaped as in Neo, and nothing more: the engine class name (``StableDiffusion``,
``StableDiffusionXL``, ``Lumina2``, ...), ``is_sd1``/``is_sdxl``/``is_wan`` only (Neo's engines have no
``is_sd2``/``is_sd3``, no ``scale_factor``; Mugen says ``is_sdxl=True`` with 32-channel latents),
``model_config.latent_format`` (huggingface_guess's classes), ``forge_objects.vae`` with its
``latent_channels`` and the ``first_stage_model``'s ``scaling_factor``/``shift_factor`` (what ``process_in``
applies), ``is_inpaint``. ``encode_first_stage`` returns sampler (scaled) latents and ``get_first_stage_encoding``
is the identity, as in Neo.

Conditionings name the architecture that computed them, and the "UNet" refuses conds of another one with an
``AssertionError``, as Neo's UNet does (``unet.py`` 662: SD1.5 conds have no ``y``, SDXL's do), so a cond cache
that hands one model's conds to another fails here as it fails in Neo.

The samplers reach the schedule through ``forge_objects.unet.model.predictor`` (:class:`Prediction`: Neo's
``backend/modules/k_prediction.Prediction`` for an eps model), as in Neo; the engine has **no** ``alphas_cumprod``
until the DDIM/PLMS denoiser sets one (``sd_samplers_timesteps.CompVisTimestepsDenoiser``), as in Neo."""

from __future__ import annotations

import types

import torch
from fake_models import FakeModel
from huggingface_guess import latent

_FAMILY_FORMAT = {"v1": latent.SD15, "xl": latent.SDXL, "fx": latent.Flux}
# lllyasviel's Forge (``neo_env.boot(..., forge=True)``): ``is_inpaint = estimated_config.inpaint_model()``, i.e.
# ``unet_config["in_channels"] > 4`` (backend/diffusion_engine/base.py 28), true of every 16-channel DiT. Neo's DiT
# engines set False.
FORGE_INPAINT_RULE = False


class Prediction:
    """backend/modules/k_prediction.py ``Prediction`` of an eps model (``prediction_type="epsilon"``; every stand-in
    engine is one, Lumina 2's too: see the README): the discrete schedule and ``noise_scaling``, which returns a
    **new** tensor (``noise * sigma``, then ``+= latent_image`` on that product)."""

    sigma_data = 1.0

    def __init__(self, alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon") -> None:
        self.prediction_type = prediction_type
        self.alphas_cumprod = alphas_cumprod
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def timestep(self, sigma):
        dists = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep):
        t = torch.clamp(timestep.float(), min=0, max=len(self.sigmas) - 1)
        w = t.frac()
        log_sigma = (1 - w) * self.log_sigmas[t.floor().long()] + w * self.log_sigmas[t.ceil().long()]
        return log_sigma.exp().to(timestep.device)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        noise = noise * ((1.0 + sigma**2.0) ** 0.5 if max_denoise else sigma)
        noise += latent_image
        return noise

    def inverse_noise_scaling(self, sigma, latent):
        return latent


class ForgeObjects:
    def __init__(self, unet, clip, vae, clipvision=None):
        self.unet = unet
        self.clip = clip
        self.vae = vae
        self.clipvision = clipvision

    def shallow_copy(self):
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


class FakeEngine(FakeModel):
    """A ``ForgeDiffusionEngine`` of one family (``family``: v1, xl or fx; see :data:`_FAMILY_FORMAT`)."""

    def __init__(self, family: str, vae, photo: torch.Tensor, *args, latent_format=None, **kwargs) -> None:
        super().__init__(family, vae, photo, *args, **kwargs)
        self.predictor = Prediction(self.alphas_cumprod)  # Neo: on forge_objects.unet.model (this engine here)
        for name in ("is_sd2", "is_sd3", "scale_factor", "latent_format", "latent_channels", "is_sdxl_inpaint",
                     "alphas_cumprod"):  # fmt: skip
            vars(self).pop(name, None)
        fmt = latent_format if latent_format is not None else _FAMILY_FORMAT[family]()
        self.model_config = types.SimpleNamespace(latent_format=fmt, model_type=types.SimpleNamespace(name="EPS"))
        self.is_sd1 = False
        self.is_sdxl = False
        self.is_wan = False
        self.is_inpaint = FORGE_INPAINT_RULE and fmt.latent_channels > 4
        self.use_distilled_cfg_scale = False
        self.use_shift = False
        first_stage = types.SimpleNamespace(scaling_factor=fmt.scale_factor,
                                            shift_factor=getattr(fmt, "shift_factor", 0.0))  # fmt: skip
        # backend/patcher/vae.py 126-150: upscale_ratio 8, 16 for the FLUX.2 VAE (Klein), a tuple for Wan's 3-D VAE
        ratio = (lambda a: max(0, a * 4 - 3), 8, 8) if isinstance(fmt, latent.Wan21) else self.pixels_per_latent
        vae_patcher = types.SimpleNamespace(first_stage_model=first_stage, latent_channels=fmt.latent_channels,
                                            upscale_ratio=ratio)  # fmt: skip
        self.forge_objects = ForgeObjects(unet=types.SimpleNamespace(model=self), clip=None, vae=vae_patcher)
        self.forge_objects_original = self.forge_objects.shallow_copy()
        self.forge_objects_after_applying_lora = self.forge_objects.shallow_copy()
        self.extra_generation_params = {}

    @property
    def architecture(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------------ text encoders and UNet
    def get_learned_conditioning(self, prompts):
        return {"architecture": self.architecture, "prompts": list(prompts)}

    def apply_model(self, x_vp, t, cond=None):
        conds = (cond or {}).get("c_crossattn") or []
        for c in conds:
            if isinstance(c, dict) and c.get("architecture") != self.architecture:
                raise AssertionError()  # Neo's UNet: (y is not None) == (self.num_classes is not None)
        return super().apply_model(x_vp, t, cond)

    # ------------------------------------------------------------------ the VAE: sampler latents in and out
    def encode_first_stage(self, x):
        self._alive()
        return self.vae.encode((x.float() + 1) / 2)

    def get_first_stage_encoding(self, x):
        return x


class StableDiffusion(FakeEngine):
    def __init__(self, vae, photo, *args, **kwargs):
        super().__init__("v1", vae, photo, *args, **kwargs)
        self.is_sd1 = True


class StableDiffusionXL(FakeEngine):
    def __init__(self, vae, photo, *args, **kwargs):
        super().__init__("xl", vae, photo, *args, **kwargs)
        self.is_sdxl = True


class Lumina2(FakeEngine):
    """Lumina 2 / Neta Lumina: FLUX.1's VAE and ``latent.Flux`` (so are FLUX.1, Chroma and Z-Image)."""

    def __init__(self, vae, photo, *args, **kwargs):
        super().__init__("fx", vae, photo, *args, **kwargs)
        self.use_shift = True


class NoVae:
    """The VAE of a family the stand-in cannot run (no tiny VAE for it): any use is a test failure."""

    def encode(self, x):
        raise AssertionError("this stand-in model cannot encode: the extension should have refused first")

    decode = encode


class Mugen(FakeEngine):
    """Neo's Mugen: ``is_sdxl=True`` but 32-channel FLUX.2-VAE latents (mugen.py 61); its checkpoint has SDXL's
    text encoders and a 32-channel UNet input. Its VAE here is taef2 (FLUX.2's latent after the BatchNorm, unpacked:
    what Neo's Mugen samples in)."""

    def __init__(self, vae, photo, *args, **kwargs):
        super().__init__("f2", vae or NoVae(), photo, *args, latent_format=latent.SDXL_Flux2(), **kwargs)
        self.is_sdxl = True


class PackedFlux2Vae:
    """FLUX.2's VAE as Klein samples with it (backend/nn/vae.py 350-385, ``AutoencoderKLFlux2``): the latent after the
    BatchNorm, 2x2-packed to 128 channels at /16 with Neo's ``"... c (i pi) (j pj) -> ... (c pi pj) i j"``; decode
    unpacks with the inverse. Built on taef2, whose 32-channel /8 latent is that latent unpacked (previews:
    ``latent.Flux2``'s ``latent_rgb_factors_reshape``). Written from Neo's rearrange, not from the extension's
    packing, so a wrong packing in the extension decodes wrongly here."""

    def __init__(self, taef2) -> None:
        self.taef2 = taef2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        z = self.taef2.encode(images)
        b, c, h, w = z.shape
        return z.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        b, c4, h, w = z.shape
        return self.taef2.decode(
            z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)
        )


class Klein(FakeEngine):
    """FLUX.2 Klein: the FLUX.2 VAE, 128 channels at /16 (``latent.Flux2``), a diffusion-model file: its VAE comes
    from the ``flux2-vae`` module (:class:`PackedFlux2Vae`), and it samples at /16 (``sd_models`` sets
    ``processing.opt_f`` from the VAE's ``upscale_ratio``, as Neo does)."""

    pixels_per_latent = 16
    vae_decoder_channels = 32  # the FLUX.2 VAE file's decoder takes the unpacked latent

    def __init__(self, photo, *args, **kwargs):
        super().__init__("f2", NoVae(), photo, *args, latent_format=latent.Flux2(), **kwargs)


class QwenImage(FakeEngine):
    """Qwen-Image: the Wan VAE (16 channels, per-channel mean/std)."""

    def __init__(self, photo, *args, **kwargs):
        super().__init__("fx", NoVae(), photo, *args, latent_format=latent.Wan21(), **kwargs)
