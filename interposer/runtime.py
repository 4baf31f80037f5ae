"""Running models on batches of latents: device and precision choice, model cache, chunking.

The :class:`Converter` is what the webui script, the CLI and the training tools call. It takes
``(B, C, H, W)`` latents on any device and dtype and returns the result on the same device and
dtype: converted into another family (interposer), upscaled in one family (latent upscaler, any
target size through :mod:`interposer.upscale_plan`), or both. Every model kind goes through the
same path: weights resolution, the cache (one model per file, device and precision, shared between
threads: the webui API can run generations concurrently), input validation, chunking and the fp16
fallback.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .directions import Direction
from .directions import direction as parse_direction
from .errors import InvalidLatentsError, UnsupportedPrecisionError, WeightsNotFoundError
from .kinds import KINDS
from .spaces import LatentSpace, get_space
from .upscale_plan import DEFAULT_POLICY, UpscalePlan, plan_upscale
from .upscalers import PUBLISHED_FACTORS, PUBLISHED_SPACES
from .upscalers import upscaler as parse_upscaler
from .weights import LoadedWeights, Spec, WeightsQuery, find_local, missing_weights_error, resolve_and_load

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_NAMES = {v: k for k, v in _DTYPES.items()}

# Latent pixels (batch x height x width) per forward pass. 262144 = 16 images of 1024x1024:
# the largest activation is then 64 MiB in fp32, about 0.3 GiB peak in all.
DEFAULT_MAX_BATCH_PIXELS = 16 * 128 * 128


def pick_device(choice: str, latents: torch.Tensor | None = None) -> torch.device:
    """``auto``: the input's accelerator, else CUDA, else MPS, else CPU; or a device string."""
    choice = (choice or "auto").strip().lower()
    if choice in ("gpu",):
        choice = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if choice != "auto":
        try:
            device = torch.device(choice)
        except (RuntimeError, ValueError) as exc:
            raise UnsupportedPrecisionError(f"Unknown device {choice!r}: use auto, cpu, cuda, cuda:N or mps.") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UnsupportedPrecisionError("Device 'cuda' was requested but this torch build sees no CUDA GPU.")
        if device.type == "mps" and not _mps_available():
            raise UnsupportedPrecisionError("Device 'mps' was requested, but this torch build cannot use MPS.")
        if device.type not in ("cpu", "cuda", "mps"):
            raise UnsupportedPrecisionError(f"Device {choice!r} is not supported; use auto, cpu, cuda, cuda:N or mps.")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise UnsupportedPrecisionError(
                f"Device {choice!r}: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
        return device
    if latents is not None and latents.device.type != "cpu":
        return latents.device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on CUDA and MPS, fp32 on the CPU. Unsupported choices raise with advice."""
    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise UnsupportedPrecisionError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    dtype = _DTYPES[precision]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UnsupportedPrecisionError("This GPU does not support bf16; use fp16 or fp32.")
    if dtype != torch.float32 and not _conv_runs(device, dtype):
        raise UnsupportedPrecisionError(
            f"{precision} convolutions are not supported on {device.type} by torch {torch.__version__}; "
            "use fp32 (or bf16 on the CPU)."
        )
    return dtype


_CONV_SUPPORT: dict[tuple[str, torch.dtype], bool] = {}


def _conv_runs(device: torch.device, dtype: torch.dtype) -> bool:
    key = (device.type, dtype)
    if key not in _CONV_SUPPORT:
        try:
            x = torch.zeros(1, 1, 4, 4, device=device, dtype=dtype)
            torch.nn.functional.conv2d(x, torch.zeros(1, 1, 3, 3, device=device, dtype=dtype), padding=1)
            _CONV_SUPPORT[key] = True
        except (RuntimeError, NotImplementedError):
            _CONV_SUPPORT[key] = False
    return _CONV_SUPPORT[key]


def _no_autocast(device: torch.device):
    """The webui samples under autocast; the interposer runs in the precision it was asked for."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):
        return contextlib.nullcontext()


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, None if it is gone: enough to notice a replaced file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _still_current(loaded: LoadedWeights, stamp: tuple | None, spec: Spec, query: WeightsQuery) -> bool:
    if stamp is None or _file_stamp(loaded.path) != stamp:
        return False
    if query.path_for(spec):
        return True
    local = find_local(spec, query.folders, query.version_for(spec))
    return local is None or local == loaded.path


class ModelCache:
    """Thread-safe cache: weights per (spec, query), models per (file, device, dtype), for every model kind.

    Resolution is cached too, because asking the hub whether a file changed costs a request. A few
    ``stat`` calls per run keep the cache honest without one: a file that was replaced or removed
    since it was loaded, or a local file that now takes precedence (a freshly exported model dropped
    into the weights folder), is picked up without restarting the webui.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._weights: dict[tuple, tuple[LoadedWeights, tuple | None]] = {}
        self._models: dict[tuple, nn.Module] = {}
        self.loads = 0  # number of files read from disk (tests check "loaded once")

    def weights(self, spec: Spec, query: WeightsQuery) -> LoadedWeights:
        key = query.key(spec)
        with self._lock:
            cached = self._weights.get(key)
            if cached is not None and not _still_current(*cached, spec, query):
                self._forget_models(cached[0].path)
                cached = None
            if cached is None:
                loaded = resolve_and_load(spec, query)
                cached = self._weights[key] = (loaded, _file_stamp(loaded.path))
                self.loads += 1
            return cached[0]

    def model(self, weights: LoadedWeights, device: torch.device, dtype: torch.dtype) -> nn.Module:
        key = (str(weights.path), _file_stamp(weights.path), str(device), dtype)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = KINDS[weights.kind].build(weights.config)
                model.load_state_dict(weights.state_dict, strict=True)
                # channels-last: measured 1.7x faster for these 3x3 conv stacks on a CPU (bench/, 2 cores)
                model = model.eval().requires_grad_(False).to(device=device, dtype=dtype)
                self._models[key] = model.to(memory_format=torch.channels_last)
            return model

    def _forget_models(self, path: Path) -> None:
        for key in [k for k in self._models if k[0] == str(path)]:
            del self._models[key]

    def clear(self) -> None:
        with self._lock:
            self._weights.clear()
            self._models.clear()


DEFAULT_CACHE = ModelCache()


@dataclass
class ConversionReport:
    """What one model run did, for the console line and the infotext.

    ``direction`` names what ran: ``xl-to-v1`` for a conversion, ``v1 x1.5`` for an upscale (a chain
    reads ``v1 x1.25+x1.5``, ``+resize`` when an exact resize to the target size followed).
    ``milliseconds`` is the run itself; ``load_ms`` the one-off loading of the weights and the model
    (0 when both came from the cache), so the console does not make a first run look slow.
    """

    direction: str
    shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    device: str
    precision: str
    version: str
    milliseconds: float
    fell_back_to_fp32: bool = False
    load_ms: float = 0.0
    kind: str = "interposer"
    note: str = ""  # e.g. which preferred upscaler files were missing and what was used instead

    def __str__(self) -> str:
        fallback = " (fp16 overflow: recomputed in fp32)" if self.fell_back_to_fp32 else ""
        loading = f" (+{self.load_ms:.0f} ms loading the model, once)" if self.load_ms else ""
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.direction} {tuple(self.shape)} -> {tuple(self.out_shape)} on {self.device}, "
            f"{self.precision}{fallback}, weights {self.version}, {self.milliseconds:.1f} ms{loading}{note}"
        )


# Orders of a cross-family upscale: interposer at the low resolution, then the target family's
# upscaler (``convert-first``); the source family's upscaler, then the interposer at the high
# resolution (``upscale-first``); one trained network that does both (``one-network``).
ORDERS = ("convert-first", "upscale-first", "one-network")
DEFAULT_ORDER = "convert-first"


@dataclass
class _Step:
    """One model run inside :meth:`Converter._run_spec`: what the report needs to know."""

    weights: LoadedWeights
    dtype: torch.dtype
    fell_back: bool
    load_ms: float


@dataclass
class Converter:
    """Converts and upscales latents with cached models. Cheap to create; share ``cache``."""

    weights: WeightsQuery = field(default_factory=WeightsQuery)
    device: str = "auto"
    precision: str = "auto"
    max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS
    cache: ModelCache = field(default_factory=lambda: DEFAULT_CACHE)
    upscale_policy: str = DEFAULT_POLICY
    upscale_factors: tuple[float, ...] = PUBLISHED_FACTORS
    resize_mode: str = "bicubic"  # how the remainder of an upscale plan is resized (down: antialiased)
    # A family nobody publishes an upscaler for (FLUX.1, FLUX.2) and with no file of its own: interpolate with
    # ``resize_mode`` (and say so) instead of refusing. The webui's Latent (NN) needs that; the CLI refuses.
    interpolate_without_upscaler: bool = False
    _warned: set = field(default_factory=set, repr=False)

    def with_options(self, **changes) -> Converter:
        return replace(self, **changes)

    # ------------------------------------------------------------------ conversion (interposer)

    def convert(self, latents: torch.Tensor, src: str, dst: str | None = None, *, scaled: bool = True) -> torch.Tensor:
        """Convert ``latents`` from ``src`` to ``dst`` (or ``src="xl-to-v1"``); see :meth:`run`."""
        return self.run(latents, src, dst, scaled=scaled)[0]

    def run(
        self, latents: torch.Tensor, src: str | Direction, dst: str | None = None, *, scaled: bool = True
    ) -> tuple[torch.Tensor, ConversionReport]:
        """Convert and report.

        ``scaled=True``: model-space latents in and out (what samplers and A1111 use).
        ``scaled=False``: raw VAE latents in and out (what the published weights map).
        """
        dirn = src if isinstance(src, Direction) else parse_direction(src, dst)
        started = time.perf_counter()
        device = pick_device(self.device, latents)
        x_raw = self._to_raw(latents, dirn.src, scaled, device)
        y_raw, step = self._run_spec(dirn, x_raw, latents)
        result = self._from_raw(y_raw, dirn.dst, scaled, latents)
        return result, self._report(dirn.name, latents, result, device, [step], started, "interposer")

    # ------------------------------------------------------------------ upscaling (latent upscaler)

    def upscale(
        self,
        latents: torch.Tensor,
        space: str | LatentSpace,
        *,
        factor: float | None = None,
        size: tuple[int, int] | None = None,
        scaled: bool = True,
    ) -> torch.Tensor:
        """Upscale latents of one family to ``size`` (latent pixels) or by ``factor``; see :meth:`run_upscale`."""
        return self.run_upscale(latents, space, factor=factor, size=size, scaled=scaled)[0]

    def run_upscale(
        self,
        latents: torch.Tensor,
        space: str | LatentSpace,
        *,
        factor: float | None = None,
        size: tuple[int, int] | None = None,
        scaled: bool = True,
    ) -> tuple[torch.Tensor, ConversionReport]:
        """Upscale with learned upscalers and report.

        ``size`` is the exact output grid (height, width); ``factor`` gives ``floor(H * factor)``. The plan
        (:func:`interposer.upscale_plan.plan_upscale` with this converter's policy and factors) picks the
        learned steps; an exact resize of the remainder makes the output land on ``size``.
        """
        space = get_space(space)
        size = _target_size(latents, factor, size)
        started = time.perf_counter()
        device = pick_device(self.device, latents)
        x_raw = self._to_raw(latents, space, scaled, device)
        y_raw, steps, plan = self._upscale_raw(x_raw, space, size, latents)
        result = self._from_raw(y_raw, space, scaled, latents)
        name = _plan_label(space, plan)
        return result, self._report(name, latents, result, device, steps, started, "upscaler", plan.note)

    def run_convert_upscale(
        self,
        latents: torch.Tensor,
        src: str | LatentSpace,
        dst: str | LatentSpace,
        *,
        factor: float | None = None,
        size: tuple[int, int] | None = None,
        scaled: bool = True,
        order: str = DEFAULT_ORDER,
    ) -> tuple[torch.Tensor, list[ConversionReport]]:
        """Convert from ``src`` to ``dst`` and upscale to ``size``: one report per model stage.

        ``order``: ``convert-first`` (the interposer at the low resolution, then ``dst``'s upscaler),
        ``upscale-first`` (``src``'s upscaler, then the interposer at the high resolution) or
        ``one-network`` (a trained ``{src}-to-{dst}-x{factor}`` model, then an exact resize). An order
        whose upscaler family has no published upscaler falls back to the other chain.
        """
        src, dst = get_space(src), get_space(dst)
        if order not in ORDERS:
            raise InvalidLatentsError(f"Unknown order {order!r}; choose one of {', '.join(ORDERS)}.")
        size = _target_size(latents, factor, size)
        if src.name == dst.name:
            result, report = self.run_upscale(latents, src, size=size, scaled=scaled)
            return result, [report]
        order = _available_order(order, src, dst)
        if order == "one-network":
            return self._run_one_network(latents, src, dst, size, scaled)
        if order == "convert-first":
            converted, first = self.run(latents, Direction(src, dst), scaled=scaled)
            result, second = self.run_upscale(converted, dst, size=size, scaled=scaled)
        else:
            upscaled, first = self.run_upscale(latents, src, size=size, scaled=scaled)
            result, second = self.run(upscaled, Direction(src, dst), scaled=scaled)
        return result, [first, second]

    def _one_network_factor(self, size_in: tuple[int, int], size: tuple[int, int]) -> float:
        ratio = size[0] / size_in[0]
        return min(self.upscale_factors, key=lambda f: abs(math.log(f / ratio)))

    def _run_one_network(self, latents, src, dst, size, scaled) -> tuple[torch.Tensor, list[ConversionReport]]:
        dirn = Direction(src, dst, self._one_network_factor(tuple(latents.shape[-2:]), size))
        started = time.perf_counter()
        device = pick_device(self.device, latents)
        y_raw, step = self._run_spec(dirn, self._to_raw(latents, src, scaled, device), latents)
        y_raw = _resize(y_raw, size, self.resize_mode)
        result = self._from_raw(y_raw, dst, scaled, latents)
        return result, [self._report(dirn.name, latents, result, device, [step], started, "interposer")]

    # ------------------------------------------------------------------ what a run will need

    def upscale_plan(self, space: str | LatentSpace, size_in: tuple[int, int], size: tuple[int, int]) -> UpscalePlan:
        """The learned steps that take ``size_in`` to ``size``, over the upscaler files that can be had.

        The policy's chain over every factor comes first. When some of its files are missing (not local, not
        cached, not downloadable), the plan is made again over the factors whose files are there, and says so
        in its ``note`` (the console line); only when no factor's file can be had does it raise, naming every
        missing file of the preferred chain at once."""
        space = get_space(space)
        preferred = plan_upscale(size_in, size, self.upscale_factors, self.upscale_policy)
        missing = self.missing([parse_upscaler(space, f) for f in dict.fromkeys(preferred.factors)])
        if not missing:
            return preferred
        lacking = {spec.factor for spec, _ in missing}
        present = [f for f in self.upscale_factors if f not in lacking and not self.missing([parse_upscaler(space, f)])]
        if not present and self.interpolate_without_upscaler and space.name not in PUBLISHED_SPACES:
            plan = plan_upscale(size_in, size, (), self.upscale_policy)
            return replace(plan, note=f"no {space.name} latent upscaler exists: {self.resize_mode} interpolation")
        if not present:
            raise missing_weights_error(missing, self.weights)
        plan = plan_upscale(size_in, size, tuple(present), self.upscale_policy)
        names = ", ".join(f"x{f!r}" for f in sorted(lacking))
        return replace(plan, note=f"{names} not found: planned with the {space.name} upscalers that are there")

    def missing(self, specs) -> list[tuple[Spec, WeightsNotFoundError]]:
        """The specs whose files cannot be had (with why), after trying each once: found, cached or downloaded
        files are loaded into the cache, so the run that follows does not look again."""
        out = []
        for spec in specs:
            try:
                self.cache.weights(spec, self.weights)
            except WeightsNotFoundError as exc:
                out.append((spec, exc))
        return out

    def prepare(self, dirn: Direction) -> None:
        """Load (or fetch) the interposer for ``dirn`` now, so a missing file is reported before sampling."""
        missing = self.missing([dirn])
        if missing:
            raise missing_weights_error(missing, self.weights)

    def prepare_upscale(self, space: str | LatentSpace, size_in: tuple[int, int], size: tuple[int, int]) -> None:
        """Everything :meth:`run_upscale` from ``size_in`` to ``size`` will need (raises naming every missing file)."""
        self.upscale_plan(space, size_in, size)

    def prepare_convert_upscale(
        self, src: str | LatentSpace, dst: str | LatentSpace, size_in: tuple[int, int], size: tuple[int, int],
        order: str = DEFAULT_ORDER,
    ) -> None:  # fmt: skip
        """Everything :meth:`run_convert_upscale` will need; every missing file of it is named in one error."""
        src, dst = get_space(src), get_space(dst)
        order = _available_order(order, src, dst)
        if order == "one-network":
            return self.prepare(Direction(src, dst, self._one_network_factor(size_in, size)))
        missing = self.missing([Direction(src, dst)])
        try:
            self.upscale_plan(dst if order == "convert-first" else src, size_in, size)
        except WeightsNotFoundError as exc:
            missing.extend(getattr(exc, "missing", ()) or [(None, exc)])
        if missing:
            raise missing_weights_error(missing, self.weights)

    # ------------------------------------------------------------------ shared machinery

    def _upscale_raw(
        self, x_raw: torch.Tensor, space: LatentSpace, size: tuple[int, int], latents: torch.Tensor
    ) -> tuple[torch.Tensor, list[_Step], UpscalePlan]:
        plan = self.upscale_plan(space, tuple(x_raw.shape[-2:]), size)
        steps = []
        y = x_raw
        for factor in plan.factors:
            y, step = self._run_spec(parse_upscaler(space, factor), y, latents)
            steps.append(step)
        return _resize(y, size, self.resize_mode), steps, plan

    def _to_raw(self, latents: torch.Tensor, space: LatentSpace, scaled: bool, device: torch.device) -> torch.Tensor:
        x = latents.to(device=device, dtype=torch.float32)
        return space.to_raw(x) if scaled else x

    def _from_raw(self, y_raw: torch.Tensor, space: LatentSpace, scaled: bool, like: torch.Tensor) -> torch.Tensor:
        y = space.to_scaled(y_raw) if scaled else y_raw
        result = y.to(device=like.device, dtype=like.dtype)
        if result.device.type == "cuda":
            torch.cuda.synchronize(result.device)
        return result

    def _run_spec(self, spec: Spec, x_raw: torch.Tensor, original: torch.Tensor) -> tuple[torch.Tensor, _Step]:
        """One model on raw fp32 latents (on the run's device): load (timed), validate, chunk, fp16 fallback."""
        loads_before = self.cache.loads
        started = time.perf_counter()
        weights = self.cache.weights(spec, self.weights)
        validate_latents(original if x_raw.shape == original.shape else x_raw, spec, _grid_scale(weights))
        device = x_raw.device
        dtype = pick_dtype(self.precision, device)
        models_before = len(self.cache._models)
        model = self.cache.model(weights, device, dtype)
        loaded = self.cache.loads != loads_before or len(self.cache._models) != models_before
        load_ms = (time.perf_counter() - started) * 1000 if loaded else 0.0
        out_chunks = []
        fell_back = False
        step_pixels = self.max_batch_pixels / max(1.0, _area_factor(weights))
        with torch.no_grad(), _no_autocast(device):
            for x in _chunks(x_raw, int(step_pixels)):
                x = x.contiguous(memory_format=torch.channels_last)
                y = model(x.to(dtype)).float().contiguous()
                if dtype != torch.float32 and not torch.isfinite(y).all():
                    fell_back = True
                    self._warn_once(spec, device, dtype)
                    y = self.cache.model(weights, device, torch.float32)(x).contiguous()
                out_chunks.append(y)
        y_all = torch.cat(out_chunks) if len(out_chunks) > 1 else out_chunks[0]
        return y_all, _Step(weights, dtype, fell_back, load_ms)

    def _report(self, name, latents, result, device, steps: list[_Step], started: float, kind: str, note: str = ""):
        load_ms = sum(s.load_ms for s in steps)
        versions = list(dict.fromkeys(s.weights.version for s in steps)) or ["-"]
        dtype = steps[0].dtype if steps else pick_dtype(self.precision, device)
        return ConversionReport(
            direction=name,
            shape=tuple(latents.shape),
            out_shape=tuple(result.shape),
            device=str(device),
            precision=_NAMES[dtype],
            version="+".join(versions),
            milliseconds=max(0.0, (time.perf_counter() - started) * 1000 - load_ms),
            fell_back_to_fp32=any(s.fell_back for s in steps),
            load_ms=load_ms,
            kind=kind,
            note=note,
        )

    def _warn_once(self, spec: Spec, device: torch.device, dtype: torch.dtype) -> None:
        key = (spec.name, str(device), dtype)
        if key not in self._warned:
            self._warned.add(key)
            message = (
                f"Latent interposer {spec.name}: {_NAMES[dtype]} output was not finite on {device}; "
                "recomputed in fp32 (set precision to fp32 to skip the first attempt)."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=4)
            log.warning(message)


def _grid_scale(weights: LoadedWeights) -> float:
    return getattr(weights.config, "scale", None) or getattr(weights.config, "factor", 1.0)


def _area_factor(weights: LoadedWeights) -> float:
    return _grid_scale(weights) ** 2


def _target_size(latents: torch.Tensor, factor: float | None, size: tuple[int, int] | None) -> tuple[int, int]:
    if (factor is None) == (size is None):
        raise InvalidLatentsError("Give exactly one of factor= and size= for an upscale.")
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4:
        shape = tuple(getattr(latents, "shape", ()))
        raise InvalidLatentsError(f"Latents must have shape (batch, channels, height, width); got {shape}.")
    if size is None:
        if not factor > 0:
            raise InvalidLatentsError(f"Upscale factor {factor!r} must be positive.")
        return int(latents.shape[-2] * factor), int(latents.shape[-1] * factor)
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise InvalidLatentsError(f"Target size {size} has no pixels.")
    return height, width


def _available_order(order: str, src: LatentSpace, dst: LatentSpace) -> str:
    """The order to use: the asked one, unless its upscaler family has no published upscaler."""
    if order == "convert-first" and dst.name not in PUBLISHED_SPACES and src.name in PUBLISHED_SPACES:
        return "upscale-first"
    if order == "upscale-first" and src.name not in PUBLISHED_SPACES and dst.name in PUBLISHED_SPACES:
        return "convert-first"
    return order


def _plan_label(space: LatentSpace, plan: UpscalePlan) -> str:
    if not plan.factors and plan.resize:
        return f"{space.name} interpolated"
    steps = "+".join(f"x{f!r}" for f in plan.factors) or "no learned step"
    return f"{space.name} {steps}" + ("+resize" if plan.resize else "")


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Exact resize to ``size``: antialiased bilinear when shrinking, ``mode`` when growing."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] * x.shape[-1] > size[0] * size[1]:
        return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(x, size=size, mode=mode, align_corners=False if mode in ("bilinear", "bicubic") else None)


def _chunks(x: torch.Tensor, max_pixels: int):
    per_item = max(1, x.shape[-2] * x.shape[-1])
    step = max(1, max_pixels // per_item)
    return x.split(step) if x.shape[0] > step else (x,)


def validate_latents(latents: Any, spec: Spec, scale: float = 1.0) -> None:
    """Reject input that would give garbage, with a message naming the problem."""
    if not isinstance(latents, torch.Tensor):
        raise InvalidLatentsError(f"Latents must be a torch.Tensor, got {type(latents).__name__}.")
    shape = tuple(latents.shape)
    if latents.ndim != 4:
        raise InvalidLatentsError(
            f"Latents must have shape (batch, channels, height, width); got {latents.ndim} dimensions {shape}."
        )
    if not latents.is_floating_point():
        raise InvalidLatentsError(f"Latents must be floating point; got dtype {latents.dtype} for shape {shape}.")
    batch, channels, height, width = shape
    if batch == 0:
        raise InvalidLatentsError(f"Empty batch: latents of shape {shape} hold no images.")
    space = spec.in_space
    if channels != space.channels:
        raise InvalidLatentsError(
            f"{spec.name}: {space.label} latents have {space.channels} channels, got {channels} "
            f"(shape {shape}). Is the source space right?"
        )
    if height < 1 or width < 1:
        raise InvalidLatentsError(f"Latents of shape {shape} have no pixels.")
    if scale < 1.0:
        step = round(1.0 / scale)
        if height % step or width % step:
            raise InvalidLatentsError(
                f"{spec.name} halves the latent grid ({spec.src.name} is 1/{spec.src.spatial_factor}, "
                f"{spec.dst.name} 1/{spec.dst.spatial_factor} of the image): height and width must be multiples "
                f"of {step}, got {height}x{width}."
            )
    bad = (~torch.isfinite(latents)).sum().item()
    if bad:
        raise InvalidLatentsError(
            f"Latents of shape {shape} contain {bad} NaN or infinite values; refusing to convert."
        )
