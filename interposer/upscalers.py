"""Latent upscalers: the published v2.1 files and their names.

city96's SD-Latent-Upscaler v2.1 (Apache-2.0) publishes one file per family and factor at the
root of the hub repository ``city96/SD-Latent-Upscaler``:
``latent-upscaler-v2.1_SD{v1|xl}-x{1.25|1.5|2.0}.safetensors``. They upscale **raw** latents of
one family. An :class:`UpscalerSpec` is the upscaler's *weights spec*, the counterpart of
:class:`interposer.directions.Direction`, so the same lookup, cache and validation serve both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .directions import HUB_REVISION, factor_text
from .errors import UnknownDirectionError
from .hub import HubFile
from .spaces import LatentSpace, get_space

if TYPE_CHECKING:
    from .upscaler_model import UpscalerConfig

UPSCALER_REPO_ID = "city96/SD-Latent-Upscaler"
UPSCALER_SUBFOLDER = ""  # the files sit at the repository root
UPSCALER_VERSION = "v2.1"
PUBLISHED_FACTORS: tuple[float, ...] = (1.25, 1.5, 2.0)
PUBLISHED_SPACES: tuple[str, ...] = ("v1", "xl")
FILENAME = re.compile(r"^latent-upscaler-(?P<version>.+?)_SD(?P<space>\w+?)-x(?P<factor>\d+(?:\.\d+)?)\.safetensors$")


@dataclass(frozen=True)
class UpscalerSpec:
    """A family and a factor: which upscaler file to look for."""

    space: LatentSpace
    factor: float

    kind: ClassVar[str] = "upscaler"
    label: ClassVar[str] = "Latent upscaler weights"
    hub_repo_id: ClassVar[str] = UPSCALER_REPO_ID
    hub_subfolder: ClassVar[str] = UPSCALER_SUBFOLDER
    default_version: ClassVar[str] = UPSCALER_VERSION

    @property
    def name(self) -> str:
        """``v1-x2.0``: what the command line takes (``download v1-x2.0``)."""
        return f"{self.space.name}-x{factor_text(self.factor)}"

    @property
    def label_short(self) -> str:
        """``v1 x2.0``: what the console line and the infotext say."""
        return f"{self.space.name} x{factor_text(self.factor)}"

    @property
    def is_published(self) -> bool:
        return self.space.name in PUBLISHED_SPACES and self.factor in PUBLISHED_FACTORS

    @property
    def in_space(self) -> LatentSpace:
        return self.space

    @property
    def out_space(self) -> LatentSpace:
        return self.space

    def default_config(self) -> UpscalerConfig:
        """Constructor arguments of the published layout (64 channels, 16 inner convs)."""
        from .upscaler_model import UpscalerConfig  # imports torch; naming files must not

        channels = self.space.channels
        return UpscalerConfig(ch_in=channels, ch_out=channels, ch_mid=64, factor=self.factor, convs=16)

    def filename(self, version: str = UPSCALER_VERSION) -> str:
        return f"latent-upscaler-{version}_SD{self.space.name}-x{factor_text(self.factor)}.safetensors"

    def hub_file(self, revision: str = HUB_REVISION, repo_id: str | None = None) -> HubFile:
        return HubFile(repo_id or self.hub_repo_id, self.filename(), self.hub_subfolder, revision)

    def hub_url(self, revision: str = HUB_REVISION, repo_id: str | None = None) -> str:
        return self.hub_file(revision, repo_id).url

    def __str__(self) -> str:
        return self.label_short


def upscaler(space: str | LatentSpace, factor: float | str | None = None) -> UpscalerSpec:
    """``upscaler("v1", 2)`` or ``upscaler("v1-x2.0")`` (also ``sd15-x1.5``)."""
    if factor is None:
        match = re.match(r"^(.+?)[- ]x(\d+(?:\.\d+)?)$", str(space).strip().lower())
        if not match:
            raise UnknownDirectionError(f"Cannot read upscaler {space!r}: write it as FAMILY-xFACTOR, e.g. 'v1-x2.0'.")
        space, factor = match[1], match[2]
    try:
        value = float(factor)
    except (TypeError, ValueError) as exc:
        raise UnknownDirectionError(f"Upscale factor {factor!r} is not a number.") from exc
    if not value > 1.0:
        raise UnknownDirectionError(f"Upscale factor {value:g} must be larger than 1.")
    return UpscalerSpec(get_space(space), value)


def published_upscalers() -> list[UpscalerSpec]:
    return [upscaler(s, f) for s in PUBLISHED_SPACES for f in PUBLISHED_FACTORS]


def parse_filename(name: str) -> tuple[str, str, float] | None:
    """(version, space, factor) of a file named like the published ones, else None."""
    match = FILENAME.match(name)
    if not match:
        return None
    return match["version"], match["space"], float(match["factor"])
