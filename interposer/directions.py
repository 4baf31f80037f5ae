"""Conversion directions, the published v4.0 weights and their file names.

A direction is a (source space, target space) pair written ``src-to-dst``, like the
published files: ``{src}-to-{dst}_interposer-v4.0.safetensors`` in the ``v4.0`` folder of
the Hugging Face repository ``city96/SD-Latent-Interposer``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import UnknownDirectionError
from .spaces import LatentSpace, get_space, spatial_scale

if TYPE_CHECKING:
    from .model import InterposerConfig

HUB_REPO_ID = "city96/SD-Latent-Interposer"
HUB_SUBFOLDER = "v4.0"
HUB_REVISION = "main"
WEIGHTS_VERSION = "v4.0"

# The twelve directions city96 published for v4.0 (all ch_mid 64, 12 blocks).
PUBLISHED: tuple[tuple[str, str], ...] = (
    ("v1", "xl"),
    ("xl", "v1"),
    ("v1", "v3"),
    ("xl", "v3"),
    ("v3", "v1"),
    ("v3", "xl"),
    ("fx", "v1"),
    ("fx", "xl"),
    ("fx", "v3"),
    ("ca", "v1"),
    ("ca", "xl"),
    ("ca", "v3"),
)


@dataclass(frozen=True)
class Direction:
    """A source and a target latent space."""

    src: LatentSpace
    dst: LatentSpace

    @property
    def name(self) -> str:
        return f"{self.src.name}-to-{self.dst.name}"

    @property
    def is_published(self) -> bool:
        return (self.src.name, self.dst.name) in PUBLISHED

    def default_config(self) -> InterposerConfig:
        """Constructor arguments of the published layout for this pair of spaces."""
        from .model import InterposerConfig  # imports torch; naming files must not

        return InterposerConfig(
            ch_in=self.src.channels,
            ch_out=self.dst.channels,
            ch_mid=64,
            scale=spatial_scale(self.src, self.dst),
            blocks=12,
        )

    def filename(self, version: str = WEIGHTS_VERSION) -> str:
        return f"{self.name}_interposer-{version}.safetensors"

    def hub_url(self, revision: str = HUB_REVISION, repo_id: str = HUB_REPO_ID, subfolder: str = HUB_SUBFOLDER) -> str:
        """Browser/download URL of the published file (for error messages and manual downloads)."""
        path = f"{subfolder}/{self.filename()}" if subfolder else self.filename()
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        return f"{endpoint}/{repo_id}/resolve/{revision}/{path}"

    def __str__(self) -> str:
        return self.name


def direction(src: str | LatentSpace, dst: str | LatentSpace | None = None) -> Direction:
    """Parse ``direction("xl", "v1")`` or ``direction("xl-to-v1")`` (aliases allowed: ``sdxl-to-sd15``)."""
    if dst is None:
        text = str(src).strip().lower()
        parts = text.split("-to-")
        if len(parts) != 2:
            raise UnknownDirectionError(
                f"Cannot read direction {src!r}: write it as SRC-to-DST, e.g. 'xl-to-v1'. {published_list()}"
            )
        src, dst = parts
    source, target = get_space(src), get_space(dst)
    if source.name == target.name:
        raise UnknownDirectionError(f"Source and target are both {source.name!r}: nothing to convert.")
    return Direction(source, target)


def published_directions() -> list[Direction]:
    return [direction(s, d) for s, d in PUBLISHED]


def published_list() -> str:
    return "Published directions: " + ", ".join(f"{s}-to-{d}" for s, d in PUBLISHED) + "."
