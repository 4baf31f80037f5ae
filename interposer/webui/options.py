"""Settings and UI choices of the webui extension, as plain data (the same on every webui).

The script registers these with ``shared.opts.add_option`` (section "Latent Interposer",
category ``sd``), the tooltips in ``javascript/latent_interposer.js`` are keyed by the same
labels, and :func:`resolve` turns the settings plus the script's UI values plus per-image
overrides (X/Y/Z) into one :class:`GenerationOptions`, read at generation time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..directions import BUNDLED, PUBLISHED

SECTION = ("latent_interposer", "Latent Interposer")
CATEGORY = "sd"
TITLE = "Latent Interposer"
INFOTEXT_KEY = "Latent interposer"
REFINER_INFOTEXT_KEY = "Latent interposer refiner"
UPSCALER_INFOTEXT_KEY = "Latent upscaler"

# The hires "Upscaler" entry of the learned latent upscaler. Registered in shared.latent_upscale_modes;
# the mode dict is what the webui's own F.interpolate then uses: bilinear to the same size is an identity
# (tests/webui/test_webui_upscaler.py proves it bit for bit), and our hook hands it latents of exactly that size.
LEARNED_UPSCALE_MODE = "Latent (NN)"
LEARNED_UPSCALE_SETTINGS = {"mode": "bilinear", "antialias": False}

# Families the webuis load (SD1.x/2.x, SDXL, SD3; on the Forges also the FLUX.1 family: FLUX.1, Chroma, Z-Image,
# Lumina 2, and on Neo 2.2x FLUX.2 Klein and Mugen): directions between them that have weights, city96's published
# ones then the ones this project trained and bundles.
WEBUI_FAMILIES = ("v1", "xl", "v3", "fx", "f2")
WEBUI_DIRECTIONS = tuple(
    f"{s}-to-{d}" for s, d in (*PUBLISHED, *BUNDLED) if s in WEBUI_FAMILIES and d in WEBUI_FAMILIES
)
AUTO = "Auto"
FROM_SETTINGS = "From settings"
PRECISION_CHOICES = ("Auto", "fp32", "fp16", "bf16")
DEVICE_CHOICES = ("Auto", "GPU", "CPU")
REFINER_STRATEGIES = ("Noise-preserving", "Restart with fresh noise")


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    label: str
    component: str  # "checkbox", "radio", "dropdown", "textbox", "slider"
    choices: tuple = ()
    info: str = ""
    slider: tuple[float, float, float] | None = None  # minimum, maximum, step


SETTINGS: tuple[Setting, ...] = (
    Setting("latent_interposer_direction", AUTO, "Default direction", "dropdown", (AUTO, *WEBUI_DIRECTIONS),
            "Auto: from the first-pass and hires checkpoints"),
    Setting("latent_interposer_precision", "Auto", "Precision", "radio", PRECISION_CHOICES,
            "Auto: fp16 on GPU, fp32 on CPU"),
    Setting("latent_interposer_device", "Auto", "Device", "radio", DEVICE_CHOICES,
            "Auto: where the latents are"),
    Setting("latent_interposer_weights_dir", "", "Weights folder", "textbox", (),
            "empty: models/LatentInterposer; files as NAME or v4.0/NAME"),
    Setting("latent_interposer_allow_download", True, "Download missing weights from the Hugging Face hub",
            "checkbox"),
    Setting("latent_interposer_auto_apply", True,
            "Apply automatically whenever hires fix or the refiner crosses model families", "checkbox", (),
            "also without selecting the script: X/Y/Z plot, API; off: only with the script"),
    Setting("latent_interposer_warn_vae_override", True,
            "Warn when a global SD VAE override is forced onto the other family", "checkbox"),
    Setting("latent_interposer_refiner_strategy", REFINER_STRATEGIES[0], "Refiner switch strategy", "radio",
            REFINER_STRATEGIES, "how the sampler's state crosses families at the refiner switch"),
    Setting("latent_interposer_refiner_noise_boost", 0.0, "Extra noise at a restart switch", "slider", (),
            "restart strategy only: 0 = the switch sigma, 0.2 = 20% more noise", (0.0, 1.0, 0.05)),
)  # fmt: skip
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class GenerationOptions:
    """Everything one generation needs, after settings, UI and overrides are combined."""

    enabled: bool
    direction: str  # AUTO or one of WEBUI_DIRECTIONS
    precision: str  # auto / fp32 / fp16 / bf16
    device: str  # auto / gpu / cpu
    weights_dir: str
    allow_download: bool
    warn_vae_override: bool
    refiner_strategy: str
    noise_boost: float
    selected: bool  # chosen in the Script dropdown (infotext "Script")
    precision_explicit: bool = False  # chosen in the script, not "From settings" (the infotext says so)


def resolve(
    get_option: Callable[[str, Any], Any],
    models_path: str,
    *,
    enabled: bool = True,
    direction: str = FROM_SETTINGS,
    precision: str = FROM_SETTINGS,
    refiner_strategy: str = FROM_SETTINGS,
    selected: bool = False,
) -> GenerationOptions:
    """Combine settings (``get_option(key, default)``) with the script's UI values."""

    def setting(key: str) -> Any:
        value = get_option(key, SETTINGS_BY_KEY[key].default)
        return SETTINGS_BY_KEY[key].default if value is None else value

    chosen_direction = setting("latent_interposer_direction") if direction in (FROM_SETTINGS, None) else direction
    if chosen_direction not in (AUTO, *WEBUI_DIRECTIONS):
        chosen_direction = AUTO
    chosen_precision = setting("latent_interposer_precision") if precision in (FROM_SETTINGS, None) else precision
    if chosen_precision not in PRECISION_CHOICES:
        chosen_precision = "Auto"
    strategy = (
        setting("latent_interposer_refiner_strategy") if refiner_strategy in (FROM_SETTINGS, None) else refiner_strategy
    )
    if strategy not in REFINER_STRATEGIES:
        strategy = REFINER_STRATEGIES[0]
    device = str(setting("latent_interposer_device")).lower()
    return GenerationOptions(
        enabled=bool(enabled),
        direction=chosen_direction,
        precision=chosen_precision.lower(),
        device=device if device in ("auto", "gpu", "cpu") else "auto",
        weights_dir=str(setting("latent_interposer_weights_dir") or "").strip()
        or os.path.join(models_path, "LatentInterposer"),
        allow_download=bool(setting("latent_interposer_allow_download")),
        warn_vae_override=bool(setting("latent_interposer_warn_vae_override")),
        refiner_strategy=strategy,
        noise_boost=max(0.0, float(setting("latent_interposer_refiner_noise_boost") or 0.0)),
        selected=selected,
        precision_explicit=precision not in (FROM_SETTINGS, None),
    )


EXPLICIT_PRECISION = "explicit precision"


def format_infotext(
    direction: str, version: str, precision: str, explicit: bool, strategy: str | None = None,
    explicit_precision: bool = False,
) -> str:  # fmt: skip
    """``xl-to-v1, v4.0, fp16`` (plus ``explicit`` when the direction was chosen by hand, ``explicit precision``
    when the precision was, and the refiner strategy for a refiner switch).

    The precision is always written (what ran), but pasted back only when it was chosen by hand: "Auto" picks
    fp32 on a CPU and fp16 on a GPU, so restoring the fp32 of a CPU-made image would pin a GPU to fp32."""
    extra = (["explicit"] if explicit else []) + ([EXPLICIT_PRECISION] if explicit_precision else [])
    extra += [strategy_tag(strategy)] if strategy else []
    return ", ".join([direction, version, precision, *extra])


def format_upscaler_infotext(label: str, version: str, precision: str) -> str:
    """``v1 x1.5, v2.1, fp16``: what the learned upscale ran (a chain reads ``v1 x1.25+x1.5+resize``)."""
    return ", ".join([label, version, precision])


def strategy_tag(strategy: str) -> str:
    """``noise-preserving`` / ``restart``: the infotext word for a refiner strategy."""
    return strategy.split()[0].lower()


def parse_infotext(value: str | None) -> dict[str, Any] | None:
    """Inverse of :func:`format_infotext`, tolerant of extra spaces; ``None`` if absent/unreadable."""
    if not value:
        return None
    parts = [part.strip() for part in str(value).strip().strip('"').split(",")]
    if not parts or "-to-" not in parts[0]:
        return None
    precision = parts[2] if len(parts) > 2 and parts[2] in ("fp32", "fp16", "bf16") else None
    tags = {strategy_tag(s): s for s in REFINER_STRATEGIES}
    return {
        "direction": parts[0],
        "version": parts[1] if len(parts) > 1 else None,
        "precision": precision,
        "explicit": "explicit" in parts[3:],
        "precision_explicit": EXPLICIT_PRECISION in parts[3:],
        "strategy": next((tags[part] for part in parts[3:] if part in tags), None),
    }
