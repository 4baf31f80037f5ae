"""The VAEs that make training data and judge results, behind one API in the RAW convention.

Interposers map raw VAE latents (what ``vae.encode`` returns, before any scale factor), so every
VAE here takes images in [0, 1] and returns raw latents, and decodes raw latents back:

* **TAESD** (``interposer.taesd``, a few MB, fast on a CPU): its encoder returns *scaled*
  latents, so :class:`TaesdVAE` divides by the family's scale (``space.to_raw``) on the way out
  and multiplies on the way in. Good for cheap runs and tests; a TAESD-trained interposer
  learns TAESD's latent spaces, which approximate the real ones.
* **Full VAEs** through diffusers' ``AutoencoderKL`` (an A1111 ``models/VAE`` single file, a
  diffusers folder or a hub id): they already return raw latents. Images go in as [-1, 1].
  Encoding uses ``latent_dist.mean`` (the mode) rather than a sample, so data is reproducible;
  the SD VAEs' posterior standard deviation is tiny, so little is lost.

Precision: ``auto`` is fp32 on the CPU and bf16 (fp16 where bf16 is missing) on a GPU. bf16 has
fp32's range, so SDXL's VAE cannot overflow in it; an fp16 result that is not finite is
recomputed in fp32 (once warned), which is what "half precision where safe" means here.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from interposer import runtime
from interposer.errors import InterposerError, require
from interposer.spaces import LatentSpace, get_space
from interposer.taesd import TAESD_NAMES, find_in_folder, load_tiny_vae

log = logging.getLogger(__name__)

PRECISIONS = runtime.PRECISIONS

# diffusers AutoencoderKL configs of each family's VAE, so a single file loads without fetching a
# config from the hub (the architectures are public: SD1/SD2 and SDXL share one, SD3 and FLUX.1 another).
_KL_COMMON = {
    "_class_name": "AutoencoderKL",
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "norm_num_groups": 32,
}
FAMILY_VAE_CONFIGS: dict[str, dict] = {
    "v1": {**_KL_COMMON, "latent_channels": 4, "sample_size": 512, "scaling_factor": 0.18215},
    "xl": {**_KL_COMMON, "latent_channels": 4, "sample_size": 1024, "scaling_factor": 0.13025},
    "v3": {**_KL_COMMON, "latent_channels": 16, "sample_size": 1024, "scaling_factor": 1.5305,
           "shift_factor": 0.0609, "use_quant_conv": False, "use_post_quant_conv": False},
    "fx": {**_KL_COMMON, "latent_channels": 16, "sample_size": 1024, "scaling_factor": 0.3611,
           "shift_factor": 0.1159, "use_quant_conv": False, "use_post_quant_conv": False},
}  # fmt: skip


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a GPU that has it (fp32's range: SDXL's VAE cannot overflow), otherwise the
    runtime's choice (fp16 on a GPU, fp32 on the CPU); explicit choices are checked by the runtime."""
    if (precision or "auto").strip().lower() == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return runtime.pick_dtype(precision, device)


class VAE:
    """One family's encoder and decoder: images in [0, 1] <-> RAW latents, on ``device``."""

    kind = "vae"

    def __init__(self, space: LatentSpace, source: str, device: torch.device, dtype: torch.dtype) -> None:
        self.space = space
        self.source = source  # what load_vae() takes to build this VAE again
        self.device = device
        self.dtype = dtype
        self._warned = False

    def describe(self) -> dict[str, str]:
        """What made the latents (recorded in the data manifest; ``eval`` rebuilds the VAEs from it)."""
        return {"family": self.space.name, "kind": self.kind, "source": self.source}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> raw latents (B, C, H/f, W/f), float32 on the CPU."""
        return self._run(self._encode, images)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latents -> images in [0, 1], float32 on the CPU."""
        return self._run(self._decode, raw).clamp(0, 1)

    def decode_with_grad(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latents -> images in [0, 1] on the VAE's device, differentiable in ``raw`` (image-space
        training losses). The weights stay frozen; the caller's autocast decides the precision."""
        return self._decode(raw).clamp(0, 1)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, raw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def _run(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        half = self.dtype != torch.float32
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=half):
            y = fn(x).float()
        if half and not torch.isfinite(y).all():
            if not self._warned:
                log.warning("%s %s: half-precision result not finite; recomputing in fp32", self.kind, self.space.name)
                self._warned = True
            y = fn(x).float()
        return y.contiguous().cpu()


class TaesdVAE(VAE):
    """TAESD: its latents are model-space (scaled), converted to raw here and nowhere else."""

    kind = "taesd"

    def __init__(self, tiny, source: str, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(tiny.space, source, device, dtype)
        self.tiny = tiny.to(device).to(memory_format=torch.channels_last).eval().requires_grad_(False)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.space.to_raw(self.tiny.encode(images).float())

    def _decode(self, raw: torch.Tensor) -> torch.Tensor:
        return self.tiny.decode(self.space.to_scaled(raw))

    def decode_with_grad(self, raw: torch.Tensor) -> torch.Tensor:
        return self.tiny.decoder(self.space.to_scaled(raw)).clamp(0, 1)  # tiny.decode() is no_grad


class DiffusersVAE(VAE):
    """diffusers ``AutoencoderKL``: raw latents already; images in [-1, 1]."""

    kind = "diffusers"

    def __init__(self, model, space: LatentSpace, source: str, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(space, source, device, dtype)
        channels = int(model.config.latent_channels)
        if channels != space.channels:
            raise InterposerError(
                f"The VAE {source} has {channels} latent channels, but {space.label} ({space.name}) needs "
                f"{space.channels}: is it the VAE of another family?"
            )
        self.model = model.eval().requires_grad_(False).to(device).to(memory_format=torch.channels_last)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(images * 2 - 1).latent_dist.mean  # the mode: deterministic data

    def _decode(self, raw: torch.Tensor) -> torch.Tensor:
        return (self.model.decode(raw).sample + 1) / 2


def _is_diffusers_folder(path: Path) -> bool:
    return any(config.is_file() for config in (path / "config.json", path / "vae" / "config.json"))


def _load_single_file(path: Path, space: LatentSpace):
    """An A1111-style VAE file, with the family's config written locally (no hub request)."""
    diffusers = require("diffusers", "diffusers")
    config = FAMILY_VAE_CONFIGS.get(space.name)
    if config is None:
        raise InterposerError(f"Loading a single-file VAE for {space.label} is not supported; use a diffusers folder.")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "config.json").write_text(json.dumps(config))
        return diffusers.AutoencoderKL.from_single_file(str(path), config=folder, local_files_only=True)


@functools.lru_cache(maxsize=8)
def load_vae(
    spec: str | None,
    family: str | LatentSpace,
    *,
    taesd_dir: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    allow_download: bool = True,
) -> VAE:
    """Build the VAE of ``family`` from ``spec``:

    * ``None`` or ``taesd``: TAESD from ``taesd_dir`` (else the hub, ``madebyollin/...``);
    * a folder with ``taesd*_encoder.safetensors``-style files: TAESD from there;
    * a ``.safetensors``/``.ckpt``/``.pt`` file (an A1111 ``models/VAE`` file): ``AutoencoderKL.from_single_file``;
    * a diffusers folder (``config.json``, or a pipeline folder with ``vae/``): ``AutoencoderKL.from_pretrained``;
    * ``org/name`` or ``org/name/subfolder``: the same from the Hugging Face hub.

    Loaded VAEs are cached per arguments (a process that encodes and evaluates loads each once).
    """
    space = get_space(family)
    device = device if isinstance(device, torch.device) else runtime.pick_device(device)
    dtype = pick_dtype(precision, device)
    spec = (spec or "taesd").strip()
    path = Path(spec).expanduser()
    if spec.lower() == "taesd" or (path.is_dir() and find_in_folder(path, space, "encoder") is not None):
        folder = taesd_dir if spec.lower() == "taesd" else path
        if space.name not in TAESD_NAMES:
            raise InterposerError(f"There is no TAESD for {space.label}; pass a full VAE with --vae {space.name}=...")
        tiny = load_tiny_vae(space, folder, allow_download=allow_download)
        return TaesdVAE(tiny, str(Path(folder).resolve()) if folder else "taesd", device, dtype)
    diffusers = require("diffusers", "diffusers")
    if path.is_file():
        if path.suffix.lower() not in (".safetensors", ".ckpt", ".pt", ".pth", ".bin"):
            raise InterposerError(f"{path} is not a VAE file (.safetensors, .ckpt or .pt).")
        return DiffusersVAE(_load_single_file(path, space), space, str(path.resolve()), device, dtype)
    if path.is_dir():
        if not _is_diffusers_folder(path):
            raise InterposerError(
                f"{path} holds neither TAESD files ({TAESD_NAMES.get(space.name, 'taesd')}_encoder.safetensors) "
                "nor a diffusers VAE (config.json)."
            )
        sub = "vae" if not (path / "config.json").is_file() else None
        model = diffusers.AutoencoderKL.from_pretrained(str(path), subfolder=sub)
        return DiffusersVAE(model, space, str(path.resolve()), device, dtype)
    parts = spec.split("/")
    if len(parts) < 2 or os.sep in spec.replace("/", "") or spec.startswith((".", "~")):
        raise InterposerError(f"VAE {spec!r} for {space.name}: no such file or folder (and not a hub id org/name).")
    repo, sub = "/".join(parts[:2]), "/".join(parts[2:]) or None
    try:
        model = diffusers.AutoencoderKL.from_pretrained(repo, subfolder=sub, local_files_only=not allow_download)
    except (OSError, ValueError) as exc:
        raise InterposerError(f"Could not load the VAE {spec!r} for {space.name} from the hub: {exc}") from exc
    return DiffusersVAE(model, space, spec, device, dtype)


def parse_vae_specs(items: list[str] | None) -> dict[str, str]:
    """``["xl=/path/sdxl_vae.safetensors", "v1=taesd"]`` -> ``{"xl": ..., "v1": "taesd"}`` (family names normalised)."""
    specs = {}
    for item in items or []:
        family, sep, spec = item.partition("=")
        if not sep or not spec:
            raise InterposerError(f"--vae takes FAMILY=SPEC (e.g. xl=sdxl_vae.safetensors), got {item!r}.")
        specs[get_space(family).name] = spec
    return specs
