"""The Forge Neo stand-in (``tests/standins/neo``) reuses the A1111 stand-in's file (``tests/standins/a1111``) for
each module that Neo has unchanged on the paths the extension touches.

``reuse(globals(), "modules/rng.py")`` runs that file in the calling module's namespace, so its own imports
(``from modules import shared``) resolve to the Neo stand-in's modules, and whatever Neo does differently is
written after the call, in the Neo file (what the Neo stand-in still writes twice, and why: its README)."""

from __future__ import annotations

from pathlib import Path

A1111_STANDIN = Path(__file__).resolve().parent / "standins" / "a1111"


def reuse(namespace: dict, relative: str) -> None:
    """Execute ``tests/standins/a1111/<relative>`` in ``namespace`` (a module's ``globals()``), keeping its
    docstring."""
    path = A1111_STANDIN / relative
    doc = namespace.get("__doc__")
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    if doc:
        namespace["__doc__"] = doc
