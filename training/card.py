"""Model cards: what a shipped weights file is, what it was trained on and how well it does, in the file itself.

``export --card REPORT`` puts :func:`model_card` (JSON) into the file's ``model_card`` metadata, built from the
run's training summary and an ``eval`` report on held-out images; ``card FILE ...`` prints the cards of files as
Markdown (docs/models.md is that output), so the docs and the files cannot disagree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from interposer.errors import InterposerError
from interposer.safetensors_header import read_safetensors_header

CARD_KEY = "model_card"
CARD_VERSION = 1


def stages_of(init: dict | None) -> list[dict]:
    """The earlier stages of a run, oldest first, from its ``init`` record (one nested record per stage, see
    ``training.train.load_init``)."""
    stages = []
    while init:
        stages.insert(0, init)
        init = init.get("init")
    return stages


def model_card(summary: dict, report: dict, *, licence: str, data_note: str, retrain: str) -> dict:
    """The card of one exported file: ``summary`` is the export's training summary, ``report`` an ``eval``
    report.json of the same weights (its direction must match)."""
    direction = summary.get("direction") or report["direction"]
    if report.get("direction") != direction:
        raise InterposerError(f"The eval report is for {report.get('direction')}, the weights for {direction}.")
    mean = report["mean"]
    missing = [p for p in ("interposer", "VAE bridge", "linear map") if not mean.get(p)]
    if missing:
        raise InterposerError(f"The eval report lacks {', '.join(missing)} (run eval with --data for the linear map).")
    data = summary.get("data") or {}
    machine = summary.get("machine") or {}
    ceiling = mean.get("target VAE round trip")
    stages = stages_of(summary.get("init"))  # a run started from another run's weights: steps and hours of all
    seconds = summary.get("elapsed_s", 0) + sum(stage["elapsed_s"] for stage in stages)
    return {
        "card_version": CARD_VERSION,
        "direction": direction,
        "licence": licence,
        "data": {"note": data_note, "images": data.get("images"), "crops": data.get("crops"),
                 "crop_px": data.get("crop_px"), "held_out_images": data.get("holdout"), "hue": data.get("hue") or 0.0,
                 "vaes": sorted((data.get("vaes") or {}).keys())},
        "steps": summary.get("step", 0) + sum(stage["step"] for stage in stages),
        "stages": [stage["step"] for stage in stages] + [summary.get("step")] if stages else None,
        "stage_directions": _stage_directions(stages, direction),
        "machine": {"device": machine.get("device"), "precision": machine.get("precision"), "cpu": machine.get("cpu"),
                    "steps_per_s": summary.get("steps_per_s"), "hours": round(seconds / 3600, 2)},
        "held_out": {
            "images": report["images"], "max_side": report.get("max_side"),
            "psnr": mean["interposer"]["psnr"], "ssim": mean["interposer"]["ssim"],
            "bridge_psnr": mean["VAE bridge"]["psnr"], "linear_psnr": mean["linear map"]["psnr"],
            "ceiling_psnr": ceiling["psnr"] if ceiling else None, "gap_to_bridge": report.get("gap_to_bridge"),
            "worst": report.get("worst"),
        },
        "retrain": retrain,
    }  # fmt: skip


def _stage_directions(stages: list[dict], direction: str) -> list[str] | None:
    """Each stage's direction, oldest first, when an earlier stage trained another target (its head and core started
    this direction, see ``training.train.retargets``); else None."""
    names = [f"{stage['config']['src']}-to-{stage['config']['dst']}" for stage in stages] + [direction]
    return names if len(set(names)) > 1 else None


# Options that say where and how a run ran, not what it trains: left out of the retrain command.
_MACHINE_FIELDS = ("data", "out", "src", "dst", "device", "threads", "tensorboard", "precision", "compile")
_FLAGS = {"steps": "--steps", "lr": "--lr", "batch": "--batch"}


def data_names(datas: list[dict | None]) -> list[str]:
    """The ``--data`` placeholder of each stage: ``DATA`` for the first stage's data, ``DATA2``, ``DATA3`` ... for
    each other data folder in order of first use, told apart by their manifest hash. A stage recorded before stages
    recorded their data (no identity) is taken to have run on the data of the next stage that has one (else of the
    one before): a later stage most often goes on with the same data."""
    keys = [(data or {}).get("manifest_sha256") for data in datas]
    for i in range(len(keys) - 2, -1, -1):
        keys[i] = keys[i] or keys[i + 1]
    for i in range(1, len(keys)):
        keys[i] = keys[i] or keys[i - 1]
    names: dict[str | None, str] = {}
    return [names.setdefault(key, "DATA" if not names else f"DATA{len(names) + 1}") for key in keys]


def retrain_command(
    config: dict, schedule: list | None = None, init: dict | None = None, data: dict | None = None
) -> str:
    """The shortest ``train`` command that reproduces ``config``: the preset it differs least from, then each
    remaining difference as a flag or ``--set``.

    ``schedule`` (a checkpoint's ``[step, total]`` list) with more than one entry means the run was resumed with
    a new ``--steps``, which stretches the cosine from there: one command would train a different run, so the first
    command stops at the first total and each later total is a ``--resume RUN --steps N``.

    ``init`` (the record of the run whose weights started this one, see ``training.train.load_init``): its own
    commands come first, into ``RUN1``; this stage trains into ``RUN2`` with ``--set init=RUN1``, and so on. ``data``
    (this run's data identity) and each stage's recorded one name the data folders: a stage on other data (the same
    images encoded with ``--hue``, say) reads ``--data DATA2`` (:func:`data_names`)."""
    stages = [*stages_of(init), {"config": config, "schedule": schedule, "data": data}]
    if len(stages) == 1:
        return _stage_command(config, schedule, "RUN", None)
    names = data_names([s.get("data") for s in stages])
    return " && ".join(_stage_command(s["config"], s["schedule"], f"RUN{i + 1}", f"RUN{i}" if i else None, names[i])
                       for i, s in enumerate(stages))  # fmt: skip


def _stage_command(config: dict, schedule: list | None, run: str, init: str | None, data: str = "DATA") -> str:
    """One stage's command(s): ``--out run`` wherever a later command needs the folder, ``init=...`` when the
    stage starts from an earlier one."""
    from .config import PRESETS, TrainConfig

    config = {**config, "init": ""}  # the stage's own path is not portable; ``init`` below names the folder

    stages = [int(total) for _, total in schedule or []]
    if len(stages) > 1:
        config = {**config, "steps": stages[0]}

    def differences(preset: str) -> dict:
        base = TrainConfig.from_dict(PRESETS[preset]).to_dict()
        return {k: v for k, v in config.items() if k not in _MACHINE_FIELDS and base.get(k) != v}

    preset = min(PRESETS, key=lambda name: len(differences(name)))
    diff = differences(preset)
    flags = [
        f"{_FLAGS[k]} {v:g}" if isinstance(v, float) else f"{_FLAGS[k]} {v}" for k, v in diff.items() if k in _FLAGS
    ]
    sets = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in diff.items() if k not in _FLAGS]
    if init:
        sets.append(f"init={init}")
    command = f"python -m training train --preset {preset} --data {data} --src {config['src']} --dst {config['dst']}"
    later = [f"python -m training train --resume {run} --data {data} --steps {total}" for total in stages[1:]]
    out = [f"--out {run}"] if later or run != "RUN" else []
    first = " ".join([command, *out, *flags, *(["--set", *sets] if sets else [])])
    return " && ".join([first, *later])


def read_card(path: str | os.PathLike) -> dict:
    """The card in a weights file's metadata (an error naming the file when it has none)."""
    metadata = read_safetensors_header(Path(path))[1]
    if CARD_KEY not in metadata:
        raise InterposerError(f"{path} has no model card (export it with --card REPORT).")
    return json.loads(metadata[CARD_KEY])


def _dtype(path: Path) -> str:
    """``fp16``, ``fp32`` ...: the floating-point dtype(s) of a file's tensors, from its header."""
    header = read_safetensors_header(path)[0]
    names = {"F16": "fp16", "BF16": "bf16", "F32": "fp32"}
    return "/".join(sorted({names[t["dtype"]] for t in header.values() if t.get("dtype") in names}))


def _stages_note(card: dict) -> str:
    """`` (12,500 + 2,000: a second stage from the first's weights)`` for a run in stages, else nothing."""
    stages = card.get("stages")
    if not stages:
        return ""
    note = f" ({' + '.join(f'{n:,}' for n in stages)}: each stage starts from the previous one's weights"
    directions = card.get("stage_directions")
    if directions:
        other = [i for i, name in enumerate(directions) if name != card["direction"]]
        first = "the first" if len(other) == 1 else f"the first {len(other)}"
        note += (f"; {first} trained {directions[other[-1]]}, whose head and core started {card['direction']} with "
                 "its last convolution fitted again by least squares")  # fmt: skip
    return note + ")"


def cards_markdown(paths: list[str | os.PathLike]) -> str:
    """One table of the held-out results, then each card: what docs/models.md shows."""
    cards = [(Path(p), read_card(p)) for p in paths]
    lines = [
        "| direction | file | held-out PSNR | TAE bridge | vs bridge | 1×1 linear map | vs linear | ceiling |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path, card in cards:
        h = card["held_out"]
        ceiling = f"{h['ceiling_psnr']:.2f}" if h.get("ceiling_psnr") is not None else "—"
        gap = h["gap_to_bridge"] if h.get("gap_to_bridge") is not None else h["psnr"] - h["bridge_psnr"]
        lines.append(f"| {card['direction']} | `{path.name}` | {h['psnr']:.2f} | {h['bridge_psnr']:.2f} | "
                     f"{gap:+.2f} | {h['linear_psnr']:.2f} | "
                     f"{h['psnr'] - h['linear_psnr']:+.2f} | {ceiling} |")  # fmt: skip
    for path, card in cards:
        h, m, d = card["held_out"], card["machine"], card["data"]
        worst = h.get("worst") or {}
        lines += [
            "", f"### {card['direction']}", "",
            f"- File: `{path.name}` ({path.stat().st_size / 1e6:.1f} MB, {_dtype(path)}), licence: {card['licence']}.",
            f"- Data: {d['note']} {d['images']} training images, {d['crops']} crops of {d['crop_px']} px, encoded "
            f"with the tiny autoencoders of {', '.join(d['vaes'])}"
            + (f", each crop's hue turned by up to ±{d['hue']:g}° (`encode --hue {d['hue']:g}`)." if d.get("hue")
               else "."),
            f"- Training: {card['steps']:,} steps{_stages_note(card)} on {m['device']} ({m['precision']}; {m['cpu']}), "
            f"{m['steps_per_s']} steps/s{' in the last stage' if card.get('stages') else ''}, {m['hours']} h in all.",
            f"- Held out ({h['images']} images, long side {h['max_side']} px): PSNR {h['psnr']:.2f} dB, SSIM "
            f"{h['ssim']:.3f}; TAE bridge {h['bridge_psnr']:.2f} dB, 1×1 linear map {h['linear_psnr']:.2f} dB."
            + (f" Worst image: {worst['psnr']:.2f} dB (bridge {worst['bridge_psnr']:.2f})." if worst else ""),
            f"- Retrain: `{card['retrain']}`",
        ]  # fmt: skip
    return "\n".join(lines) + "\n"
