"""``export``: a training checkpoint -> a weights file the ``interposer`` package loads unchanged.

The file is named like the published ones: ``{src}-to-{dst}_interposer-{tag}.safetensors`` for an
interposer (``{src}-to-{dst}-x2.0_interposer-{tag}`` for one that also upscales), and
``latent-upscaler-{tag}_SD{family}-x{factor}.safetensors`` for an upscaler. It is
written with ``interposer.weights.save_weights``: its metadata carries the kind, what it maps
(``src``/``dst`` or ``space``/``factor``), the constructor arguments (so any width and depth
loads), ``version`` (the tag), ``trained`` = ``true`` (``python -m interposer list`` tells it from
a published file) and ``training`` (a JSON summary: steps, held-out losses, data, configuration). The
summary names no machine paths: the data and the VAEs by what identifies them (names, SHA-256 hashes;
see ``training.provenance``), the configuration without ``data`` and ``out``.
The written file is read back with ``load_weights`` before the command reports success.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import torch

from interposer import __version__
from interposer.directions import WEIGHTS_VERSION, Direction, direction
from interposer.errors import InterposerError
from interposer.model import InterposerConfig
from interposer.upscalers import UPSCALER_VERSION, UpscalerSpec
from interposer.weights import TRAINED_KEY, load_weights, save_weights

from .checkpoint import find_checkpoint, load_checkpoint
from .config import TrainConfig
from .provenance import portable_config, shareable_data
from .train import model_config, run_spec

EXPORT_FORMAT_VERSION = "1"
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def weights_from_checkpoint(
    checkpoint: str | os.PathLike, *, ema: bool | None = None, reverse: bool = False
) -> tuple[dict[str, torch.Tensor], object, Direction | UpscalerSpec, dict]:
    """(state dict, constructor, direction, training summary) of a checkpoint.

    ``ema``: None = the EMA weights when the run kept them, else the raw weights.
    ``reverse``: the dst->src model of a run trained with ``reverse = true``.
    """
    groups, state = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    dirn = run_spec(cfg)
    config = model_config(cfg, dirn)
    if reverse:
        if "reverse" not in groups:
            raise InterposerError(f"{checkpoint} has no reverse model (train with --set reverse=true).")
        dirn = direction(cfg.dst, cfg.src)
        config = InterposerConfig(ch_in=config.ch_out, ch_out=config.ch_in, ch_mid=config.ch_mid,
                                  scale=1 / config.scale, blocks=config.blocks)  # fmt: skip
        tensors, used_ema = groups["reverse"], False
    else:
        if ema and "ema" not in groups:
            raise InterposerError(f"{checkpoint} holds no EMA weights (train with --set ema=0.999).")
        used_ema = "ema" in groups if ema is None else ema
        tensors = groups["ema" if used_ema else "model"]
    summary = {
        "step": state["step"], "total_steps": state["total_steps"], "elapsed_s": state["elapsed_s"],
        "schedule": state.get("schedule", [[0, state["total_steps"]]]),
        "val_l1": state.get("val_l1_ema" if used_ema else "val_l1"), "val_l1_linear": state.get("val_l1_linear"),
        "val_psnr": None if used_ema else state.get("val_psnr"), "val_psnr_linear": state.get("val_psnr_linear"),
        "steps_per_s": state.get("steps_per_s"), "machine": state.get("machine"),
        "ema": used_ema, "reverse": reverse, "data": shareable_data(state.get("data")),
        "config": portable_config(state["config"]),  # the checkpoint's own keeps this machine's paths
        "checkpoint": Path(checkpoint).name,
        "init": state.get("init"),  # the earlier stage(s) of a run started from another run's weights
    }  # fmt: skip
    return tensors, config, dirn, summary


def export(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    tag: str,
    *,
    ema: bool | None = None,
    reverse: bool = False,
    half: bool = False,
    card: dict | None = None,
) -> Path:
    """Write the file (named like the published ones, see the module docstring); return its path.

    ``half``: fp16 tensors (half the size; the runtime computes in the precision it is asked for). ``card``:
    what :func:`training.card.model_card` needs besides the run: ``report`` (an eval report.json's contents),
    ``licence`` and ``data_note``; the card goes into the file's ``model_card`` metadata."""
    if not TAG.match(tag):
        raise InterposerError(f"Tag {tag!r}: use letters, digits, '.', '_', '+', '-' (e.g. 'mine-1' or 'v4.0').")
    checkpoint = find_checkpoint(checkpoint)
    state_dict, config, dirn, summary = weights_from_checkpoint(checkpoint, ema=ema, reverse=reverse)
    summary["exported"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    metadata = {
        "version": tag, "format_version": EXPORT_FORMAT_VERSION, "training": json.dumps(summary), TRAINED_KEY: "true",
        "exported_by": f"sd-webui-latent-interposer {__version__} (python -m training export)",
    }  # fmt: skip
    if half:
        state_dict = {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}
    if card is not None:
        from .card import CARD_KEY, model_card, retrain_command

        made = model_card({**summary, "direction": dirn.name}, card["report"], licence=card["licence"],
                          data_note=card["data_note"],
                          retrain=retrain_command(summary["config"], summary["schedule"], summary["init"],
                                                 summary.get("data")))  # fmt: skip
        metadata[CARD_KEY] = json.dumps(made)
    path = save_weights(Path(out_dir) / dirn.filename(tag), state_dict, config, direction=dirn, metadata=metadata)
    load_weights(path, dirn)  # the file must load exactly as the webui and the CLI load it
    return path


def usage_note(path: Path, tag: str) -> str:
    """How to use an exported file (printed by the command)."""
    if path.name.startswith("latent-upscaler-"):
        if tag == UPSCALER_VERSION:
            return (
                f"The webui's Latent (NN) looks up latent-upscaler-{UPSCALER_VERSION}_SD*-x*.safetensors: copy the "
                f"file into models/LatentInterposer (or set Settings -> Latent Interposer -> Weights folder to "
                f"{path.parent})."
            )
        return (
            f"Use it with: python -m interposer convert IN OUT --src FAMILY --dst FAMILY --upscale FACTOR "
            f"--upscaler-weights {path}.\nFor the webui, export again with --tag {UPSCALER_VERSION} (the name "
            "Latent (NN) looks up) into a folder of its own and set it as the Weights folder."
        )
    if tag == WEIGHTS_VERSION:
        return (
            f"The webui looks up *_interposer-{WEIGHTS_VERSION}.safetensors: set Settings -> Latent Interposer -> "
            f"Weights folder to {path.parent} (or copy the file into models/LatentInterposer, where it takes "
            "precedence over the published file in models/LatentInterposer/v4.0/)."
        )
    return (
        f"Use it with: python -m interposer convert IN OUT --weights {path}  (or compare IMAGE ... --weights {path}).\n"
        f"For the webui, which looks up *_interposer-{WEIGHTS_VERSION}.safetensors, export again with --tag "
        f"{WEIGHTS_VERSION} into a folder of its own and set it as the Weights folder."
    )
