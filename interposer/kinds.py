"""The model kinds the package runs: what differs between an interposer and an upscaler file.

Everything else — finding a file, the hub, validation against the layout, quarantine, the model
cache, device and precision, chunking and the fp16 fallback — is shared and lives in
:mod:`interposer.weights` and :mod:`interposer.runtime`. A kind says how to build its network, which
keys and shapes its layout has, how to read the constructor arguments of a file (its metadata,
else what the shapes and the name imply), and whether a file fits the spec it is used for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .errors import CorruptWeightsError
from .model import InterposerConfig, InterposerV4, expected_state_dict_shapes
from .upscaler_model import LatentUpscalerV2, UpscalerConfig, expected_upscaler_shapes
from .upscalers import parse_filename

Header = dict[str, dict]


@dataclass(frozen=True)
class ModelKind:
    name: str
    format: str  # the "format" metadata written into exported files
    layout: str  # for messages
    config_type: type
    build: Callable[[Any], nn.Module]
    expected_shapes: Callable[[Any], dict[str, tuple[int, ...]]]
    infer_config: Callable[[Path, Header, Any], Any]  # (path, header, spec or None) -> config, no metadata
    check_spec: Callable[[Path, Any, dict[str, str], Any], None]  # (path, config, metadata, spec)
    spec_metadata: Callable[[Any], dict[str, str]]

    def config_for(self, path: Path, header: Header, metadata: dict[str, str], spec: Any = None) -> Any:
        """The constructor arguments of a file: its metadata, else the layout its shapes imply."""
        if "constructor" in metadata:
            try:
                return self.config_type.from_dict(json.loads(metadata["constructor"]))
            except (ValueError, TypeError) as exc:
                raise CorruptWeightsError(f"{path}: unreadable 'constructor' metadata ({exc}).") from exc
        return self.infer_config(path, header, spec)


# --------------------------------------------------------------------------- interposer (v4)


def _interposer_config(path: Path, header: Header, spec: Any) -> InterposerConfig:
    try:
        ch_mid, ch_in = header["head.short.weight"]["shape"][:2]
        ch_out = header["tail.weight"]["shape"][0]
    except (KeyError, ValueError) as exc:
        raise CorruptWeightsError(
            f"{path} is not an interposer v4 file: it lacks 'head.short.weight' or 'tail.weight'."
        ) from exc
    blocks = len({key.split(".")[1] for key in header if re.match(r"core\.\d+\.norm\.weight$", key)})
    scale = spec.default_config().scale if spec is not None else 1.0
    return InterposerConfig(ch_in=ch_in, ch_out=ch_out, ch_mid=ch_mid, scale=scale, blocks=blocks)


def _interposer_check(path: Path, config: InterposerConfig, metadata: dict[str, str], spec: Any) -> None:
    """The file must convert the direction it is used for."""
    meta_src, meta_dst = metadata.get("src"), metadata.get("dst")
    if meta_src and meta_dst and (meta_src, meta_dst) != (spec.src.name, spec.dst.name):
        raise CorruptWeightsError(f"{path} converts {meta_src}-to-{meta_dst}, not {spec.src.name}-to-{spec.dst.name}.")
    if (config.ch_in, config.ch_out) != (spec.src.channels, spec.dst.channels):
        raise CorruptWeightsError(
            f"{path} maps {config.ch_in} to {config.ch_out} channels, but {spec.name} needs "
            f"{spec.src.channels} to {spec.dst.channels}."
        )
    wanted = spec.default_config().scale
    if abs(config.scale - wanted) > 1e-6:
        raise CorruptWeightsError(
            f"{path} resamples the latent grid by {config.scale:g}, but {spec.name} needs {wanted:g}."
        )


INTERPOSER = ModelKind(
    name="interposer",
    format="interposer-v4",
    layout="interposer v4",
    config_type=InterposerConfig,
    build=InterposerV4.from_config,
    expected_shapes=expected_state_dict_shapes,
    infer_config=_interposer_config,
    check_spec=_interposer_check,
    spec_metadata=lambda spec: (
        {"src": spec.src.name, "dst": spec.dst.name} | ({"factor": repr(spec.factor)} if spec.factor != 1.0 else {})
    ),
)


# --------------------------------------------------------------------------- upscaler (v2.1)


def _upscaler_config(path: Path, header: Header, spec: Any) -> UpscalerConfig:
    return upscaler_layout(path, header, spec.factor if spec is not None else None)


def upscaler_layout(path: Path, header: Header, factor: float | None = None) -> UpscalerConfig:
    """The constructor arguments an upscaler file's shapes imply. The factor is not in the shapes:
    published files carry no metadata, so their name says it; a file named otherwise upscales by
    ``factor``, the one it is used for (a spec's, or the user's ``--upscale``)."""
    convs = sorted(int(m[1]) for key in header if (m := re.match(r"sequential\.(\d+)\.weight$", key)))
    if len(convs) < 2 or convs[0] != 0:
        raise CorruptWeightsError(f"{path} is not a latent upscaler v2 file: it lacks 'sequential.0.weight'.")
    ch_mid, ch_in = header["sequential.0.weight"]["shape"][:2]
    ch_out = header[f"sequential.{convs[-1]}.weight"]["shape"][0]
    parsed = parse_filename(path.name)
    if parsed is not None:
        factor = parsed[2]
    elif factor is None:
        raise CorruptWeightsError(
            f"{path}: cannot tell its upscale factor (no 'constructor' metadata, and the name is not like "
            "latent-upscaler-v2.1_SDv1-x2.0.safetensors)."
        )
    return UpscalerConfig(ch_in=ch_in, ch_out=ch_out, ch_mid=ch_mid, factor=factor, convs=len(convs) - 2)


def _upscaler_check(path: Path, config: UpscalerConfig, metadata: dict[str, str], spec: Any) -> None:
    space = metadata.get("space")
    if space and space != spec.space.name:
        raise CorruptWeightsError(f"{path} upscales {space} latents, not {spec.space.name}.")
    if config.ch_in != spec.space.channels or config.ch_out != spec.space.channels:
        raise CorruptWeightsError(
            f"{path} maps {config.ch_in} to {config.ch_out} channels, but {spec.space.label} latents have "
            f"{spec.space.channels}."
        )
    if abs(config.factor - spec.factor) > 1e-6:
        raise CorruptWeightsError(f"{path} upscales by {config.factor:g}, not by {spec.factor:g}.")


UPSCALER = ModelKind(
    name="upscaler",
    format="latent-upscaler-v2",
    layout="latent upscaler v2.1",
    config_type=UpscalerConfig,
    build=LatentUpscalerV2.from_config,
    expected_shapes=expected_upscaler_shapes,
    infer_config=_upscaler_config,
    check_spec=_upscaler_check,
    spec_metadata=lambda spec: {"space": spec.space.name, "factor": repr(spec.factor)},
)

KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (INTERPOSER, UPSCALER)}


def kind_of(spec: Any) -> ModelKind:
    return KINDS[spec.kind]


def kind_of_config(config: Any) -> ModelKind:
    return next(kind for kind in KINDS.values() if isinstance(config, kind.config_type))


def kind_of_file(path: Path, header: Header, metadata: dict[str, str]) -> ModelKind:
    """Which kind a file holds: its ``format`` metadata, else its keys."""
    fmt = metadata.get("format")
    for kind in KINDS.values():
        if fmt == kind.format:
            return kind
    if "head.short.weight" in header:
        return INTERPOSER
    if "sequential.0.weight" in header:
        return UPSCALER
    raise CorruptWeightsError(
        f"{path} is neither an interposer v4 nor a latent upscaler v2 file (no 'head.short.weight' or "
        "'sequential.0.weight' tensor)."
    )
