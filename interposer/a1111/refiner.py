"""Crossing families at the refiner switch, inside the sampler.

A1111's ``CFGDenoiser.forward(x, sigma, ...)`` calls ``sd_samplers_common.apply_refiner(self, sigma)``,
which swaps the checkpoint mid-sampling and carries on with the same ``x``, which is still in the
base model's latent space. ``on_cfg_denoiser`` callbacks only see a concatenated copy of ``x``, so the
sampler's state has to be changed **in place**, after the reload and before the new model runs.
:class:`RefinerHook` wraps both functions once (while the script is loaded); the wrappers do nothing
unless the generation has a :class:`~.generation.Generation` attached.

At the switch the sampler holds, in the old space:

* ``x``: k-diffusion samplers keep ``x = x0 + sigma * eps``; DDIM/PLMS/UniPC keep
  ``x = sqrt(a) * x0 + sqrt(1 - a) * eps``;
* the previous denoised estimate ``D``: k-diffusion's DPM++ 2M keeps it as ``old_denoised`` (the very
  tensor ``forward`` returned), and second-order samplers (DPM++ SDE, Heun) call the model twice per
  step, so when the switch falls on the second call the step's main ``x`` is the previous call's input.

Noise-preserving strategy: with ``x0 = D_prev`` (what the last step predicted), the noise part
``x - x0`` (or ``x - sqrt(a) x0``) is kept and ``x0`` is converted: ``x' = I(x0) + (x - x0)``. The
previous call's input and output are converted the same way, in place, so history and the main state
of a second-order step move together. Restart strategy (Fooocus-style): ``x' = I(x0) + sigma * eps'``
with fresh noise (optionally boosted), the sampler's noise replaced.

Limits (also in the README): UniPC keeps its own list of past x0 predictions, computed inside the
solver from our outputs, which cannot be reached; the first corrector step after the switch mixes one
old-space prediction in. PLMS keeps past eps (noise) estimates, which need no conversion. A switch
that changes the channel count (SDXL <-> SD3) or to/from an inpainting model is refused.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..directions import Direction
from ..errors import InterposerError
from ..spaces import LatentSpace
from .families import family_of, model_title

_MARK = "__latent_interposer_refiner__"
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("latent_interposer_refiner_call", default=None)
_HISTORY = "_latent_interposer_history"


# Samplers whose state the switch cannot reach, with the reason given to the user.
UNSUPPORTED_SAMPLERS = {
    "UniPC": (
        "UniPC evaluates the model at a predicted state but continues from its own corrected state and its own "
        "list of past x0 predictions, which never pass through the webui's denoiser, so they stay in the old "
        "latent space"
    ),
}


class RefinerSwitchError(InterposerError, RuntimeError):
    """A refiner switch the interposer cannot carry the sampler across."""


def _generation(p: Any):
    from .generation import Generation

    generation = Generation.of(p) if p is not None else None
    return generation if generation is not None and generation.options is not None else None


class RefinerHook:
    """Wraps ``CFGDenoiser.forward`` and ``sd_samplers_common.apply_refiner`` while installed."""

    def __init__(self, denoiser_class: type, samplers_common: Any) -> None:
        self.denoiser_class = denoiser_class
        self.samplers_common = samplers_common
        self._originals: dict[str, Callable] = {}

    def install(self) -> None:
        """Wrap once; a leftover wrapper from an earlier load of the script is unwrapped first."""
        forward = _unwrap(self.denoiser_class.forward)
        apply_refiner = _unwrap(self.samplers_common.apply_refiner)
        self._originals = {"forward": forward, "apply_refiner": apply_refiner}
        self.denoiser_class.forward = self._forward_wrapper(forward)
        self.samplers_common.apply_refiner = self._apply_refiner_wrapper(apply_refiner)

    def uninstall(self) -> None:
        if not self._originals:
            return
        if getattr(self.denoiser_class.forward, _MARK, None) is self:
            self.denoiser_class.forward = self._originals["forward"]
        if getattr(self.samplers_common.apply_refiner, _MARK, None) is self:
            self.samplers_common.apply_refiner = self._originals["apply_refiner"]
        self._originals = {}

    @property
    def installed(self) -> bool:
        return getattr(self.denoiser_class.forward, _MARK, None) is self

    def _forward_wrapper(self, original: Callable) -> Callable:
        def forward(denoiser, x, sigma, *args, **kwargs):
            generation = _generation(getattr(denoiser, "p", None))
            if generation is None or not generation.options.enabled:
                return original(denoiser, x, sigma, *args, **kwargs)
            token = _CURRENT.set((denoiser, x, sigma))
            try:
                denoised = original(denoiser, x, sigma, *args, **kwargs)
            finally:
                _CURRENT.reset(token)
            history = denoiser.__dict__.setdefault(_HISTORY, deque(maxlen=2))
            history.append((x, sigma, denoised))
            return denoised

        setattr(forward, _MARK, self)
        forward.__wrapped__ = original
        return forward

    def _apply_refiner_wrapper(self, original: Callable) -> Callable:
        def apply_refiner(cfg_denoiser, *args, **kwargs):
            call = _CURRENT.get()
            generation = _generation(getattr(cfg_denoiser, "p", None))
            if call is None or call[0] is not cfg_denoiser or generation is None:
                return original(cfg_denoiser, *args, **kwargs)
            # Read now: the webui loads a same-config refiner's weights into this very model object.
            before = ModelFacts.of(cfg_denoiser.p.sd_model)
            switched = original(cfg_denoiser, *args, **kwargs)
            if switched:
                carry_across_switch(generation, cfg_denoiser, call[1], call[2], before)
            return switched

        setattr(apply_refiner, _MARK, self)
        apply_refiner.__wrapped__ = original
        return apply_refiner


def _unwrap(function: Callable) -> Callable:
    while getattr(function, _MARK, None) is not None:
        function = function.__wrapped__
    return function


def _conditioning_key(model: Any) -> str:
    return str(getattr(getattr(model, "model", None), "conditioning_key", "crossattn"))


@dataclass(frozen=True)
class ModelFacts:
    """What the switch needs to know about a loaded model, copied out of it.

    A1111 loads a checkpoint with the loaded model's config into the *same* model object, so a reference
    to "the base model" taken before ``reload_model_weights`` describes the refiner afterwards."""

    family: LatentSpace | None
    title: str
    conditioning_key: str
    image_conditioned: bool

    @staticmethod
    def of(model: Any) -> ModelFacts:
        key = _conditioning_key(model)
        inpaint = key in ("hybrid", "concat") or bool(getattr(model, "is_sdxl_inpaint", False))
        return ModelFacts(family_of(model), model_title(model), key, inpaint)


def carry_across_switch(generation, denoiser, x: torch.Tensor, sigma: torch.Tensor, before: ModelFacts) -> None:
    """The refiner was just loaded: move the sampler's state into its latent space, in place."""
    p = denoiser.p
    after = ModelFacts.of(p.sd_model)
    source = generation.latent_space or before.family
    target = after.family
    if source is None or target is None:
        unknown = before.title if source is None else after.title
        generation.say_once("refiner-unknown", f"refiner: cannot tell which model family {unknown!r} belongs to.")
        raise RefinerSwitchError(
            f"Latent Interposer: the refiner switch involves {unknown!r}, whose latent space is unknown; "
            "the sampler's latents cannot be converted. Use a refiner of the same family, or turn the interposer off."
        )
    if source.name == target.name:
        generation.latent_space = target
        return
    dirn = Direction(source, target)
    if source.channels != target.channels:
        raise RefinerSwitchError(
            f"Latent Interposer: the refiner switch {dirn.name} changes the latent channels ({source.channels} -> "
            f"{target.channels}); a running sampler's tensors cannot change shape. Use hires fix with a "
            f"{target.label} hires checkpoint instead (the interposer converts there)."
        )
    sampler_name = getattr(getattr(getattr(denoiser, "sampler", None), "config", None), "name", None)
    if sampler_name in UNSUPPORTED_SAMPLERS:
        raise RefinerSwitchError(
            f"Latent Interposer: cannot carry the {sampler_name} sampler across the {dirn.name} refiner switch: "
            f"{UNSUPPORTED_SAMPLERS[sampler_name]}. Use Euler, Euler a, DPM++ 2M, DPM++ SDE or DDIM for a "
            "refiner of another family, or hires fix."
        )
    if before.image_conditioned or after.image_conditioned:
        raise RefinerSwitchError(
            f"Latent Interposer: {before.title!r} or the refiner {after.title!r} is an inpainting (image-conditioned) "
            "model; its conditioning latents are in the other family's space and the webui does not rebuild them at "
            "the switch. Use non-inpainting checkpoints for a refiner of another family."
        )

    history = denoiser.__dict__.get(_HISTORY) or deque()
    previous = history[-1] if history else None
    alphas = getattr(denoiser, "alphas", None)  # set on the timesteps samplers' denoiser (DDIM, PLMS, UniPC)
    strategy = generation.options.refiner_strategy
    restart = strategy.lower().startswith("restart")

    if previous is not None:
        x0 = _clean_estimate(previous, alphas)
    elif getattr(denoiser, "init_latent", None) is not None:
        x0 = denoiser.init_latent  # img2img / hires pass switching at its first step
    else:
        generation.say_once("refiner-noise", "refiner: switch at the first step, the state is pure noise.")
        generation.latent_space = target
        return

    converted_x0 = generation.convert(x0.float(), dirn, "refiner").to(x.dtype)
    scale_now = _signal_scale(alphas, sigma, x)

    updates: list[tuple[torch.Tensor, torch.Tensor]] = []
    if restart:
        noise = _fresh_noise(p, x, denoiser)
        level = _noise_level(alphas, sigma, x) * (1.0 + generation.options.noise_boost)
        updates.append((x, scale_now * converted_x0 + level * noise))
    else:
        updates.append((x, x + scale_now * (converted_x0 - x0.to(x.dtype))))
    if previous is not None:
        prev_x, prev_sigma, prev_denoised = previous
        if prev_x is not x and prev_x.shape == x.shape:  # a second-order step's main state (dead otherwise)
            scale_prev = _signal_scale(alphas, prev_sigma, prev_x)
            updates.append((prev_x, prev_x + scale_prev * (converted_x0 - x0.to(prev_x.dtype))))
        if alphas is None and prev_denoised.shape == x.shape:  # k-diffusion history: D_prev -> I(D_prev)
            updates.append((prev_denoised, converted_x0.to(prev_denoised.dtype)))
    seen = set()
    for tensor, value in updates:  # all new values were computed from the old ones first
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            tensor.copy_(value)
    if getattr(denoiser, "init_latent", None) is not None and denoiser.init_latent.shape == x.shape:
        denoiser.init_latent = generation.converter.run(denoiser.init_latent, dirn)[0]
    sampler = getattr(denoiser, "sampler", None)
    if sampler is not None:
        sampler.last_latent = converted_x0  # what an interrupt returns and previews show
    generation.latent_space = target


def _clean_estimate(previous: tuple, alphas) -> torch.Tensor:
    """x0 as the previous model call saw it: D itself (k-diffusion), or from eps (timesteps samplers)."""
    prev_x, prev_sigma, prev_out = previous
    if alphas is None:
        return prev_out
    a = _alpha(alphas, prev_sigma, prev_x)
    return (prev_x - (1 - a).sqrt() * prev_out) / a.sqrt()


def _alpha(alphas, timestep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    index = timestep.flatten()[0].round().long().clamp(0, len(alphas) - 1)
    return alphas[index].to(like.device, torch.float32).reshape(1, 1, 1, 1)


def _signal_scale(alphas, sigma: torch.Tensor, like: torch.Tensor):
    return 1.0 if alphas is None else _alpha(alphas, sigma, like).sqrt().to(like.dtype)


def _noise_level(alphas, sigma: torch.Tensor, like: torch.Tensor):
    if alphas is None:
        return sigma.flatten()[0].to(like.dtype)
    return (1 - _alpha(alphas, sigma, like)).sqrt().to(like.dtype)


def _fresh_noise(p: Any, like: torch.Tensor, denoiser: Any) -> torch.Tensor:
    """Reproducible fresh noise: one generator per image seed, offset by the switch step."""
    seeds = list(getattr(p, "seeds", None) or [0] * like.shape[0])
    step = int(getattr(denoiser, "step", 0))
    noise = [
        torch.randn(like.shape[1:], generator=torch.Generator().manual_seed(int(seed) * 1009 + step + 7919))
        for seed in seeds[: like.shape[0]]
    ]
    while len(noise) < like.shape[0]:
        noise.append(torch.randn(like.shape[1:]))
    return torch.stack(noise).to(like.device, like.dtype)
