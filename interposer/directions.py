"""Conversion directions, the published v4.0 weights and their file names.

A direction is a (source space, target space) pair written ``src-to-dst``, like the
published files: ``{src}-to-{dst}_interposer-v4.0.safetensors`` in the ``v4.0`` folder of
the Hugging Face repository ``city96/SD-Latent-Interposer``. A direction with a ``factor``
(``xl-to-v1-x2.0``) names a trained one-network convert-and-upscale model in the same layout.

A :class:`Direction` is one kind of *weights spec* (the other is
:class:`interposer.upscalers.UpscalerSpec`): everything the weights lookup needs to know about
the file it looks for, so that both model kinds share one resolution, cache and validation path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .errors import UnknownDirectionError
from .hub import HubFile
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


# The directions this project trained and ships inside the package (``interposer/bundled/``, docs/models.md):
# nobody publishes them. Their files carry BUNDLED_TAG; a user's own file under the published name
# (``{name}_interposer-v4.0.safetensors`` in a weights folder) is found first. Only directions within 1 dB of the
# TAE bridge on held-out images ship: f2-to-xl, xl-to-f2 and v1-to-f2 were trained too and held back (2.4, 3.0 and
# 2.1 dB under it, with visible colour and contrast errors; docs/results.md).
BUNDLED: tuple[tuple[str, str], ...] = (
    ("xl", "fx"),
    ("v1", "fx"),
    ("f2", "v1"),
)
BUNDLED_TAG = "li-4"


def factor_text(factor: float) -> str:
    """``1.25``, ``1.5``, ``2.0``: factors written as in the published upscaler file names."""
    return repr(float(factor))


@dataclass(frozen=True)
class Direction:
    """A source and a target latent space (and, for a one-network convert-and-upscale model, a factor)."""

    src: LatentSpace
    dst: LatentSpace
    factor: float = 1.0

    kind: ClassVar[str] = "interposer"
    label: ClassVar[str] = "Interposer weights"
    hub_repo_id: ClassVar[str] = HUB_REPO_ID
    hub_subfolder: ClassVar[str] = HUB_SUBFOLDER
    default_version: ClassVar[str] = WEIGHTS_VERSION

    @property
    def name(self) -> str:
        base = f"{self.src.name}-to-{self.dst.name}"
        return base if self.factor == 1.0 else f"{base}-x{factor_text(self.factor)}"

    @property
    def is_published(self) -> bool:
        return self.factor == 1.0 and (self.src.name, self.dst.name) in PUBLISHED

    @property
    def is_bundled(self) -> bool:
        """Trained by this project and shipped in the package (:data:`BUNDLED`): found without a download."""
        return self.factor == 1.0 and (self.src.name, self.dst.name) in BUNDLED

    @property
    def in_space(self) -> LatentSpace:
        return self.src

    @property
    def out_space(self) -> LatentSpace:
        return self.dst

    def default_config(self) -> InterposerConfig:
        """Constructor arguments of the published layout for this pair of spaces."""
        from .model import InterposerConfig  # imports torch; naming files must not

        return InterposerConfig(
            ch_in=self.src.channels,
            ch_out=self.dst.channels,
            ch_mid=64,
            scale=spatial_scale(self.src, self.dst) * self.factor,
            blocks=12,
        )

    def filename(self, version: str = WEIGHTS_VERSION) -> str:
        return f"{self.name}_interposer-{version}.safetensors"

    def hub_file(self, revision: str = HUB_REVISION, repo_id: str | None = None) -> HubFile:
        return HubFile(repo_id or self.hub_repo_id, self.filename(), self.hub_subfolder, revision)

    def hub_url(self, revision: str = HUB_REVISION, repo_id: str | None = None) -> str:
        """Browser/download URL of the published file (for error messages and manual downloads)."""
        return self.hub_file(revision, repo_id).url

    def __str__(self) -> str:
        return self.name


_FACTOR_SUFFIX = re.compile(r"^(.*?)-x(\d+(?:\.\d+)?)$")


def direction(src: str | LatentSpace, dst: str | LatentSpace | None = None, factor: float = 1.0) -> Direction:
    """Parse ``direction("xl", "v1")``, ``direction("xl-to-v1")`` (aliases allowed: ``sdxl-to-sd15``) or
    ``direction("xl-to-v1-x2.0")`` (a convert-and-upscale model)."""
    if dst is None:
        text = str(src).strip().lower()
        match = _FACTOR_SUFFIX.match(text)
        if match:
            text, factor = match[1], float(match[2])
        parts = text.split("-to-")
        if len(parts) != 2:
            raise UnknownDirectionError(
                f"Cannot read direction {src!r}: write it as SRC-to-DST, e.g. 'xl-to-v1'. {published_list()}"
            )
        src, dst = parts
    source, target = get_space(src), get_space(dst)
    if source.name == target.name:
        raise UnknownDirectionError(f"Source and target are both {source.name!r}: nothing to convert.")
    if not factor > 0:
        raise UnknownDirectionError(f"Upscale factor {factor!r} of {source.name}-to-{target.name} must be positive.")
    return Direction(source, target, float(factor))


def published_directions() -> list[Direction]:
    return [direction(s, d) for s, d in PUBLISHED]


def bundled_directions() -> list[Direction]:
    return [direction(s, d) for s, d in BUNDLED]


def published_list() -> str:
    return (
        "Published directions: " + ", ".join(f"{s}-to-{d}" for s, d in PUBLISHED)
        + "; bundled with the extension: " + ", ".join(f"{s}-to-{d}" for s, d in BUNDLED) + "."
    )  # fmt: skip
