"""Crossing families at the refiner switch, inside the sampler.

The webuis' ``CFGDenoiser.forward(x, sigma, ...)`` calls ``sd_samplers_common.apply_refiner`` (A1111:
``(self, sigma)``; Forge Neo: ``(self, x, sigma)``; lllyasviel's Forge: ``(self, x)``), which swaps the
checkpoint mid-sampling and carries on with the same ``x``, which is still in the base model's latent space.
``on_cfg_denoiser`` callbacks only see a concatenated copy of ``x``, so the sampler's state has to be changed
**in place**, after the reload and before the new model runs. :class:`RefinerHook` wraps both functions once
(while the script is loaded); the wrappers do nothing unless the generation has a
:class:`~.generation.Generation` attached.

What a sampler can keep from before the switch is of three kinds (see :mod:`.samplers`: one table per
webui, one entry per sampler it lists, from its update rule):

* **states** (``x``, and during a multi-call step the step's main ``x``): signal plus noise; each is a
  tensor that ``forward`` was called with;
* **clean estimates** (k-diffusion's denoised ``D``: DPM++ 2M's ``old_denoised``, 3M SDE's
  ``denoised_1``/``denoised_2``): in the latent space; each is a tensor ``forward`` returned;
* **noise estimates** (LMS's derivatives ``(x - D) / sigma``, PLMS's and DDIM's eps, DPM-Solver's eps,
  a Heun step's ``d``): ``x - D`` over the noise level, the part of a state that is *not* the image.

Noise-preserving strategy (default): each state keeps its own noise part and its clean part is
converted, ``x' = x + s * (I(x0) - x0)`` with ``x0`` the estimate the model made for it (``s`` = 1, or
``sqrt(a)`` for the timesteps samplers); every kept clean estimate becomes ``I(D)``. A noise estimate of
a converted state is then unchanged by construction (``x' - I(x0) = x - x0``), so the noise estimates a
step uses within itself (Heun's ``d``, DPM-Solver's stage eps) are consistent with the converted step.
This module keeps the last :data:`HISTORY_LENGTH` calls (input, output and copies of both) per denoiser,
and converts in place every kept input and output that still holds the value it had (LCM, for one,
reuses an output tensor as the next input and adds noise to it).

Multistep samplers that extrapolate *past steps'* noise estimates (PLMS's eps, LMS's derivatives) with
large weights (up to 59/24) amplify the jump between the two models' predictions; in the stand-in tests,
keeping them loses 1.3 (LMS) and 2.8 dB (PLMS) against a same-family switch with the same refiner.
PLMS's past eps are tensors ``forward`` returned, so they are replaced in place by the refiner's first
eps (its history restarts, as at its own start); LMS's derivatives are computed inside the sampler and
cannot be reached, so LMS is refused.

Restart strategy (Fooocus-style): ``x' = s * I(x0) + level * eps'`` with fresh noise. A sampler whose
state still carries the old noise after the switch call (a multi-call step's main state) would mix old
and new noise, so it is refused with this strategy. Samplers whose state never passes through ``forward``
(UniPC) or that keep state computed from it in the old space (DPM adaptive, LMS) are refused whatever the
strategy, as are unknown samplers, channel changes (SDXL <-> SD3) and inpainting models on either side.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..directions import Direction
from . import attached
from .families import Checkpoint
from .samplers import RefinerSwitchError, switch_refusal

_MARK = "__latent_interposer_refiner__"
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("latent_interposer_refiner_call", default=None)
_HISTORY = "_latent_interposer_history"

# PLMS keeps the eps of its last three steps, which after its two-call first step are the outputs of up to
# four calls back; DPM++ 3M SDE keeps two past estimates; a DPM fast order-3 step's main state is the input
# of the call two calls back. Four past calls cover every sampler of 1.10.1.
HISTORY_LENGTH = 4
_RESTART_EPS = "_latent_interposer_restart_eps"


def _generation(p: Any):
    generation = attached.attached_to(p) if p is not None else None
    return generation if generation is not None and generation.options is not None else None


@dataclass
class _Call:
    """One ``forward`` call: the tensors the sampler passed and got back, and copies of their values."""

    x: torch.Tensor
    sigma: torch.Tensor
    out: torch.Tensor
    x_value: torch.Tensor
    out_value: torch.Tensor

    @staticmethod
    def unchanged(tensor: torch.Tensor, value: torch.Tensor) -> bool:
        """Still the value it had at the call (the sampler did not reuse the tensor for something else)."""
        return tensor.shape == value.shape and torch.equal(tensor, value)


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
        """Put the webui's functions back (only where our wrapper is still the installed one)."""
        if not self._originals:
            return
        if getattr(self.denoiser_class.forward, _MARK, None) is self:
            self.denoiser_class.forward = self._originals["forward"]
        if getattr(self.samplers_common.apply_refiner, _MARK, None) is self:
            self.samplers_common.apply_refiner = self._originals["apply_refiner"]
        self._originals = {}

    def _forward_wrapper(self, original: Callable) -> Callable:
        def forward(denoiser, x, sigma, *args, **kwargs):
            generation = _generation(getattr(denoiser, "p", None))
            if generation is None or not generation.options.enabled or not _has_refiner(generation.p):
                return original(denoiser, x, sigma, *args, **kwargs)
            history = denoiser.__dict__.setdefault(_HISTORY, deque(maxlen=HISTORY_LENGTH))
            if getattr(denoiser, "step", None) == 0:
                history.clear()  # a new sampling run (img2img reuses its sampler for every batch)
            token = _CURRENT.set((denoiser, x, sigma))
            try:
                denoised = original(denoiser, x, sigma, *args, **kwargs)
            finally:
                _CURRENT.reset(token)
            if denoiser.__dict__.pop(_RESTART_EPS, False):
                _restart_eps_history(history, denoised)
            if isinstance(x, torch.Tensor) and isinstance(denoised, torch.Tensor):
                history.append(_Call(x, sigma, denoised, x.detach().clone(), denoised.detach().clone()))
            return denoised

        setattr(forward, _MARK, self)
        forward.__wrapped__ = original
        return forward

    def _apply_refiner_wrapper(self, original: Callable) -> Callable:
        def apply_refiner(cfg_denoiser, *args, **kwargs):
            call = _CURRENT.get()
            p = getattr(cfg_denoiser, "p", None)
            generation = _generation(p)
            if generation is None or not _has_refiner(p):
                return original(cfg_denoiser, *args, **kwargs)
            webui = generation.webui
            # Read now: the webui loads a same-config refiner's weights into this very model object.
            before = Checkpoint.of_model(p.sd_model, webui)
            other = before.filename != getattr(p.refiner_checkpoint_info, "filename", None)
            if other:
                webui.forget_cached_conds(p)  # the webui computes the refiner's conds at the switch
            switched = original(cfg_denoiser, *args, **kwargs)
            if not switched:
                return switched
            webui.forget_cached_conds(p)  # ... and may cache them under the base checkpoint's key
            if generation.options.enabled and call is not None and call[0] is cfg_denoiser:
                with generation.one_line_errors():
                    carry_across_switch(generation, cfg_denoiser, call[1], call[2], before, _switch_input(args, call))
            elif not generation.options.enabled:
                after = Checkpoint.of_model(p.sd_model, webui)
                source = generation.family or before.family
                if source is not None and after.family is not None and not source.same_as(after.family):
                    generation.say_unconverted(source, after.family, "refiner switch")
            return switched

        setattr(apply_refiner, _MARK, self)
        apply_refiner.__wrapped__ = original
        return apply_refiner


def _switch_input(args: tuple, call: tuple) -> torch.Tensor | None:
    """The latent ``apply_refiner`` was handed, when it is not the sampler's own tensor: the Forges pass ``x``,
    and for their timesteps samplers that ``x`` is a copy scaled by ``sqrt(sigma^2 + 1)`` which the refiner's
    first call then runs on (A1111 passes only ``sigma``)."""
    x = call[1]
    first = args[0] if args else None
    if isinstance(first, torch.Tensor) and first is not x and first.shape == x.shape:
        return first
    return None


def _has_refiner(p: Any) -> bool:
    return getattr(p, "refiner_checkpoint_info", None) is not None


def _unwrap(function: Callable) -> Callable:
    while getattr(function, _MARK, None) is not None:
        function = function.__wrapped__
    return function


def sampler_name_of(denoiser: Any) -> str | None:
    return getattr(getattr(getattr(denoiser, "sampler", None), "config", None), "name", None)


def carry_across_switch(
    generation, denoiser, x: torch.Tensor, sigma: torch.Tensor, before: Checkpoint, switch_input=None
) -> None:
    """The refiner was just loaded: move the sampler's state into its latent space, in place (and the scaled copy
    of it the webui hands the refiner's first call, ``switch_input``, if there is one)."""
    p = denoiser.p
    after = Checkpoint.of_model(p.sd_model, generation.webui)
    source = generation.family or before.family
    target = after.family
    if source is None or target is None:
        unknown = before.title if source is None else after.title
        generation.say_once("refiner-unknown", f"refiner: cannot tell which model family {unknown!r} belongs to.")
        raise RefinerSwitchError(
            f"Latent Interposer: the refiner switch involves {unknown!r}, whose latent space is unknown; "
            "the sampler's latents cannot be converted. Use a refiner of the same family, or turn the interposer off."
        )
    if source.same_as(target):
        generation.family = target
        return
    strategy = generation.options.refiner_strategy
    webui = generation.webui
    current = Checkpoint(source, before.image_conditioned, before.filename, before.title)
    refusal = switch_refusal(webui, generation.option, strategy, current, after, sampler_name_of(denoiser))
    if refusal is not None:
        raise RefinerSwitchError(refusal)
    dirn = Direction(source.space, target.space)

    calls: list[_Call] = list(denoiser.__dict__.get(_HISTORY) or ())
    alphas = webui.timestep_alphas(denoiser)  # the timesteps samplers' (DDIM, PLMS): their model returns eps
    restart = strategy.lower().startswith("restart")

    if calls:
        x0 = _clean_estimate(calls[-1], alphas)
    elif getattr(denoiser, "init_latent", None) is not None:
        x0 = denoiser.init_latent  # img2img / hires pass switching at its first step
    else:
        generation.say_once("refiner-noise", "refiner: switch at the first step, the state is pure noise.")
        generation.family = target
        return

    converted_x0 = generation.convert(x0.float(), dirn, "refiner").to(x.dtype)
    # Every kept call's own estimate, the older ones converted in one batch (the newest is x0 itself).
    estimates = [_clean_estimate(call, alphas) for call in calls[:-1]]
    converted = _convert_batch(generation, estimates, dirn)
    if calls:
        estimates.append(x0)
        converted.append(converted_x0)

    updates: list[tuple[torch.Tensor, torch.Tensor]] = []
    scale_now = _signal_scale(alphas, sigma, x)
    if restart:
        noise = _fresh_noise(p, x, denoiser)
        level = _noise_level(alphas, sigma, x) * (1.0 + generation.options.noise_boost)
        updates.append((x, scale_now * converted_x0 + level * noise))
    else:
        updates.append((x, x + scale_now * (converted_x0 - x0.to(x.dtype))))
    for call, estimate, new in zip(reversed(calls), reversed(estimates), reversed(converted), strict=True):
        # A kept state (a multi-call step's main x; dead otherwise) keeps its own noise part.
        if call.x is not x and _Call.unchanged(call.x, call.x_value):
            scale = _signal_scale(alphas, call.sigma, call.x)
            updates.append((call.x, call.x_value + scale * (new - estimate).to(call.x.dtype)))
        # A kept clean estimate (k-diffusion's D; the timesteps samplers return eps, which stays).
        if alphas is None and _Call.unchanged(call.out, call.out_value):
            updates.append((call.out, new.to(call.out.dtype)))
    seen = set()
    for tensor, value in updates:  # all new values were computed from the old ones first
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            tensor.copy_(value)
    if switch_input is not None and alphas is not None:
        switch_input.copy_(x / _alpha(alphas, sigma, x).sqrt().to(x.dtype))  # the same state, sqrt(sigma^2+1) x
    init_latent = getattr(denoiser, "init_latent", None)
    if init_latent is not None and init_latent.shape == x.shape:
        denoiser.init_latent = generation.converter.run(init_latent, dirn)[0]
        generation.replace_init_latent(denoiser.init_latent, init_latent)
    sampler = getattr(denoiser, "sampler", None)
    if sampler is not None:
        sampler.last_latent = converted_x0  # what an interrupt returns and previews show
    if alphas is not None:
        denoiser.__dict__[_RESTART_EPS] = True  # once the refiner's eps is known (see _restart_eps_history)
    generation.family = target


def _restart_eps_history(calls, eps: torch.Tensor) -> None:
    """The refiner's first eps replaces the base model's past eps (PLMS's ``old_eps``), in place.

    PLMS extrapolates its last eps with Adams-Bashforth weights up to 59/24; with the base model's eps in
    that history the jump between the two models (and the interposer's error that the refiner corrects) is
    amplified into the state. Replacing them with the refiner's own eps restarts the history for the new
    model: the switch step becomes a DDIM step, as PLMS's own start is a low-order step."""
    for call in calls:
        if call.out is not eps and _Call.unchanged(call.out, call.out_value):
            call.out.copy_(eps)
            call.out_value = eps.detach().clone()


def _convert_batch(generation, tensors: list[torch.Tensor], dirn: Direction) -> list[torch.Tensor]:
    """Convert several same-shaped latents in one interposer run (no console line of their own)."""
    if not tensors:
        return []
    stacked = torch.cat([t.float() for t in tensors])
    out = generation.converter.run(stacked, dirn)[0]
    return [part.to(t.dtype) for part, t in zip(out.split([t.shape[0] for t in tensors]), tensors, strict=True)]


def _clean_estimate(call: _Call, alphas) -> torch.Tensor:
    """x0 as that model call saw it: D itself (k-diffusion), or from eps (timesteps samplers)."""
    if alphas is None:
        return call.out_value
    a = _alpha(alphas, call.sigma, call.x_value)
    return (call.x_value - (1 - a).sqrt() * call.out_value) / a.sqrt()


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
