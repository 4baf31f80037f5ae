"""Per-generation hooks: convert the latents where a webui hands them to a model of another family.

Both webuis' txt2img ``sample()`` runs the first pass, loads the hires checkpoint, then calls
``self.sample_hr_pass(samples, ...)`` with the first pass's latents, undecoded when the hires upscaler is a
*Latent* one; the latent interpolation and the hires noise come after, inside ``sample_hr_pass``. No script
hook sees the latents in between, and when ``sample_hr_pass`` runs the first-pass model is gone. So a
:class:`Generation` replaces ``p.sample`` (to read the first-pass family and check what the generation will
need, before anything runs) and ``p.sample_hr_pass`` (to convert on entry) **on that one ``p`` only**, and puts
the class methods back when it is detached. img2img's ``p`` has no hires pass: only ``sample`` is wrapped there.
The refiner hooks (:mod:`.refiner`) find the same object through :mod:`.attached` and keep :attr:`family` up to
date.

Everything webui-specific (how a model tells its family, which caches a checkpoint switch leaves stale) comes
from the :class:`~.adapter.Webui` adapter; the hires decisions (which families cross, what to convert, upscale or
interpolate) are :mod:`.hires`'s and the checks before sampling :mod:`.preflight`'s, the same for every webui. This
module keeps the hooks, the messages and the infotext.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..directions import Direction
from ..errors import InterposerError, MissingDependencyError
from ..runtime import ConversionReport, Converter
from . import attached, hires
from .adapter import Webui
from .families import Family, checkpoint_filename, model_title
from .options import (
    AUTO,
    INFOTEXT_KEY,
    REFINER_INFOTEXT_KEY,
    UPSCALER_INFOTEXT_KEY,
    GenerationOptions,
    format_infotext,
    format_upscaler_infotext,
)
from .preflight import check_before_sampling

ATTRIBUTE = attached.ATTRIBUTE
_WRAPPED = ("sample", "sample_hr_pass")
_MARK = "__latent_interposer__"


def _log(message: str) -> None:
    print(f"Latent Interposer: {message}", flush=True)


class Generation:
    """The interposer's state for one processing object ``p``."""

    def __init__(
        self,
        p: Any,
        webui: Webui,
        settings: Any,
        ui_values: dict | None = None,
        *,
        log: Callable[[str], None] = _log,
        vae_override: Callable[[], tuple[str, str] | None] | None = None,
    ) -> None:
        self.p = p
        self.webui = webui
        # Settings are read when sampling starts: after the webui applied the request's override_settings.
        self.settings = settings  # a .settings.WebuiSettings (or anything with option/generation_options/converter)
        self.ui_values = dict(ui_values or {})
        self.options: GenerationOptions | None = None
        self.converter: Converter | None = None
        self.log = log
        self.vae_override = vae_override or (lambda: webui.vae_override(self.option))
        self.family: Family | None = None  # the family the live latents are in
        self.first_pass_title = "unknown checkpoint"
        self.first_checkpoint: str | None = None  # the file the batch started on
        self.reports: list[ConversionReport] = []
        self.owner = "script"
        self._said: set[str] = set()
        self._saved: dict[str, tuple[bool, Any]] = {}
        self._base_init_latent: Any = None  # img2img: p.init_latent in the base model's space, during sample()

    # ------------------------------------------------------------------ attach / detach

    @staticmethod
    def of(p: Any) -> Generation | None:
        """The generation attached to ``p`` itself (not one inherited by a shallow copy of ``p``)."""
        return attached.attached_to(p)

    def attach(self) -> Generation:
        """Install the wrappers on ``p``; returns the generation already there, if any."""
        existing = Generation.of(self.p)
        if existing is not None:
            return existing
        own = vars(self.p)
        for name in _WRAPPED:
            if not callable(getattr(self.p, name, None)):
                continue  # img2img has no sample_hr_pass
            current = own.get(name)
            if current is not None and getattr(current, _MARK, None) is not None:
                current = None  # a stale wrapper copied from another p (X/Y/Z copies p shallowly)
                del own[name]
            self._saved[name] = (current is not None, current)
            original = getattr(self.p, name)
            setattr(self.p, name, self._wrap(name, original))
        attached.attach(self.p, self)
        return self

    def detach(self) -> None:
        """Put back exactly what was there before :meth:`attach` (safe to call twice)."""
        own = vars(self.p)
        for name, (had_instance_attribute, value) in self._saved.items():
            if getattr(own.get(name), _MARK, None) is self:
                if had_instance_attribute:
                    own[name] = value
                else:
                    del own[name]
        self._saved.clear()
        attached.detach(self.p, self)

    def _wrap(self, name: str, original: Callable) -> Callable:
        handler = self._sample if name == "sample" else self._sample_hr_pass

        def wrapper(*args, **kwargs):
            return handler(original, *args, **kwargs)

        setattr(wrapper, _MARK, self)
        wrapper.__name__ = name
        return wrapper

    # ------------------------------------------------------------------ hooks

    def _sample(self, original: Callable, *args, **kwargs):
        try:
            with self.one_line_errors():
                self.options = self.settings.generation_options(**self.ui_values)
                self.converter = self.settings.converter(self.options)
                # Each batch starts on the first-pass checkpoint (the webui reloads it per iteration).
                model = self.p.sd_model
                self.family = self.webui.family(model)
                self.first_pass_title = model_title(model)
                self.first_checkpoint = checkpoint_filename(model)
                check_before_sampling(self)
            self.drop_stale_model_wrap()
            try:
                return original(*args, **kwargs)
            finally:
                self.restore_init_latent()
        except BaseException:
            if self.owner == "automatic":
                self.detach()  # the webui skips postprocess (where the companion detaches) after an error
            raise

    def option(self, key: str, default: Any = None) -> Any:
        """A webui setting (``hires_fix_refiner_pass``, ``forge_additional_modules``, ...), read when asked."""
        return self.settings.option(key, default)

    def one_line_errors(self):
        """Around the extension's own decisions: a refusal or missing file is printed as one console line
        *before* the webui's error block, and raised again without its chain of causes, so the block ends on the
        same line (see :class:`OneLineErrors`)."""
        return OneLineErrors(self.log)

    def drop_stale_model_wrap(self) -> None:
        """img2img builds its sampler once (in ``init``) for every batch. After a refiner switch its CFG
        denoiser wraps the refiner model object, which the next batch's reload of the base unloads when the
        configs differ (a new object is built): the base pass would run on it. Dropping the wrap makes the
        webui build it again around the loaded model, as it does at the switch itself."""
        wrap_cfg = getattr(getattr(self.p, "sampler", None), "model_wrap_cfg", None)
        wrap = getattr(wrap_cfg, "model_wrap", None)
        if wrap is not None and getattr(wrap, "inner_model", None) is not self.p.sd_model:
            wrap_cfg.model_wrap = None  # a reference to another model object, not a same-config reload

    def replace_init_latent(self, converted, original) -> None:
        """img2img blends ``p.init_latent`` into the result outside an inpainting mask *after* sampling, so
        from the refiner switch on it must be in the refiner's space; :meth:`restore_init_latent` puts the
        base-space tensor back when ``sample()`` returns (the next batch starts on the base model again)."""
        own = vars(self.p)
        if own.get("init_latent") is not original:
            return  # not this pass's init latents (a txt2img hires pass samples from its own tensor)
        if self._base_init_latent is None:
            self._base_init_latent = original
        own["init_latent"] = converted

    def restore_init_latent(self) -> None:
        if self._base_init_latent is not None:
            vars(self.p)["init_latent"] = self._base_init_latent
            self._base_init_latent = None

    def _sample_hr_pass(self, original: Callable, samples, decoded_samples, *args, **kwargs):
        if self.options is None:  # sample() was not called through our wrapper: nothing is known
            return original(samples, decoded_samples, *args, **kwargs)
        model = self.p.sd_model
        other_checkpoint = checkpoint_filename(model) != self.first_checkpoint
        if other_checkpoint:
            self.webui.forget_cached_conds(self.p)  # conds cached for another model must not reach this one
        try:
            with self.one_line_errors():
                samples = hires.hires_latents(self, samples, self.webui.family(model))
            return original(samples, decoded_samples, *args, **kwargs)
        finally:
            if other_checkpoint:
                self.webui.forget_cached_conds(self.p)  # ... nor the first-pass model of the next generation

    def say_unconverted(self, source: Family, target: Family, where: str) -> None:
        """The interposer is off but the latents cross families: never silently (once per generation)."""
        self.say_once(
            "off",
            f"the {where} goes from {source.description} to {target.description} with latents, and the interposer "
            f"is off, so the {target.description} model gets {source.description} latents (the image will be "
            "garbage). Select Latent Interposer in Script, or turn on Settings > Latent Interposer > Apply "
            "automatically.",
        )

    def convert(self, latents, dirn: Direction, stage: str, source: Family | None = None,
                target: Family | None = None):  # fmt: skip
        """Convert with the shared converter (from and to the webui's tensor layouts), log one line and record
        the infotext."""
        x = source.to_space(latents) if source is not None else latents
        converted, report = self.converter.run(x, dirn)
        self.record(report, stage)
        return target.from_space(converted) if target is not None else converted

    def record(self, report: ConversionReport, stage: str) -> None:
        """One console line and the infotext entry for a model run (a conversion or an upscale)."""
        self.reports.append(report)
        if report.kind == "upscaler":
            self.log(f"{stage} upscale: {report}")
            self.p.extra_generation_params[UPSCALER_INFOTEXT_KEY] = format_upscaler_infotext(
                report.direction, report.version, report.precision
            )
            return
        self.log(f"{stage}: {report}")
        key = INFOTEXT_KEY if stage == "hires" else REFINER_INFOTEXT_KEY
        explicit = stage == "hires" and self.options.direction != AUTO
        strategy = None if stage == "hires" else self.options.refiner_strategy
        self.p.extra_generation_params[key] = format_infotext(
            report.direction, report.version, report.precision, explicit, strategy,
            explicit_precision=self.options.precision_explicit,
        )  # fmt: skip

    def warn_about_vae_override(self, dirn: Direction) -> None:
        if not self.options.warn_vae_override:
            return
        override = self.vae_override()
        if override:
            what, fix = override
            self.say_once(
                "vae",
                f"WARNING: {what}, so the {dirn.dst.label} hires model decodes with a VAE chosen for another family "
                f"and images come out blue, black or washed out. {fix}",
            )

    def say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.log(message)


class OneLineErrors:
    """A context manager: an :class:`InterposerError` inside is printed as one console line, then raised again
    as a fresh exception of the same type with the same message and no chained causes.

    The webui prints a long block (traceback, and in the UI an argument dump) for any exception a generation
    raises; the extension's own line is then the first thing before it and the block's last line is the same
    message, without "During handling of the above exception" chains from the hub client or the file system."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def __enter__(self) -> OneLineErrors:
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None or not isinstance(error, InterposerError) or getattr(error, "_said", False):
            return False
        message = str(error)
        if isinstance(error, MissingDependencyError):  # the webui's way to install it, not a pip command
            message = (f"The Python package {error.pip_name!r} is not installed: restart the webui so that the "
                       "extension's install.py adds it.")  # fmt: skip
        self.log(message.removeprefix("Latent Interposer: "))
        try:
            short = type(error)(message)
            short.__dict__.update(error.__dict__)  # e.g. WeightsNotFoundError.missing
        except Exception:  # an error type with another constructor: keep it, but drop its chain
            short = error
        short._said = True
        short.__cause__ = None
        short.__suppress_context__ = True
        raise short from None


def clear_infotext(p: Any) -> None:
    """Forget keys a previous X/Y/Z cell wrote (cells share one extra_generation_params dict)."""
    params = getattr(p, "extra_generation_params", None)
    if isinstance(params, dict):
        for key in (INFOTEXT_KEY, REFINER_INFOTEXT_KEY, UPSCALER_INFOTEXT_KEY):
            params.pop(key, None)
