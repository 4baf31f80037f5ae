"""Checking a safetensors file's header without torch (and without loading any tensor).

Used before every load, and by ``install.py``, which runs at webui start-up and must stay fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import CorruptWeightsError

_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_safetensors_header(path: str | Path) -> tuple[dict[str, dict], dict[str, str]]:
    """Parse and sanity-check a safetensors header without loading any tensor.

    Catches what a download gone wrong produces: empty or truncated files, HTML error pages,
    pickles renamed to ``.safetensors``, and data that does not match the header.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise CorruptWeightsError(f"{path} is {size} bytes long: too short to be a safetensors file.")
            header_len = int.from_bytes(prefix, "little")
            if header_len <= 1 or header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
                raise CorruptWeightsError(
                    f"{path} is not a valid safetensors file (header length {header_len}, file size {size}): "
                    "it is truncated, or it is some other format (a .ckpt/.pt pickle, an HTML error page)."
                )
            raw_header = handle.read(header_len)
    except OSError as exc:
        raise CorruptWeightsError(f"Cannot read {path}: {exc}") from exc
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptWeightsError(f"{path} has an unreadable safetensors header ({exc}).") from exc
    if not isinstance(header, dict):
        raise CorruptWeightsError(f"{path} has a malformed safetensors header.")
    metadata = header.pop("__metadata__", None) or {}
    data_len = size - 8 - header_len
    end_max = 0
    for key, info in header.items():
        try:
            begin, end = (int(v) for v in info["data_offsets"])
            count = math.prod(int(d) for d in info["shape"])
            itemsize = _DTYPE_SIZES[info["dtype"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptWeightsError(f"{path}: malformed header entry for tensor {key!r}.") from exc
        if end - begin != count * itemsize or begin < 0 or end > data_len:
            raise CorruptWeightsError(
                f"{path}: tensor {key!r} does not fit the file ({data_len} data bytes, needs bytes {begin}..{end}): "
                "the file is truncated or corrupt."
            )
        end_max = max(end_max, end)
    if end_max != data_len:
        raise CorruptWeightsError(
            f"{path}: header describes {end_max} data bytes but the file holds {data_len}: "
            "the file is truncated or corrupt."
        )
    return header, {str(k): str(v) for k, v in metadata.items()}
