"""``train``: fit an InterposerV4 or a LatentUpscalerV2 to paired raw latents, with exact resume.

One readable loop (nanoGPT style): sample a batch of aligned latent crops, forward, loss,
backward, AdamW step with the learning rate of this step (linear warm-up, then cosine decay:
a pure function of the step, so resuming needs only the step), optional EMA of the weights.
Every ``eval_every`` steps the held-out latents are scored (raw L1; next to it the least-squares
linear map's score, the baseline to beat); every ``checkpoint_every`` steps everything that
decides the future of the run is saved: model, EMA, optimiser, every RNG, the step. Resuming from
a checkpoint and running on gives the same weights, bit for bit, as never stopping (on the same
machine, torch build and thread count).

Three kinds of model share the loop: an interposer (one family's latents -> another's), an
upscaler (``model=upscaler``: one family's latents of a crop downscaled by ``factor`` -> that
family's latents of the full crop) and an interposer that converts *and* upscales
(``model=interposer factor=2``). Optional: a warm start from the least-squares map
(``training.warm_start``), and an image-space loss through the frozen target decoder against
the crop itself (data encoded with ``--rgb``).

Under ``torchrun --nproc-per-node N`` every process draws the same global batch from the same
generator and trains on its share of it (DistributedDataParallel averages the gradients), so N
processes compute what one process computes on the whole batch; rank 0 logs and checkpoints.

Run folder: ``config.json``, ``log.csv`` (and TensorBoard events if it is installed),
``loss.png``, ``checkpoints/step-*.safetensors``, ``summary.json``. ``config.json`` and ``summary.json``
name no machine paths (see ``training.provenance``); the checkpoints keep the data folder for ``--resume``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from interposer.atomic_files import write_text
from interposer.directions import Direction, direction
from interposer.errors import InterposerError
from interposer.linear import fit_affine
from interposer.linear_upscaler import fit_upscale_filter
from interposer.model import InterposerConfig, InterposerV4
from interposer.runtime import pick_device
from interposer.spaces import get_space
from interposer.upscaler_model import LatentUpscalerV2, UpscalerConfig
from interposer.upscalers import UpscalerSpec, upscaler

from . import distributed
from .checkpoint import (
    checkpoint_path,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_optimizer,
    optimizer_tensors,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from .config import TrainConfig
from .data import CropSampler, load_split, pixels_per_latent, require_families
from .encode import latent_key, read_manifest
from .machine import cpu_summary, has_native_bf16
from .provenance import data_identity, portable_config
from .warm_start import refit_tail, warm_start_interposer, warm_start_upscaler

log = logging.getLogger(__name__)

# Options that may change when a run is resumed (they do not change what the run computes,
# except `steps`, which stretches the cosine: the run is then no longer the uninterrupted one).
RESUMABLE_CHANGES = {"steps", "data", "out", "device", "threads", "log_every", "eval_every", "checkpoint_every",
                     "keep_checkpoints", "tensorboard", "minutes", "compile"}  # fmt: skip


def lr_at(step: int, cfg: TrainConfig, total: int) -> float:
    """Linear warm-up to ``lr``, hold until ``decay_start`` of the run, cosine down to ``min_lr * lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    start = max(cfg.warmup, int(cfg.decay_start * total))
    if step < start:
        return cfg.lr
    progress = min(1.0, (step - start) / max(1, total - start))
    return cfg.lr * (cfg.min_lr + (1 - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))


def run_spec(cfg: TrainConfig) -> Direction | UpscalerSpec:
    """What the run trains: a Direction (interposer, maybe with a factor) or an UpscalerSpec."""
    if cfg.model == "upscaler":
        if get_space(cfg.src).name != get_space(cfg.dst).name:
            raise InterposerError(
                f"An upscaler stays in one family (src {cfg.src} vs dst {cfg.dst}): use --src {cfg.dst} --dst "
                f"{cfg.dst}; to convert and upscale in one network, train model=interposer factor={cfg.factor:g}."
            )
        return upscaler(cfg.dst, cfg.factor)
    return direction(cfg.src, cfg.dst, cfg.factor)


def model_config(cfg: TrainConfig, spec: Direction | UpscalerSpec | None = None) -> InterposerConfig | UpscalerConfig:
    """Constructor arguments of the run's network (the published layout's, with the run's width/depth)."""
    spec = spec or run_spec(cfg)
    base = spec.default_config()
    if isinstance(base, UpscalerConfig):
        return UpscalerConfig(ch_in=base.ch_in, ch_out=base.ch_out, ch_mid=cfg.ch_mid, factor=base.factor,
                              convs=cfg.convs)  # fmt: skip
    return InterposerConfig(ch_in=base.ch_in, ch_out=base.ch_out, ch_mid=cfg.ch_mid, scale=base.scale,
                            blocks=cfg.blocks)  # fmt: skip


def build_model(config: InterposerConfig | UpscalerConfig, dropout: float) -> torch.nn.Module:
    if isinstance(config, UpscalerConfig):
        return LatentUpscalerV2.from_config(config)
    return InterposerV4.from_config(config, dropout=dropout)


def set_train_mode(model: torch.nn.Module, training: bool, bn: str) -> None:
    """``train()``/``eval()``, with BatchNorm kept in eval mode when ``bn`` is frozen."""
    model.train(training)
    if bn == "frozen":
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


def fit_linear_start(src: torch.Tensor, dst: torch.Tensor, config) -> tuple[torch.Tensor, torch.Tensor]:
    """The least-squares map of the run's kind: a per-pixel affine map after nearest resampling
    (interposer), or a 3x3 filter after nearest upsampling (upscaler); fitted on <= 512 crops."""
    step = max(1, len(src) // 512)
    if isinstance(config, UpscalerConfig):
        return fit_upscale_filter(src[::step], dst[::step], config.factor)
    return fit_affine(src[::step], dst[::step], config.scale)


def linear_model(config, fit: tuple[torch.Tensor, torch.Tensor]) -> torch.nn.Module:
    """The least-squares map as a network of the run's layout (exact; eval mode), widened where the run's
    ch_mid is too narrow to carry it (the baseline of a run without a warm start)."""
    config = replace(config, ch_mid=max(config.ch_mid, 2 * max(config.ch_in, config.ch_out)))
    model = build_model(config, 0.0)
    apply_warm_start(model, fit)
    return model.eval()


def apply_warm_start(model: torch.nn.Module, fit: tuple[torch.Tensor, torch.Tensor]) -> None:
    if isinstance(model, LatentUpscalerV2):
        warm_start_upscaler(model, *fit)
    else:
        warm_start_interposer(model, *fit)


class EMA:
    """Exponential moving average of every float tensor of a state dict (BatchNorm statistics too).

    The decay ramps up as ``(1 + step) / (10 + step)`` so short runs are not dominated by the
    random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value, 1 - decay)
            else:
                self.shadow[key].copy_(value)


class Logger:
    """CSV log (rewritten up to the resumed step on resume), optional TensorBoard, loss-curve PNG."""

    FIELDS = ("step", "lr", "loss", "val_l1", "val_l1_ema", "val_psnr", "elapsed_s")

    def __init__(self, run: Path, tensorboard: bool, resume_step: int | None) -> None:
        self.path = run / "log.csv"
        self.rows: list[dict] = []
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as handle:
                self.rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resume_step]
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, self.FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run / "tensorboard"), purge_step=resume_step)
            except ImportError:  # tensorboard is optional
                self.tb = None

    def log(self, **row) -> None:
        row = {k: ("" if row.get(k) is None else row[k]) for k in self.FIELDS}
        self.rows.append(row)
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, self.FIELDS).writerow(row)
        if self.tb is not None:
            for key in ("lr", "loss", "val_l1", "val_l1_ema", "val_psnr"):
                if row[key] != "":
                    self.tb.add_scalar(key, float(row[key]), int(row["step"]))

    def plot(self, path: Path, linear_l1: float | None, title: str) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        series = {k: [(int(r["step"]), float(r[k])) for r in self.rows if r[k] != ""] for k in self.FIELDS[2:5]}
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        if series["loss"]:
            steps, values = zip(*series["loss"], strict=True)
            width = max(1, len(values) // 50)
            smooth = np.convolve(values, np.ones(width) / width, mode="valid")
            ax.plot(steps[width - 1 :], smooth, label="train loss", color="tab:blue", alpha=0.8)
        for key, color in (("val_l1", "tab:orange"), ("val_l1_ema", "tab:green")):
            if series[key]:
                ax.plot(*zip(*series[key], strict=True), "o-", label=key.replace("_", " "), color=color, ms=3)
        if linear_l1 is not None:
            ax.axhline(linear_l1, color="gray", ls="--", label="linear map (val l1)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class TimeBudget:
    """Fits a run into ``minutes`` of wall-clock time (counted from the start of :func:`train`).

    Steps are timed between ``CHECKS`` (after the first, slow steps), evaluations and checkpoints
    are timed when they happen, and the total number of steps is set so that the last step, its
    evaluation and its checkpoint end on time. The cosine schedule follows the new total; the
    total is stored in checkpoints, so a resumed run keeps it. If steps slow down later (another
    process takes the CPU), the run ends at the deadline, before the cosine has reached its end.
    """

    CHECKS = (3, 25, 200, 1000, 5000)  # start timing after step 3; set the total at 25, refine it later

    def __init__(self, minutes: float, started: float) -> None:
        self.seconds, self.started = minutes * 60, started
        self.mark: tuple[int, float] | None = None
        self.eval_s = self.checkpoint_s = 0.0
        self.extra = 0.0  # seconds spent in evaluations and checkpoints since the mark

    def add_overhead(self, kind: str, seconds: float) -> None:
        if kind == "eval":
            self.eval_s = seconds
        else:
            self.checkpoint_s = seconds
        self.extra += seconds

    def total(self, step: int, total: int, cfg: TrainConfig) -> int:
        """The new total at a check step (else ``total`` unchanged)."""
        now = time.perf_counter()
        if step == self.CHECKS[0]:
            self.mark, self.extra = (step, now), 0.0
        if now - self.started > self.seconds - self.eval_s - self.checkpoint_s:
            return step  # out of time: finish here
        if step not in self.CHECKS[1:] or self.mark is None or step >= total:
            return total
        per_step = (now - self.mark[1] - self.extra) / (step - self.mark[0])
        per_step += self.eval_s / cfg.eval_every + self.checkpoint_s / cfg.checkpoint_every
        left = self.seconds - (now - self.started) - self.eval_s - self.checkpoint_s
        return max(step + 1, step + int(left / per_step))


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """None: fp32. Autocast keeps fp32 master weights; only convolutions run in half precision.

    On a CPU ``auto`` is bf16 only where it is native (AVX512-BF16/AMX), fp32 elsewhere; an explicit
    bf16 on a CPU without it warns (measured ~3x slower than fp32)."""
    if device.type == "cpu":
        if cfg.precision == "bf16" and not has_native_bf16():
            from .machine import SLOW_BF16_NOTE

            log.warning(SLOW_BF16_NOTE)
        if cfg.precision == "bf16" or (cfg.precision == "auto" and has_native_bf16()):
            return torch.bfloat16
        if cfg.precision == "fp16":
            return torch.float16
        return None
    if cfg.precision == "fp32":
        return None
    bf16_gpu = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_gpu):
        return torch.bfloat16
    return torch.float16


class StopRequest:
    """Ctrl-C during training finishes the current step and saves a checkpoint, so ``--resume``
    continues exactly; a second Ctrl-C aborts at once. Only the main thread can own signals."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: saving a checkpoint after this step (press again to abort without it)", flush=True)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class LatentLoss:
    """L1 / MSE / Huber on raw latents, optionally with every channel divided by its std.

    A global scale of the loss does not matter to Adam, so "raw" vs "model-space" latents is
    not a choice worth a flag; per-channel weights are (channels differ in spread).
    """

    def __init__(self, kind: str, weights: torch.Tensor | None) -> None:
        self.kind, self.weights = kind, weights

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred = pred.float()
        if self.weights is not None:
            w = self.weights.view(1, -1, 1, 1)
            pred, target = pred * w, target * w
        if self.kind == "mse":
            return F.mse_loss(pred, target)
        if self.kind == "huber":
            return F.smooth_l1_loss(pred, target, beta=1.0)
        return F.l1_loss(pred, target)


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk: int = 16,
    *,
    decoder=None,
    rgb: torch.Tensor | None = None,
) -> tuple[float, float | None]:
    """Mean raw L1 on held-out latents (eval mode: BatchNorm running statistics, no dropout) and,
    with a decoder and the held-out crops, the mean PSNR (dB) of the decoded prediction."""
    was_training = model.training
    model.eval()
    total, psnrs = 0.0, []
    for i, (xs, ys) in enumerate(zip(x.split(chunk), y.split(chunk), strict=True)):
        pred = model(xs.contiguous(memory_format=torch.channels_last)).float()
        total += F.l1_loss(pred, ys, reduction="sum").item()
        if decoder is not None and rgb is not None:
            image = decoder(pred).float().clamp(0, 1)
            target = rgb[i * chunk : i * chunk + len(xs)].float() / 255
            mse = ((image - target) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
            psnrs += (-10 * torch.log10(mse)).tolist()
    model.train(was_training)
    return total / y.numel(), (round(sum(psnrs) / len(psnrs), 3) if psnrs else None)


def _ema_model(ema: EMA, template: torch.nn.Module) -> torch.nn.Module:
    model = build_model(template.config, 0.0).to(next(template.parameters()).device)
    model.load_state_dict(ema.shadow)
    return model.to(memory_format=torch.channels_last)


def image_window(
    pred: torch.Tensor, rgb: torch.Tensor, cfg: TrainConfig, px: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The part of the batch the image loss decodes: ``image_batch`` crops, each cut to a random
    ``image_crop`` x ``image_crop`` window of latents (and the matching pixels of the crop). On a
    CPU the decoder costs several times the model, so a few small windows keep it affordable."""
    n = cfg.image_batch or len(pred)
    pred, rgb = pred[:n], rgb[:n]
    side = pred.shape[-1]
    if not cfg.image_crop or cfg.image_crop >= side:
        return pred, rgb
    c = cfg.image_crop
    top, left = (int(v) for v in torch.randint(0, side - c + 1, (2,), generator=generator))
    return pred[..., top : top + c, left : left + c], rgb[..., top * px : (top + c) * px, left * px : (left + c) * px]


def image_loss(decoder, pred: torch.Tensor, rgb: torch.Tensor, cfg: TrainConfig, px: int,
               generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """The weighted image-space terms of one step: decode a few windows of the prediction, leave
    ``image_margin`` border pixels out (the decoder's zero padding there is not the image's), compare."""
    latents, target = image_window(pred, rgb, cfg, px, generator)
    image, m = decoder(latents), cfg.image_margin
    if m and image.shape[-1] > 4 * m:
        image, target = image[..., m:-m, m:-m], target[..., m:-m, m:-m]
    term, color = image_terms(image, target, cfg.color_weight, cfg.image_loss)
    return cfg.image_weight * term + cfg.color_weight * color


def image_terms(
    image: torch.Tensor, target: torch.Tensor, color_weight: float, kind: str = "l1"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 or MSE, colour) between a decoded prediction and the crop. MSE is what the held-out PSNR measures: a
    second stage on it trades a little L1 for decibels. The colour term compares each RGB channel's mean and
    standard deviation per image, the cheap guard against the colour casts published interposers are known for."""
    image = image.float()
    term = F.mse_loss(image, target) if kind == "mse" else F.l1_loss(image, target)
    if not color_weight:
        return term, torch.zeros((), device=image.device)
    dims = (2, 3)
    color = F.l1_loss(image.mean(dims), target.mean(dims)) + F.l1_loss(image.std(dims), target.std(dims))
    return term, color


def load_init(cfg: TrainConfig) -> tuple[dict[str, torch.Tensor], dict]:
    """The model weights ``cfg.init`` names and the record of how they were trained (kept in this run's checkpoints
    and summary, so the card's retrain command has every stage). Refuses, in one line, weights of another layout."""
    groups, state = load_checkpoint(cfg.init)
    saved = TrainConfig.from_dict(state["config"])
    # An interposer may go on into another target (same source): its tail is fitted again (see retargets).
    target = ("dst",) if cfg.model != "interposer" or saved.model != "interposer" else ()
    must_match = ("model", "src", *target, "factor", "ch_mid", "blocks" if cfg.model == "interposer" else "convs")
    differ = [f"{k} {getattr(saved, k)} (this run: {getattr(cfg, k)})" for k in must_match
              if getattr(saved, k) != getattr(cfg, k)]  # fmt: skip
    if differ:
        raise InterposerError(f"init={cfg.init} was trained with {', '.join(differ)}: its weights cannot start this "
                              "run; pass the same options or start from scratch.")  # fmt: skip
    record = {"config": portable_config(state["config"]), "step": state["step"], "elapsed_s": state["elapsed_s"],
              "schedule": state.get("schedule", [[0, state["total_steps"]]]), "machine": state.get("machine"),
              "data": state.get("data"), "init": state.get("init")}  # fmt: skip
    return groups["model"], record


def start_from(model: torch.nn.Module, weights: dict[str, torch.Tensor], init: str, keep_tail: bool = True) -> None:
    """Load the ``init`` run's weights into ``model`` (all of them, or all but the tail that ``refit_tail`` fits
    again). load_init compared the layouts the run *records*; a damaged or edited file can still disagree with
    it, and that is one line naming the option, not torch's traceback."""
    kept = weights if keep_tail else {k: v for k, v in weights.items() if not k.startswith("tail.")}
    expected_missing = set() if keep_tail else {"tail.weight", "tail.bias"}
    try:
        left = model.load_state_dict(kept, strict=False)
        fits = not left.unexpected_keys and set(left.missing_keys) == expected_missing
    except RuntimeError:  # a tensor of another shape
        fits = False
    if not fits:
        part = "weights" if keep_tail else "head and core"
        raise InterposerError(f"init={init}: its {part} do not fit this run's model (a damaged or edited checkpoint?); "
                              "start from another run or from scratch.")  # fmt: skip


def retargets(init: dict | None, cfg: TrainConfig) -> bool:
    """Whether the ``init`` run (its record) trained another target than ``cfg``: then its head and core start
    this run and its tail is fitted again by least squares onto this run's target (``refit_tail``)."""
    return bool(init) and init["config"]["dst"] != cfg.dst


def run_folder_of(resume: str | Path, saved_out: str) -> Path | str:
    """Where a resumed run goes on: the run folder that was resumed (a copy of a run continues in the copy,
    never in the folder it was copied from); the saved ``out`` only for a checkpoint outside a run folder."""
    path = find_checkpoint(resume)
    return path.parent.parent if path.parent.name == "checkpoints" else saved_out


def resume_config(saved: dict, overrides: dict) -> TrainConfig:
    """The checkpoint's configuration with the overrides a resume allows."""
    cfg = TrainConfig.from_dict(saved)
    changed = {k: v for k, v in TrainConfig.from_dict({**saved, **overrides}).to_dict().items() if v != saved.get(k)}
    refused = sorted(set(changed) - RESUMABLE_CHANGES)
    if refused:
        raise InterposerError(
            f"Cannot change {', '.join(refused)} when resuming (the run would no longer be the same run); "
            f"start a new run instead. Changeable on resume: {', '.join(sorted(RESUMABLE_CHANGES))}."
        )
    if "steps" in changed:
        log.warning("steps changed from %s to %s: the cosine schedule stretches from here", cfg.steps, changed["steps"])
    return replace(cfg, **changed)


def _image_decoder(cfg: TrainConfig, manifest: dict, family: str, device: torch.device):
    """The frozen target decoder for the image loss: raw latents -> images, gradients flow to the input
    only (the decoder's weights are frozen; under autocast it runs in the run's precision)."""
    from .vaes import load_vae

    recorded = manifest["vaes"].get(family)
    if recorded is None:
        raise InterposerError(f"{cfg.data} records no VAE for {family}: the image loss needs its decoder.")
    vae = load_vae(recorded["source"], family, device=str(device), precision="fp32", allow_download=False)
    return vae.decode_with_grad


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    overrides: dict | None = None,
    stop_at: int | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) a run; return the run folder.

    ``overrides`` apply on top of a resumed configuration (see ``RESUMABLE_CHANGES``);
    ``stop_at`` ends this session after that step with a checkpoint (continue with ``resume``).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    groups, state = (None, None)
    if resume is not None:
        groups, state = load_checkpoint(resume)
        cfg = resume_config(state["config"], overrides or {})
        if "out" not in (overrides or {}):
            cfg = replace(cfg, out=str(run_folder_of(resume, cfg.out)))
    if not cfg.data:
        raise InterposerError("No training data: pass --data DIR (a folder written by `python -m training encode`).")
    spec = run_spec(cfg)
    src_space, dst_space = spec.in_space, spec.out_space
    run = Path(cfg.out or f"runs/{spec.name}")
    if resume is None and list_checkpoints(run):
        raise InterposerError(f"{run} already has checkpoints: continue with --resume {run}, or pick another --out.")
    # A second stage: the earlier run's weights and record, checked before any data is read. A resume keeps the record.
    init_weights, init = load_init(cfg) if cfg.init and groups is None else (None, (state or {}).get("init"))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(distributed.local_device(cfg.device))
    world = distributed.init(device)
    amp_dtype = _autocast_dtype(cfg, device)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    # Data: all pairs in memory (+ the crops for the image loss), the least-squares map to beat.
    manifest = read_manifest(cfg.data)
    require_families(manifest, cfg.data, [src_space.name, dst_space.name])
    data_id = data_identity(cfg.data, manifest) if world.main else None  # for summaries: no machine paths
    src_key, dst_key = latent_key(src_space.name, cfg.factor), dst_space.name
    use_image = cfg.image_weight > 0 or cfg.color_weight > 0
    keys = [src_key, dst_key] + (["rgb"] if use_image else [])
    tensors = load_split(cfg.data, keys)
    if tensors is None:
        raise InterposerError(f"{cfg.data} holds no training crops (all images skipped or held out?).")
    src, dst = tensors[src_key], tensors[dst_key]
    # Held-out crops, decoded PSNR included whenever the data has the crops (even without the image loss).
    has_rgb = bool(manifest["settings"]["rgb"])
    holdout = load_split(cfg.data, [src_key, dst_key] + (["rgb"] if has_rgb else []), "holdout")
    mconf = model_config(cfg, spec)
    fit = fit_linear_start(src, dst, mconf)
    std_dst = dst.std(dim=(0, 2, 3))
    std_src = src.std(dim=(0, 2, 3))
    sampler = CropSampler(
        src.to(device), dst.to(device), None, cfg.crop, cfg.batch, flip=cfg.flip, seed=cfg.seed,
        src_px=pixels_per_latent(src_space, cfg.factor), dst_px=pixels_per_latent(dst_space),
        rgb=tensors["rgb"].to(device) if use_image else None,
    )  # fmt: skip
    decoder = _image_decoder(cfg, manifest, dst_space.name, device) if use_image or has_rgb else None
    if holdout is not None:
        val_x, val_y = holdout[src_key].to(device), holdout[dst_key].to(device)
        val_rgb = holdout["rgb"].to(device) if "rgb" in holdout else None
        val_linear, val_psnr_linear = validate(linear_model(mconf, fit).to(device), val_x, val_y,
                                               decoder=decoder, rgb=val_rgb)  # fmt: skip
    else:
        val_linear = val_psnr_linear = None

    if world.main:
        run.mkdir(parents=True, exist_ok=True)

    # Model(s), optimiser, EMA, loss. Seeded again here, so the initial weights do not depend on what
    # drew random numbers before (a VAE decoder built fresh or taken from load_vae's cache, the linear model).
    torch.manual_seed(cfg.seed)
    model = build_model(mconf, cfg.dropout)
    if init_weights is not None:
        retarget = retargets(init, cfg)
        start_from(model, init_weights, cfg.init, keep_tail=not retarget)
        if retarget:
            set_train_mode(model, False, cfg.bn)
            refit_tail(model.to(device), src, dst, seed=cfg.seed)  # the features on the run's device
    elif cfg.warm_start == "linear" and groups is None:
        apply_warm_start(model, fit)
    model = model.to(device, memory_format=torch.channels_last)
    models = {"model": model}
    if cfg.reverse:
        back = InterposerConfig(ch_in=mconf.ch_out, ch_out=mconf.ch_in, ch_mid=cfg.ch_mid, scale=1 / mconf.scale,
                                blocks=cfg.blocks)  # fmt: skip
        models["reverse"] = InterposerV4.from_config(back, dropout=cfg.dropout).to(
            device, memory_format=torch.channels_last
        )
    params = [p for m in models.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = EMA(model, cfg.ema) if cfg.ema else None
    normalized = cfg.loss_space == "normalized"
    loss_dst = LatentLoss(cfg.loss, (1 / std_dst).to(device) if normalized else None)
    loss_src = LatentLoss(cfg.loss, (1 / std_src).to(device) if normalized else None)

    step, total, elapsed_before = 0, cfg.steps, 0.0
    schedule = [[0, cfg.steps]]  # [step, total] where the total was set: more than one entry = resumed with --steps
    if groups is not None:
        for name, m in models.items():
            m.load_state_dict(groups[name])
        if ema is not None:
            ema.shadow = {k: v.to(device) for k, v in groups["ema"].items()}
        load_optimizer(optimizer, groups.get("optim", {}), state["optimizer_groups"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        sampler.load_state_dict(restore_rng(groups["rng"], state))
        step, elapsed_before = state["step"], state["elapsed_s"]
        total = cfg.steps if "steps" in (overrides or {}) else state["total_steps"]
        schedule = [list(s) for s in state.get("schedule", [[0, state["total_steps"]]])]
        if total != schedule[-1][1]:
            schedule.append([step, total])  # the cosine stretches from here to the new total
    forward = distributed.wrap(model, world, device)
    if cfg.compile:
        forward = torch.compile(forward)
    share = world.share(cfg.batch)
    if world.main:
        write_text(run / "config.json", json.dumps(portable_config(cfg.to_dict()), indent=1))
    logger = Logger(run, cfg.tensorboard, step if groups is not None else None) if world.main else None
    layout = (f"{mconf.ch_mid} x {mconf.convs} convs" if isinstance(mconf, UpscalerConfig)
              else f"{mconf.ch_mid} x {mconf.blocks} blocks")  # fmt: skip

    def snapshot(final: bool = False) -> Path | None:
        if not world.main:
            return None
        rng_tensors, rng_json = rng_state(sampler.state_dict())
        optim, optim_groups = optimizer_tensors(optimizer)
        tensors = {name: m.state_dict() for name, m in models.items()} | {"optim": optim, "rng": rng_tensors}
        if ema is not None:
            tensors["ema"] = ema.shadow
        summary = {
            "direction": spec.name, "kind": spec.kind, "step": step, "total_steps": total, "final": final,
            "schedule": [*schedule[:-1], [schedule[-1][0], total]],
            "elapsed_s": round(elapsed_before + time.perf_counter() - started, 1),
            "val_l1": last_val.get("val_l1"), "val_l1_ema": last_val.get("val_l1_ema"), "val_l1_linear": val_linear,
            "val_psnr": last_val.get("val_psnr"), "val_psnr_linear": val_psnr_linear,
            "train_loss": round(float(np.mean(recent)), 5) if recent else None,
            "steps_per_s": speed.get("steps_per_s"), "machine": machine,
            "data": data_id, "params": sum(p.numel() for p in model.parameters()), "init": init,
        }  # fmt: skip
        meta = {"config": cfg.to_dict(), "optimizer_groups": optim_groups, "scaler": scaler.state_dict(),
                "window_rng": window_rng.get_state().tolist(), **rng_json, **summary}  # fmt: skip
        path = save_checkpoint(checkpoint_path(run, step), tensors, meta)
        for old in list_checkpoints(run)[: -cfg.keep_checkpoints]:
            old.unlink()
        shared = {**summary, "checkpoint": path.relative_to(run).as_posix()}  # a run folder gets shared: no paths
        write_text(run / "summary.json", json.dumps(shared, indent=1))
        return path

    def validate_now() -> float:
        t = time.perf_counter()
        if holdout is not None and world.main:
            last_val["val_l1"], psnr = validate(model, val_x, val_y, decoder=decoder, rgb=val_rgb)
            last_val["val_l1"] = round(last_val["val_l1"], 5)
            if psnr is not None:
                last_val["val_psnr"] = psnr
            if ema is not None:
                last_val["val_l1_ema"] = round(validate(_ema_model(ema, model), val_x, val_y)[0], 5)
            set_train_mode(model, True, cfg.bn)
            lr = f"{lr_at(min(step, total - 1), cfg, total):.3e}"
            logger.log(step=step, lr=lr, elapsed_s=round(elapsed(), 1), **last_val)
            logger.plot(run / "loss.png", val_linear, f"{spec.name}: {layout}")
        return time.perf_counter() - t

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - started

    precision = "fp32" if amp_dtype is None else str(amp_dtype).removeprefix("torch.")
    machine = {"device": str(device), "precision": precision, "processes": world.size,
               "cpu": cpu_summary() if device.type == "cpu" else None}  # fmt: skip
    last_val: dict[str, float] = {}
    recent: list[float] = []
    speed: dict[str, float] = {}
    budget = TimeBudget(cfg.minutes, started) if cfg.minutes > 0 and groups is None else None
    seconds = validate_now() if groups is None else 0.0
    if budget is not None:
        budget.add_overhead("eval", seconds)
    if world.main:
        linear_note = "no held-out data"
        if val_linear is not None:
            linear_note = f"linear map val l1 {val_linear:.4f}" + (
                f", val PSNR {val_psnr_linear:.2f} dB" if val_psnr_linear is not None else ""
            )
        start_note = ", warm start: least squares" if cfg.warm_start == "linear" else ""
        if cfg.init and init:
            start_note = f", starts from {cfg.init} (step {init['step']})"
            if retargets(init, cfg):
                start_note += f", a {init['config']['src']}-to-{init['config']['dst']} run: its tail fitted again"
        print(
            f"{spec.name} ({spec.kind}): {len(src)} training crops, {0 if holdout is None else len(val_x)} held-out; "
            f"{sum(p.numel() for p in model.parameters()):,} parameters ({layout}"
            f"{start_note}) on {device}"
            f"{f' x {world.size} processes' if world.size > 1 else ''}, {precision}"
            + (f" ({machine['cpu']})" if machine["cpu"] else "")
            + f"; {linear_note}",
            flush=True,
        )
    bar = tqdm(total=total, initial=step, desc=spec.name, unit="step", disable=not progress or not world.main,
               dynamic_ncols=True)  # fmt: skip
    saved_at = -1
    for m in models.values():
        set_train_mode(m, True, cfg.bn)
    timed_from: tuple[int, float] | None = None
    window_rng = torch.Generator().manual_seed(cfg.seed + 1)
    if groups is not None and "window_rng" in (state or {}):
        window_rng.set_state(torch.tensor(state["window_rng"], dtype=torch.uint8))
    with StopRequest() as stop:
        while step < total:
            lr = lr_at(step, cfg, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = [t[share] for t in sampler.sample()]
            x = batch[0].contiguous(memory_format=torch.channels_last)
            y = batch[1].contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                pred = forward(x)
                loss = cfg.latent_weight * loss_dst(pred, y)
                if use_image and step % cfg.image_every == 0:
                    loss = loss + image_loss(decoder, pred, batch[2], cfg, sampler.fd, window_rng)
                if cfg.reverse:
                    back = models["reverse"]
                    x_back = back(y)
                    loss = loss + loss_src(x_back, x)
                    if cfg.roundtrip_weight:
                        loss = loss + cfg.roundtrip_weight * (loss_src(back(pred), x) + loss_dst(model(x_back), y))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model, step)
            step += 1
            if timed_from is None and step - (state["step"] if state else 0) == 5:
                timed_from = (step, time.perf_counter())  # after the first, slow steps
            elif timed_from is not None and (step - timed_from[0] in (50, 500) or step == total):
                speed["steps_per_s"] = round((step - timed_from[0]) / (time.perf_counter() - timed_from[1]), 2)
                if step - timed_from[0] == 50:
                    bar.write(f"measured: {speed['steps_per_s']} steps/s ({precision} on {device})")

            if step % cfg.log_every == 0 or step == total:
                value = loss.item()
                if not math.isfinite(value):
                    raise InterposerError(f"Loss became {value} at step {step}: lower lr, or use precision fp32.")
                recent = ([*recent, value])[-50:]
                if logger is not None:
                    logger.log(step=step, lr=f"{lr:.3e}", loss=round(value, 5), elapsed_s=round(elapsed(), 1))
                bar.set_postfix(loss=f"{np.mean(recent):.4f}", lr=f"{lr:.1e}", **{k: v for k, v in last_val.items()})
            if budget is not None and total != (new_total := budget.total(step, total, cfg)):
                what = "out of time, ending the run here" if new_total == step else f"{new_total} steps in all"
                bar.write(f"--minutes {cfg.minutes:g}: {what}")
                total = bar.total = new_total
            if step % cfg.eval_every == 0 or step == total:
                seconds = validate_now()
                if budget is not None:
                    budget.add_overhead("eval", seconds)
            if step % cfg.checkpoint_every == 0 or step in (total, stop_at):
                seconds = time.perf_counter()
                snapshot(final=step == total)
                saved_at = step
                if budget is not None:
                    budget.add_overhead("checkpoint", time.perf_counter() - seconds)
            bar.update(1)
            if stop.requested and saved_at != step:
                snapshot()
                saved_at = step
            if step == stop_at or stop.requested:
                break
    bar.close()
    if saved_at != step:  # resumed at the end: nothing new to save, keep the summary current
        snapshot(final=True)
    distributed.barrier(world)
    if logger is not None:
        logger.close()
    distributed.finish(world)
    if stop.requested and step < total:
        raise KeyboardInterrupt  # after the checkpoint; the command line says how to resume
    if not world.main:
        return run
    final = json.loads((run / "summary.json").read_text())
    if step < total:
        print(f"stopped at step {step} of {total}; continue with: python -m training train --resume {run}")
        return run
    print(
        f"done: {step} steps in {final['elapsed_s']:.0f} s ({final['steps_per_s']} steps/s); val l1 {final['val_l1']}"
        f" (ema {final['val_l1_ema']}), linear map {val_linear if val_linear is None else round(val_linear, 5)}"
        + (f"; val PSNR {final['val_psnr']} dB vs linear {val_psnr_linear}" if final.get("val_psnr") else "")
        + f".\nEvaluate: python -m training eval {run} --data {cfg.data}\n"
        f"Export:   python -m training export {run} --tag my-tag --out-dir models/LatentInterposer"
    )
    return run
