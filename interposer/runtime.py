"""Converting batches of latents: device and precision choice, model cache, chunking.

The :class:`Converter` is what the webui script, the CLI and the training tools call. It takes
``(B, C, H, W)`` latents on any device and dtype and returns the converted batch on the same
device and dtype. Models are loaded once per (file, device, precision) and shared between
threads (the webui API can run generations concurrently).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .directions import Direction
from .directions import direction as parse_direction
from .errors import InvalidLatentsError, UnsupportedPrecisionError
from .model import InterposerV4
from .weights import LoadedWeights, WeightsQuery, find_local, resolve_and_load

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
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UnsupportedPrecisionError("Device 'cuda' was requested but this torch build sees no CUDA GPU.")
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


def _still_current(loaded: LoadedWeights, stamp: tuple | None, direction: Direction, query: WeightsQuery) -> bool:
    if stamp is None or _file_stamp(loaded.path) != stamp:
        return False
    if query.path:
        return True
    local = find_local(direction, query.folders, query.version)
    return local is None or local == loaded.path


class ModelCache:
    """Thread-safe cache: weights per (direction, query), models per (file, device, dtype).

    Resolution is cached too, because asking the hub whether a file changed costs a request. A few
    ``stat`` calls per conversion keep the cache honest without one: a file that was replaced or
    removed since it was loaded, or a local file that now takes precedence (a freshly exported
    model dropped into the weights folder), is picked up without restarting the webui.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._weights: dict[tuple, tuple[LoadedWeights, tuple | None]] = {}
        self._models: dict[tuple, InterposerV4] = {}
        self.loads = 0  # number of files read from disk (tests check "loaded once")

    def weights(self, direction: Direction, query: WeightsQuery) -> LoadedWeights:
        key = (direction.name, query.path, tuple(query.folders), query.allow_download, query.download_dir,
               query.cache_dir, query.revision, query.repo_id, query.version)  # fmt: skip
        with self._lock:
            cached = self._weights.get(key)
            if cached is not None and not _still_current(*cached, direction, query):
                self._forget_models(cached[0].path)
                cached = None
            if cached is None:
                loaded = resolve_and_load(direction, query)
                cached = self._weights[key] = (loaded, _file_stamp(loaded.path))
                self.loads += 1
            return cached[0]

    def model(self, weights: LoadedWeights, device: torch.device, dtype: torch.dtype) -> InterposerV4:
        key = (str(weights.path), _file_stamp(weights.path), str(device), dtype)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = InterposerV4.from_config(weights.config)
                model.load_state_dict(weights.state_dict, strict=True)
                model = model.eval().requires_grad_(False).to(device=device, dtype=dtype)
                self._models[key] = model
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
    """What one conversion did, for the console line and the infotext."""

    direction: str
    shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    device: str
    precision: str
    version: str
    milliseconds: float
    fell_back_to_fp32: bool = False

    def __str__(self) -> str:
        fallback = " (fp16 overflow: recomputed in fp32)" if self.fell_back_to_fp32 else ""
        return (
            f"{self.direction} {tuple(self.shape)} -> {tuple(self.out_shape)} on {self.device}, "
            f"{self.precision}{fallback}, weights {self.version}, {self.milliseconds:.1f} ms"
        )


@dataclass
class Converter:
    """Converts latents between spaces with cached models. Cheap to create; share ``cache``."""

    weights: WeightsQuery = field(default_factory=WeightsQuery)
    device: str = "auto"
    precision: str = "auto"
    max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS
    cache: ModelCache = field(default_factory=lambda: DEFAULT_CACHE)
    _warned: set = field(default_factory=set, repr=False)

    def with_options(self, **changes) -> Converter:
        return replace(self, **changes)

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
        started = time.perf_counter()
        dirn = src if isinstance(src, Direction) else parse_direction(src, dst)
        weights = self.cache.weights(dirn, self.weights)
        validate_latents(latents, dirn, weights.config.scale)
        device = pick_device(self.device, latents)
        dtype = pick_dtype(self.precision, device)
        model = self.cache.model(weights, device, dtype)

        out_chunks = []
        fell_back = False
        with torch.no_grad(), _no_autocast(device):
            x_all = latents.to(device=device, dtype=torch.float32)
            if scaled:
                x_all = dirn.src.to_raw(x_all)
            for x in _chunks(x_all, self.max_batch_pixels):
                y = model(x.to(dtype)).float()
                if dtype != torch.float32 and not torch.isfinite(y).all():
                    fell_back = True
                    self._warn_once(dirn, device, dtype)
                    y = self.cache.model(weights, device, torch.float32)(x)
                out_chunks.append(y)
            y_all = torch.cat(out_chunks) if len(out_chunks) > 1 else out_chunks[0]
            if scaled:
                y_all = dirn.dst.to_scaled(y_all)
            result = y_all.to(device=latents.device, dtype=latents.dtype)
        if result.device.type == "cuda":
            torch.cuda.synchronize(result.device)
        report = ConversionReport(
            direction=dirn.name,
            shape=tuple(latents.shape),
            out_shape=tuple(result.shape),
            device=str(device),
            precision=_NAMES[dtype],
            version=weights.version,
            milliseconds=(time.perf_counter() - started) * 1000,
            fell_back_to_fp32=fell_back,
        )
        return result, report

    def _warn_once(self, dirn: Direction, device: torch.device, dtype: torch.dtype) -> None:
        key = (dirn.name, str(device), dtype)
        if key not in self._warned:
            self._warned.add(key)
            message = (
                f"Latent interposer {dirn.name}: {_NAMES[dtype]} output was not finite on {device}; "
                "recomputed in fp32 (set precision to fp32 to skip the first attempt)."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            log.warning(message)


def _chunks(x: torch.Tensor, max_pixels: int):
    per_item = max(1, x.shape[-2] * x.shape[-1])
    step = max(1, max_pixels // per_item)
    return x.split(step) if x.shape[0] > step else (x,)


def validate_latents(latents: torch.Tensor, dirn: Direction, scale: float = 1.0) -> None:
    """Reject input that would convert to garbage, with a message naming the problem."""
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
    if channels != dirn.src.channels:
        raise InvalidLatentsError(
            f"{dirn.name}: {dirn.src.label} latents have {dirn.src.channels} channels, got {channels} "
            f"(shape {shape}). Is the source space right?"
        )
    if height < 1 or width < 1:
        raise InvalidLatentsError(f"Latents of shape {shape} have no pixels.")
    if scale < 1.0:
        step = round(1.0 / scale)
        if height % step or width % step:
            raise InvalidLatentsError(
                f"{dirn.name} halves the latent grid ({dirn.src.name} is 1/{dirn.src.spatial_factor}, "
                f"{dirn.dst.name} 1/{dirn.dst.spatial_factor} of the image): height and width must be multiples "
                f"of {step}, got {height}x{width}."
            )
    bad = (~torch.isfinite(latents)).sum().item()
    if bad:
        raise InvalidLatentsError(
            f"Latents of shape {shape} contain {bad} NaN or infinite values; refusing to convert."
        )
