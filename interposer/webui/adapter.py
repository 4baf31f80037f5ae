"""What differs between the webuis, behind one small interface.

The decision layer (:mod:`.generation`, :mod:`.preflight`, :mod:`.refiner`) asks a :class:`Webui` only what
it cannot know on its own: which family a loaded model is, which samplers the webui has and what each keeps,
how it loads separate VAE / text-encoder files, what a checkpoint switch leaves stale in its caches. One subclass
per webui lives in :mod:`.a1111` and :mod:`.forge`, with that webui's facts; :mod:`.detect` picks one.
"""

from __future__ import annotations

from typing import Any

from .families import Checkpoint, CheckpointKind, Family, checkpoint_filename, checkpoint_kind, model_title
from .samplers import SamplerTable


class Webui:
    """The webui-specific answers the decision layer needs (this base: what every webui shares)."""

    name = "webui"
    version = ""
    samplers: SamplerTable
    refiner_in_hires = True  # can a refiner switch happen inside the hires pass?
    # Does the hires pass start from the first-pass checkpoint again (A1111 reloads it before the hires pass;
    # the Forges load only a hires checkpoint or modules that were asked for, so a refiner loaded during the
    # first pass stays loaded)?
    hires_reloads_first_pass_model = True

    def family(self, sd_model: Any) -> Family | None:
        """The family of a loaded model (``None``: cannot tell)."""
        raise NotImplementedError

    def checkpoint(self, info: Any, loaded: Any) -> Checkpoint:
        """What a pass on checkpoint ``info`` will run on, known before it is loaded: the loaded model when
        ``info`` is its file (or ``None``, "the same checkpoint"), else read from the file's header."""
        loaded_file = checkpoint_filename(loaded)
        if info is None or getattr(info, "filename", None) == (loaded_file or object()):
            return Checkpoint(self.family(loaded), self.image_conditioned(loaded), loaded_file, model_title(loaded))
        title = str(getattr(info, "short_title", None) or getattr(info, "title", None) or "unknown checkpoint")
        kind: CheckpointKind | None = checkpoint_kind(getattr(info, "filename", None))
        if kind is None:
            return Checkpoint(None, False, getattr(info, "filename", None), title)
        return Checkpoint(kind.family, kind.image_conditioned, info.filename, title, kind.bundled)

    def image_conditioned(self, sd_model: Any) -> bool:
        """An inpainting (or other image-conditioned) model: extra UNet input channels."""
        return False

    # ---- separate VAE / text-encoder files ("modules"): only the Forges have them

    def first_pass_modules(self, option: Any) -> list[str]:
        """The VAE / text-encoder files the first pass was loaded with (besides its checkpoint)."""
        return []

    def hires_keeps_modules(self, p: Any) -> bool:
        """Does a hires pass on another checkpoint keep the first pass's modules (Forge: "Use same choices")?"""
        return False

    def use_builtin_hires_modules(self, p: Any) -> None:
        """Make the hires pass load its checkpoint with the VAE and text encoders inside it."""
        raise NotImplementedError

    hires_modules_setting = ""  # where the user picks the hires pass's modules (the webui's own words)

    def vae_override(self, option: Any) -> tuple[str, str] | None:
        """A VAE choice the webui forces onto every checkpoint, for a warning: what forces it and how to undo it
        (``None``: none; on the Forges ``sd_vae`` is a placeholder and VAE files are modules, see
        :meth:`hires_module_files`)."""
        return None

    def hires_module_files(self, p: Any) -> list[str]:
        """The VAE / text-encoder files the user chose for the hires pass by name (none: same as the first pass,
        or the checkpoint's own)."""
        return []

    def forget_cached_conds(self, p: Any) -> None:
        """Drop prompt conditionings the webui cached for another checkpoint than the one now loaded (called
        before and after every pass that runs on another checkpoint than the generation started on)."""

    def switches_by_steps(self, option: Any) -> bool:
        """Does the refiner switch at a step count (rather than at a sigma)? ``option(key, default)``."""
        return False

    def switch_reachable(self, switch_at: Any, option: Any) -> bool:
        """Can sampling reach a refiner switch at ``switch_at``? A1111 (and a switch by steps) compares it with the
        completed fraction of the schedule, which stays below 1.0."""
        return switch_at is None or float(switch_at) < 1.0

    def hires_refiner_pass(self, option: Any) -> str:
        """Which pass of a hires-fix generation the refiner switches in: "first pass", "second pass" or "both
        passes" (A1111's and lllyasviel's Forge's setting *Hires fix: which pass to enable refiner for*)."""
        return str(option("hires_fix_refiner_pass", "second pass"))

    def refiner_refusal(self, option: Any) -> str | None:
        """A refusal of any cross-family refiner switch that follows from the webui's settings alone."""
        return None

    def timestep_alphas(self, denoiser: Any) -> Any:
        """The cumulative alphas of a timesteps sampler's denoiser (DDIM, PLMS), ``None`` for k-diffusion ones:
        their models return eps and take a timestep, not a sigma."""
        return None

    def label(self) -> str:
        return f"{self.name} {self.version}".strip()
