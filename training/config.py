"""Training configuration: one dataclass, presets, a config file (JSON, or TOML on Python 3.11+),
and ``key=value`` overrides from the command line, applied in that order.

The resolved configuration is written into every checkpoint (for ``--resume``) and into the run folder
(``config.json``, without this machine's ``data`` and ``out``: give ``--data`` to reproduce a run from it).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from interposer.errors import InterposerError


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults: city96's v4 recipe (a GPU run)."""

    # data and direction
    data: str = ""  # folder written by `encode`
    src: str = "xl"
    dst: str = "v1"
    out: str = ""  # run folder (default: runs/{src}-to-{dst})
    # model: "interposer" (InterposerV4; the published layout is ch_mid 64, blocks 12) or "upscaler"
    # (LatentUpscalerV2 for one family, src == dst; published: ch_mid 64, convs 16)
    model: str = "interposer"
    factor: float = 1.0  # upscale factor: an upscaler's, or an interposer that converts *and* upscales
    ch_mid: int = 64
    blocks: int = 12
    convs: int = 16
    dropout: float = 0.1
    warm_start: str = "none"  # none, or linear: start from the least-squares map (interposer: needs bn=frozen)
    # a run folder or checkpoint whose model weights start this run: a second stage with its own optimiser, schedule
    # and losses (the layout and source must match; warm_start is then not used). Recorded in the checkpoints. A run
    # of another target (an f2-to-v1 run starting f2-to-xl) gives its head and core; the tail is fitted again.
    init: str = ""
    bn: str = "batch"  # interposer BatchNorm: batch statistics (as published) or frozen (eval mode throughout)
    # optimisation
    steps: int = 50_000
    batch: int = 128
    crop: int = 64  # training crop side in source latents (64 = 512 px)
    lr: float = 5e-4
    beta1: float = 0.5
    beta2: float = 0.95
    weight_decay: float = 0.01
    warmup: int = 500  # linear warm-up steps
    decay_start: float = 0.0  # fraction of the run after which the cosine decay starts (0: right after warm-up)
    min_lr: float = 0.0  # fraction of lr at the end of the cosine
    grad_clip: float = 0.0  # max gradient norm (0: off)
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off; e.g. 0.999)
    # losses
    loss: str = "l1"  # l1, mse or huber, on latents
    loss_space: str = "raw"  # raw, scaled (model-space) or normalized (per-channel std of the target = 1)
    reverse: bool = False  # also train dst->src, with round-trip losses (city96's optional extras)
    roundtrip_weight: float = 0.5
    flip: bool = True  # random horizontal flips of the latent crops
    latent_weight: float = 1.0
    # image-space loss: decode the prediction with the frozen target decoder, compare with the crop
    # (data encoded with --rgb). On a CPU the decoder costs more than the model: every Nth step.
    image_weight: float = 0.0  # weight of the image term between decoded prediction and the crop (0: off)
    image_loss: str = "l1"  # l1, or mse: what PSNR measures (its values are ~10x smaller: raise the weight)
    color_weight: float = 0.0  # weight of a per-channel mean/std term on the decoded image
    image_every: int = 1  # the image terms on every Nth step
    image_batch: int = 0  # crops of the batch that are decoded (0: all)
    image_crop: int = 0  # decode a random window of this many target latents per crop (0: the whole crop)
    image_margin: int = 8  # pixels at the window's border left out of the image loss (decoder padding)
    # runtime
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    precision: str = "auto"  # auto (GPU: bf16, fp16 where bf16 is missing; CPU: bf16 where native, else fp32)
    threads: int = 0  # torch CPU threads (0: torch's default)
    compile: bool = False  # torch.compile the model (GPU runs)
    minutes: float = 0.0  # if > 0: fit the run into this many minutes (steps are set after timing the first ones)
    # bookkeeping
    log_every: int = 10
    eval_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    tensorboard: bool = True  # also log to TensorBoard when the package is installed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InterposerError(f"Unknown training options: {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
        return replace(cls(), **{k: _convert(k, v) for k, v in data.items()}).validated()

    def validated(self) -> TrainConfig:
        checks = {
            "model": self.model in ("interposer", "upscaler"),
            "factor": self.factor >= 1.0 and (self.model == "interposer" or self.factor > 1.0),
            "warm_start": self.warm_start in ("none", "linear"),
            "bn": self.bn in ("batch", "frozen"),
            "convs": self.convs >= 0, "image_every": self.image_every >= 1, "image_batch": self.image_batch >= 0,
            "image_crop": self.image_crop >= 0, "image_margin": self.image_margin >= 0,
            "image_weight": self.image_weight >= 0, "color_weight": self.color_weight >= 0,
            "latent_weight": self.latent_weight >= 0,
            "loss": self.loss in ("l1", "mse", "huber"), "image_loss": self.image_loss in ("l1", "mse"),
            "loss_space": self.loss_space in ("raw", "scaled", "normalized"),
            "precision": self.precision in ("auto", "fp32", "bf16", "fp16"),
            "steps": self.steps >= 1, "batch": self.batch >= 1, "crop": self.crop >= 4,
            "ch_mid": self.ch_mid >= 1, "blocks": self.blocks >= 0, "lr": self.lr > 0,
            "warmup": self.warmup >= 0, "decay_start": 0 <= self.decay_start < 1,
            "ema": 0 <= self.ema < 1, "dropout": 0 <= self.dropout < 1,
            "checkpoint_every": self.checkpoint_every >= 1, "eval_every": self.eval_every >= 1,
            "log_every": self.log_every >= 1, "keep_checkpoints": self.keep_checkpoints >= 1,
        }  # fmt: skip
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InterposerError("Invalid training options: " + ", ".join(f"{n}={getattr(self, n)!r}" for n in bad))
        if self.model == "interposer" and self.warm_start == "linear" and self.bn != "frozen":
            raise InterposerError("warm_start=linear for an interposer needs bn=frozen (batch statistics would "
                                  "change the map at the first step); add --set bn=frozen.")  # fmt: skip
        if self.model == "upscaler" and self.reverse:
            raise InterposerError("reverse=true trains a dst->src interposer; an upscaler has no reverse.")
        return self


# Starting points; anything can be overridden. "cpu": in a fixed CPU budget a narrower, shallower
# net that takes ~2.5x the steps beats the published 64 x 12 layout (docs/results.md, "What makes a
# difference on a CPU"); it starts from the least-squares map (frozen BatchNorm) and adds the image-space loss
# on every 2nd step. The same preset trains upscalers (model=upscaler: ch_mid x 8 convs).
PRESETS: dict[str, dict] = {
    "v4": {},  # city96's recipe: 64 x 12 blocks, batch 128, lr 5e-4, 50k steps (a GPU run)
    "cpu": {
        "ch_mid": 48, "blocks": 8, "convs": 8, "dropout": 0.0, "batch": 16, "crop": 24, "lr": 1e-3, "warmup": 100,
        "steps": 10_000, "eval_every": 500, "checkpoint_every": 500, "warm_start": "linear", "bn": "frozen",
        "image_weight": 50.0, "color_weight": 10.0, "image_every": 2, "image_batch": 8, "image_crop": 12,
    },
    # A second stage after "cpu" (--set init=RUN1): from those weights, the whole crop decoded on every step and
    # compared by MSE, what PSNR measures; the latent L1 down to a guide. About half the steps/s of "cpu".
    "finish": {
        "ch_mid": 48, "blocks": 8, "convs": 8, "dropout": 0.0, "batch": 8, "crop": 16, "lr": 2e-4, "warmup": 50,
        "steps": 2000, "eval_every": 500, "checkpoint_every": 500, "warm_start": "linear", "bn": "frozen",
        "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0, "latent_weight": 0.2, "image_weight": 500.0,
        "image_loss": "mse", "color_weight": 0.0, "image_every": 1, "image_batch": 0, "image_crop": 0,
    },
    # An H100/H200: the published width and depth, big batches of bigger crops, bf16 autocast, every step
    # with the image loss, torch.compile. Upscalers: the published 64 x 16 layout.
    "gpu": {
        "ch_mid": 64, "blocks": 12, "convs": 16, "dropout": 0.0, "batch": 128, "crop": 32, "lr": 1e-3,
        "warmup": 200, "steps": 20_000, "eval_every": 1000, "checkpoint_every": 2000, "warm_start": "linear",
        "bn": "frozen", "image_weight": 50.0, "color_weight": 10.0, "image_every": 1, "image_batch": 32,
        "precision": "bf16", "compile": True,
    },
    "tiny": {  # a smoke test of the whole pipeline (CI): seconds, not quality
        "ch_mid": 8, "blocks": 1, "dropout": 0.1, "batch": 4, "crop": 8, "lr": 1e-3, "warmup": 2,
        "steps": 12, "eval_every": 6, "checkpoint_every": 6, "log_every": 1,
    },
}  # fmt: skip
# One line per preset for `train --help`; preset_help() lists every entry of PRESETS, noted here or not.
PRESET_NOTES: dict[str, str] = {
    "v4": "city96's recipe, GPU",
    "cpu": "a 20-minute laptop run",
    "finish": "a second stage after cpu, with --set init=RUN",
    "gpu": "an H100/H200 run: the published layout, bf16, torch.compile",
    "tiny": "smoke test",
}


def preset_help() -> str:
    """``--preset``'s help text, built from :data:`PRESETS` so a new preset cannot be left out of it."""
    return ", ".join(f"{name} ({PRESET_NOTES[name]})" if name in PRESET_NOTES else name for name in PRESETS)


def _convert(key: str, value):
    """Coerce a file or command-line value to the type of the field ``key``."""
    kind = {f.name: f.type for f in fields(TrainConfig)}[key]
    try:
        if kind == "bool":
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return lowered in ("1", "true", "yes", "on")
            return bool(value)
        if kind == "int":
            number = float(value)
            if number != int(number):
                raise ValueError(value)
            return int(number)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        expected = {"bool": "true or false", "int": "an integer", "float": "a number"}.get(kind, "a string")
        raise InterposerError(f"Training option {key} must be {expected}, got {value!r}.") from exc


def read_config_file(path: str | os.PathLike) -> dict:
    """A JSON file, or TOML on Python 3.11+ (``tomllib``); a ``[train]`` table is used if present."""
    path = Path(path)
    if not path.is_file():
        raise InterposerError(f"Config file {path} does not exist.")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        if sys.version_info < (3, 11):
            raise InterposerError(f"{path}: TOML configs need Python 3.11+ (tomllib); use a JSON file.")
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InterposerError(f"{path} is not valid TOML: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InterposerError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InterposerError(f"{path} must hold a table/object of options.")
    return data.get("train", data)


def parse_overrides(items: list[str] | None) -> dict:
    """``["lr=1e-3", "steps=2000"]`` -> ``{"lr": "1e-3", "steps": "2000"}`` (typed later)."""
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InterposerError(f"--set takes KEY=VALUE pairs, got {item!r}.")
        result[key.strip().replace("-", "_")] = value.strip()
    return result


def build_config(
    preset: str | None = None, config_file: str | None = None, overrides: dict | None = None
) -> TrainConfig:
    """Defaults <- preset <- config file <- overrides."""
    data: dict = {}
    if preset:
        if preset not in PRESETS:
            raise InterposerError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        data.update(PRESETS[preset])
    if config_file:
        data.update(read_config_file(config_file))
    data.update(overrides or {})
    return TrainConfig.from_dict(data)
