"""Atomic file writes: a crash, a full disk or Ctrl-C never leaves a half-written file under the
name that a later run would pick up.

Everything is written to ``NAME.tmp`` next to the target and renamed over it only when complete.
The finished file gets the permissions an ordinary ``open()`` would give (``0o666`` minus the
umask): safetensors' writer creates ``0o600`` files, which the account a webui runs under (a
service user, a container) may not be able to read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb"):
            pass  # created by Python, so its mode honours the umask; remembered below
        mode = tmp.stat().st_mode & 0o777
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_safetensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """``safetensors.torch.save_file``, atomically (tensors are made contiguous and moved to the CPU)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file (UTF-8) atomically."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
