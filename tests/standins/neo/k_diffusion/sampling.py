"""Neo's vendored k-diffusion sampling (modules_forge/packages/k_diffusion/sampling.py, ComfyUI v0.3.75's), written
from its update rules in the stand-in's style, not copied.

The A1111 stand-in's k_diffusion/sampling.py runs first: schedules, ``to_d``, ``get_ancestral_step``, the
Brownian-tree noise sampler, and the samplers whose rules Neo has unchanged for eps models (``sample_dpmpp_2m``;
the restart sampler's Heun steps come from ``modules/sd_samplers_extra.py``). Then Neo's own, for what a model
switch in the middle of sampling can notice (which tensors go to the model, how many calls per step, what is kept
across calls and steps, in-place reuse, the ``torch.randn_like`` draws, which the webui replaces by ``p.rng.next()``
through the module attribute ``torch``):

* **overridden** where Neo's vendored version differs from A1111's k-diffusion:
  ``sample_euler``/``sample_heun``/``sample_dpm_2`` draw churn noise only when ``s_churn > 0`` (A1111's draw one
  every step); ``sample_euler_ancestral``, ``sample_lms``, ``sample_dpmpp_sde`` end with ``x = denoised`` (the last
  call's returned tensor *is* the result), and the ancestral/SDE samplers read ``model.inner_model.predictor`` at
  their start (keeping the base model's predictor across a switch) and work in half-logSNR (``alpha = 1`` for eps
  models, so the numbers are A1111's), adding noise only when ``eta > 0 and s_noise > 0``;
* **new** (A1111 has none): ``sample_dpmpp_2s_ancestral_RF``, ``sample_er_sde``, ``sample_lcm`` (``noise_scaling``
  makes a new tensor: the returned one is never reused), ``res_multistep``/``sample_res_multistep``,
  ``sample_Kohaku_LoNyu_Yog``, and the CFG++ samplers ``sample_dpmpp_2m_cfg_pp``, ``sample_euler_ancestral_cfg_pp``,
  ``sample_euler_cfg_pp``, which read the unconditional prediction through
  ``extra_args["model_options"]["sampler_post_cfg_function"]`` (``disable_cfg1_optimization``).

Only eps-prediction models are run here; the flow-model (``prediction_type == "const"``) branches are written but
reached by no stand-in engine."""

from functools import partial

from standin_reuse import reuse

reuse(globals(), "k_diffusion/sampling.py")


def set_model_options_post_cfg_function(model_options, post_cfg_function, disable_cfg1_optimization=False):
    """backend/patcher/base.py (imported into Neo's sampling.py): append a post-CFG function (a new list)."""
    functions = model_options.get("sampler_post_cfg_function", [])
    model_options["sampler_post_cfg_function"] = [*functions, post_cfg_function]
    if disable_cfg1_optimization:
        model_options["disable_cfg1_optimization"] = True
    return model_options


def _is_const(model_sampling) -> bool:
    return model_sampling.prediction_type == "const"


def sigma_to_half_log_snr(sigma, model_sampling):
    """log(alpha / sigma): ``-log sigma`` for eps/v models, ``-logit sigma`` for flow models."""
    return sigma.logit().neg() if _is_const(model_sampling) else sigma.log().neg()


def half_log_snr_to_sigma(half_log_snr, model_sampling):
    return half_log_snr.neg().sigmoid() if _is_const(model_sampling) else half_log_snr.neg().exp()


def offset_first_sigma_for_snr(sigmas, model_sampling, percent_offset=1e-4):
    """Flow models only: a first sigma of 1 has no logSNR, so it is moved just below."""
    if len(sigmas) > 1 and _is_const(model_sampling) and sigmas[0] >= 1:
        sigmas = sigmas.clone()
        sigmas[0] = model_sampling.percent_to_sigma(percent_offset)
    return sigmas


def _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise):
    """Karras churn before a step: noise is drawn (and x moved up to sigma_hat) only when s_churn > 0."""
    if s_churn <= 0:
        return x, sigmas[i]
    gamma = min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + torch.randn_like(x) * s_noise * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def _report(callback, x, i, sigma, sigma_hat, denoised):
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


# Overrides A1111's: Neo draws the churn noise only when s_churn > 0 (A1111's k-diffusion draws one every step,
# which moves every later p.rng.next()).
@_torch.no_grad()
def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, s_churn=0.0, s_tmin=0.0,
                 s_tmax=float("inf"), s_noise=1.0):  # fmt: skip
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = x + to_d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
    return x


# Overrides A1111's: churn noise drawn only when s_churn > 0, as in Neo.
@_torch.no_grad()
def sample_heun(model, x, sigmas, extra_args=None, callback=None, disable=None, s_churn=0.0, s_tmin=0.0,
                s_tmax=float("inf"), s_noise=1.0):  # fmt: skip
    """Heun: the model at x, then at the Euler guess x_2; the averaged slope moves the step's main x."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in, **extra_args))
        x = x + (d + d_2) / 2 * dt
    return x


# Overrides A1111's: churn noise drawn only when s_churn > 0, as in Neo.
@_torch.no_grad()
def sample_dpm_2(model, x, sigmas, extra_args=None, callback=None, disable=None, s_churn=0.0, s_tmin=0.0,
                 s_tmax=float("inf"), s_noise=1.0):  # fmt: skip
    """DPM2: the slope at the log-midpoint sigma moves the step's main x."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
            continue
        sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
        x_2 = x + d * (sigma_mid - sigma_hat)
        d_2 = to_d(x_2, sigma_mid, model(x_2, sigma_mid * s_in, **extra_args))
        x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


# Overrides A1111's: Neo reads model.inner_model.predictor (flow models go to the RF variant) and its last step
# is x = denoised, the returned tensor itself (A1111's makes a new one).
@_torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                           noise_sampler=None):  # fmt: skip
    """Euler down to sigma_down plus fresh noise; the last step's result is the returned tensor itself."""
    if _is_const(model.inner_model.predictor):
        return sample_euler_ancestral_RF(model, x, sigmas, extra_args, callback, disable, eta, s_noise, noise_sampler)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = denoised
        else:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@_torch.no_grad()
def sample_euler_ancestral_RF(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                              noise_sampler=None):  # fmt: skip
    """Euler a for flow models (Euler a dispatches here when the predictor is ``const``)."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        sigma_down, alpha_next, alpha_down, renoise = _rf_downstep(sigmas[i], sigmas[i + 1], eta)
        ratio = sigma_down / sigmas[i]
        x = ratio * x + (1 - ratio) * denoised
        if eta > 0:
            x = (alpha_next / alpha_down) * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise
    return x


def _rf_downstep(sigma, sigma_next, eta):
    """The rectified-flow ancestral split: sigma_down, the two alphas (1 - sigma) and the renoise factor. For
    sigmas > 1 (SD-like schedules) the alphas are negative and the square root can be NaN, as in Neo."""
    sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    alpha_next, alpha_down = 1 - sigma_next, 1 - sigma_down
    renoise = (sigma_next**2 - sigma_down**2 * alpha_next**2 / alpha_down**2) ** 0.5
    return sigma_down, alpha_next, alpha_down, renoise


@_torch.no_grad()
def sample_dpmpp_2s_ancestral_RF(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0,
                                 s_noise=1.0, noise_sampler=None):  # fmt: skip
    """DPM-Solver++(2S) ancestral in flow sigmas: a second call at the midpoint state u (between x and the first
    estimate), whose estimate moves the main x down to sigma_down; then renoise. Its lambda is
    ``log((1 - sigma) / sigma)``: NaN for every sigma > 1, so on an SD-like schedule (sigma_max ~14.6) the second
    call gets a NaN sigma and NaN latents and the result is NaN, as in Neo."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    flow_lambda = lambda sigma: ((1 - sigma) / sigma).log()
    flow_sigma = lambda lam: 1 / (lam.exp() + 1)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, alpha_next, alpha_down, renoise = _rf_downstep(sigmas[i], sigmas[i + 1], eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            if sigmas[i] == 1.0:
                sigma_s = 0.9999
            else:
                lam, lam_down = flow_lambda(sigmas[i]), flow_lambda(sigma_down)
                sigma_s = flow_sigma(lam + (lam_down - lam) / 2)
            ratio_s = sigma_s / sigmas[i]
            u = ratio_s * x + (1 - ratio_s) * denoised
            denoised_u = model(u, sigma_s * s_in, **extra_args)
            ratio_down = sigma_down / sigmas[i]
            x = ratio_down * x + (1 - ratio_down) * denoised_u
        if sigmas[i + 1] > 0 and eta > 0:
            x = (alpha_next / alpha_down) * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise
    return x


def _default_brownian(x, sigmas, extra_args, noise_sampler):
    """The SDE samplers' own Brownian tree when the webui passes none (``opts.no_dpmpp_sde_batch_determinism``),
    seeded with ``extra_args["seed"]``, which the webui never sets."""
    if noise_sampler is not None:
        return noise_sampler
    return BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=extra_args.get("seed", None))


# Overrides A1111's: the predictor read at the start (kept across a switch), noise only when eta > 0 and
# s_noise > 0, and x = denoised at the last step (the returned tensor itself).
@_torch.no_grad()
def sample_dpmpp_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                     noise_sampler=None, r=1 / 2):  # fmt: skip
    """DPM-Solver++ (stochastic): a second call at the noised midpoint x_2 while the step's main x (and the first
    estimate) wait; the last step's result is the returned tensor itself."""
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _default_brownian(x, sigmas, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    predictor = model.inner_model.predictor
    lambda_of, sigma_of = (partial(sigma_to_half_log_snr, model_sampling=predictor),
                           partial(half_log_snr_to_sigma, model_sampling=predictor))  # fmt: skip
    sigmas = offset_first_sigma_for_snr(sigmas, predictor)
    noisy = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = lambda_of(sigmas[i]), lambda_of(sigmas[i + 1])
        lam_mid = lam_s + r * (lam_t - lam_s)
        sigma_mid = sigma_of(lam_mid)
        alpha_s, alpha_mid, alpha_t = sigmas[i] * lam_s.exp(), sigma_mid * lam_mid.exp(), sigmas[i + 1] * lam_t.exp()

        down, up = get_ancestral_step(lam_s.neg().exp(), lam_mid.neg().exp(), eta)
        h_ = down.log().neg() - lam_s
        x_2 = (alpha_mid / alpha_s) * (-h_).exp() * x - alpha_mid * (-h_).expm1() * denoised
        if noisy:
            x_2 = x_2 + alpha_mid * noise_sampler(sigmas[i], sigma_mid) * s_noise * up
        denoised_2 = model(x_2, sigma_mid * s_in, **extra_args)

        down, up = get_ancestral_step(lam_s.neg().exp(), lam_t.neg().exp(), eta)
        h_ = down.log().neg() - lam_s
        mixed = (1 - 1 / (2 * r)) * denoised + 1 / (2 * r) * denoised_2
        x = (alpha_t / alpha_s) * (-h_).exp() * x - alpha_t * (-h_).expm1() * mixed
        if noisy:
            x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * up
    return x


# Overrides A1111's (same numbers for eps models): the predictor read at the start, kept across a switch.
@_torch.no_grad()
def sample_dpmpp_2m_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                        noise_sampler=None, solver_type="midpoint"):  # fmt: skip
    """DPM-Solver++(2M) SDE: ``old_denoised`` (the previous call's returned tensor) and ``h_last`` kept."""
    if len(sigmas) <= 1:
        return x
    if solver_type not in {"heun", "midpoint"}:
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _default_brownian(x, sigmas, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    predictor = model.inner_model.predictor
    lambda_of = partial(sigma_to_half_log_snr, model_sampling=predictor)
    sigmas = offset_first_sigma_for_snr(sigmas, predictor)
    old_denoised, h, h_last = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = lambda_of(sigmas[i]), lambda_of(sigmas[i + 1])
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            alpha_t = sigmas[i + 1] * lam_t.exp()
            gain = alpha_t * (-h_eta).expm1().neg()
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + gain * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + alpha_t * ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * gain * (1 / r) * (denoised - old_denoised)
            if eta > 0 and s_noise > 0:
                noise = noise_sampler(sigmas[i], sigmas[i + 1])
                x = x + noise * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h
    return x


# Overrides A1111's (same numbers for eps models): the predictor read at the start, kept across a switch.
@_torch.no_grad()
def sample_dpmpp_3m_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                        noise_sampler=None):  # fmt: skip
    """DPM-Solver++(3M) SDE: the returns of the two previous calls (``denoised_1``, ``denoised_2``) kept."""
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _default_brownian(x, sigmas, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    predictor = model.inner_model.predictor
    lambda_of = partial(sigma_to_half_log_snr, model_sampling=predictor)
    sigmas = offset_first_sigma_for_snr(sigmas, predictor)
    denoised_1, denoised_2 = None, None
    h, h_1, h_2 = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = lambda_of(sigmas[i]), lambda_of(sigmas[i + 1])
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            alpha_t = sigmas[i + 1] * lam_t.exp()
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (denoised - denoised_1) / r0, (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + (alpha_t * phi_2) * d1 - (alpha_t * (phi_2 / h_eta - 0.5)) * d2
            elif h_1 is not None:
                x = x + (alpha_t * phi_2) * (denoised - denoised_1) / (h_1 / h)
            if eta > 0 and s_noise > 0:
                noise = noise_sampler(sigmas[i], sigmas[i + 1])
                x = x + noise * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


# Overrides A1111's: the last step is x = denoised, the returned tensor itself (A1111's adds the slopes).
@_torch.no_grad()
def sample_lms(model, x, sigmas, extra_args=None, callback=None, disable=None, order=4):
    """Linear multistep: the slopes of up to ``order`` past steps (``ds``, computed here) combined; the last step's
    result is the returned tensor itself."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        cur_order = min(i + 1, order)
        coeffs = [linear_multistep_coeff(cur_order, sigmas_cpu, i, j) for j in range(cur_order)]
        x = x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))
    return x


@_torch.no_grad()
def sample_lcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """LCM: back to the estimate, then noised to the next sigma by the predictor's ``noise_scaling`` (looked up on
    every step), which builds a **new** tensor: the returned estimate is never modified nor passed back in."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            noise = noise_sampler(sigmas[i], sigmas[i + 1])
            x = model.inner_model.predictor.noise_scaling(sigmas[i + 1], noise, x)
    return x


def _post_cfg_capture(extra_args):
    """What the CFG++ samplers do first: put a post-CFG function into (a copy of) ``extra_args["model_options"]``,
    in the webui's own ``extra_args`` dict, that stores the call's unconditional prediction; the model then always
    computes it (``disable_cfg1_optimization``). Returns a function giving the last one stored."""
    seen = {"uncond": None}

    def post_cfg_function(args):
        seen["uncond"] = args["uncond_denoised"]
        return args["denoised"]

    model_options = extra_args.get("model_options", {}).copy()
    extra_args["model_options"] = set_model_options_post_cfg_function(model_options, post_cfg_function,
                                                                      disable_cfg1_optimization=True)  # fmt: skip
    return lambda: seen["uncond"]


@_torch.no_grad()
def sample_euler_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0,
                                  s_noise=1.0, noise_sampler=None):  # fmt: skip
    """Euler a (CFG++): from the guided estimate along the *unconditional* slope of the same call, plus noise; the
    last step's result is the returned tensor itself."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    lambda_of = partial(sigma_to_half_log_snr, model_sampling=model.inner_model.predictor)
    uncond_of_last_call = _post_cfg_capture(extra_args)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        alpha_s = sigmas[i] * lambda_of(sigmas[i]).exp()
        alpha_t = sigmas[i + 1] * lambda_of(sigmas[i + 1]).exp()
        d = to_d(x, sigmas[i], alpha_s * uncond_of_last_call())
        sigma_down, sigma_up = get_ancestral_step(sigmas[i] / alpha_s, sigmas[i + 1] / alpha_t, eta=eta)
        x = alpha_t * denoised + alpha_t * sigma_down * d
        if eta > 0 and s_noise > 0:
            x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@_torch.no_grad()
def sample_euler_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler (CFG++): Euler a CFG++ without noise (eta 0, s_noise 0)."""
    return sample_euler_ancestral_cfg_pp(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                                         eta=0.0, s_noise=0.0, noise_sampler=None)  # fmt: skip


@_torch.no_grad()
def sample_dpmpp_2m_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M) (CFG++): keeps the previous call's unconditional prediction ``old_uncond_denoised`` (a model
    output that ``forward`` never returns: it arrives through the post-CFG function)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    t_of = lambda sigma: sigma.log().neg()
    uncond_of_last_call = _post_cfg_capture(extra_args)
    old_uncond_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        uncond_denoised = uncond_of_last_call()
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = t_of(sigmas[i]), t_of(sigmas[i + 1])
        h = t_next - t
        mix = -_torch.exp(-h) * uncond_denoised
        if old_uncond_denoised is not None and sigmas[i + 1] != 0:
            r = (t - t_of(sigmas[i - 1])) / h
            mix = mix - _torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond_denoised)
        x = denoised + mix + _torch.exp(-h) * x
        old_uncond_denoised = uncond_denoised
    return x


@_torch.no_grad()
def res_multistep(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0, noise_sampler=None,
                  eta=1.0, cfg_pp=False):  # fmt: skip
    """RES multistep (arXiv 2308.02157): Euler on the first and last steps, else a second-order exponential step
    from the current estimate and ``old_denoised`` (the previous call's returned tensor) with the scalar
    ``old_sigma_down``; noise ``* sigma_up`` after every step but the last (drawn even when sigma_up is 0)."""
    if cfg_pp:
        raise NotImplementedError("res_multistep's CFG++ branch: no sampler Neo registers reaches it")
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    t_of = lambda sigma: sigma.log().neg()
    phi1 = lambda t: _torch.expm1(t) / t
    phi2 = lambda t: (phi1(t) - 1.0) / t
    old_denoised, old_sigma_down = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0 or old_denoised is None:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = t_of(sigmas[i]), t_of(sigma_down)
            h = t_next - t
            c2 = (t_of(sigmas[i - 1]) - t_of(old_sigma_down)) / h
            b1 = _torch.nan_to_num(phi1(-h) - phi2(-h) / c2, nan=0.0)
            b2 = _torch.nan_to_num(phi2(-h) / c2, nan=0.0)
            x = (-h).exp() * x + h * (b1 * denoised + b2 * old_denoised)
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        old_denoised, old_sigma_down = denoised, sigma_down
    return x


@_torch.no_grad()
def sample_res_multistep(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0,
                         noise_sampler=None):  # fmt: skip
    return res_multistep(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                         s_noise=s_noise, noise_sampler=noise_sampler, eta=0.0, cfg_pp=False)  # fmt: skip


@_torch.no_grad()
def sample_Kohaku_LoNyu_Yog(model, x, sigmas, extra_args=None, callback=None, disable=None, s_churn=None,
                            s_tmin=None, s_tmax=float("inf"), s_noise=None, noise_sampler=None, eta=None):  # fmt: skip
    """In the first half of the steps (``i <= N / 2``) three calls share one sigma: at x, at the **negated** state
    ``-x`` (a new tensor) and at ``x3 = x + mean(slope at x, slope at -x) * dt``; the mean of the slopes at x and
    x3 moves the main x down to sigma_down, then ancestral noise. Later steps: one call, Euler down to sigma_down,
    no noise. A churn draw (``randn_like``) every step, used only when ``s_churn > 0``."""
    s_churn = 0.0 if s_churn is None else s_churn
    s_tmin = 0.0 if s_tmin is None else s_tmin
    s_noise = 1.0 if s_noise is None else s_noise
    eta = 1.0 if eta is None else eta
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    steps = len(sigmas) - 1
    for i in range(steps):
        gamma = min(s_churn / steps, 2**0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0
        churn_noise = torch.randn_like(x) * s_noise
        sigma_hat = sigmas[i] * (gamma + 1)
        if gamma > 0:
            x = x + churn_noise * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigma_down - sigmas[i]
        if i <= steps / 2:
            mirrored = -x
            d_mirrored = to_d(mirrored, sigma_hat, model(mirrored, sigma_hat * s_in, **extra_args))
            x3 = x + (d + d_mirrored) / 2 * dt
            d3 = to_d(x3, sigma_hat, model(x3, sigma_hat * s_in, **extra_args))
            x = x + (d + d3) / 2 * dt
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        else:
            x = x + d * dt
    return x


@_torch.no_grad()
def sample_er_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0, noise_sampler=None,
                  noise_scaler=None, max_stage=3):  # fmt: skip
    """Extended reverse-time SDE (arXiv 2309.06169), stages 1-3: a first-order move with the noise scaler's ratio,
    then the first and second differences of the estimates, integrated by a 200-point quadrature. Kept across
    steps: ``old_denoised`` (the previous call's returned tensor) and ``old_denoised_d`` (the previous first
    difference, computed here). For eps models the ER lambdas are the sigmas and every alpha is 1."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    if noise_scaler is None:
        noise_scaler = lambda lam: lam * ((lam**0.3).exp() + 10.0)
    points = 200.0
    point_index = _torch.arange(0, points, dtype=_torch.float32, device=x.device)
    predictor = model.inner_model.predictor
    sigmas = offset_first_sigma_for_snr(sigmas, predictor)
    lambdas = sigma_to_half_log_snr(sigmas, predictor).neg().exp()
    old_denoised, old_denoised_d = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = lambdas[i], lambdas[i + 1]
            alpha_s, alpha_t = sigmas[i] / lam_s, sigmas[i + 1] / lam_t
            r = noise_scaler(lam_t) / noise_scaler(lam_s)
            x = (alpha_t / alpha_s) * r * x + alpha_t * (1 - r) * denoised
            if stage >= 2:
                dt = lam_t - lam_s
                step = -dt / points
                positions = lam_t + point_index * step
                scaled = noise_scaler(positions)
                denoised_d = (denoised - old_denoised) / (lam_s - lambdas[i - 1])
                x = x + alpha_t * (dt + _torch.sum(1 / scaled) * step * noise_scaler(lam_t)) * denoised_d
                if stage >= 3:
                    s_u = _torch.sum((positions - lam_s) / scaled) * step
                    denoised_u = (denoised_d - old_denoised_d) / ((lam_s - lambdas[i - 2]) / 2)
                    x = x + alpha_t * (dt**2 / 2 + s_u * noise_scaler(lam_t)) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                spread = (lam_t**2 - lam_s**2 * r**2).sqrt().nan_to_num(nan=0.0)
                x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * spread
        old_denoised = denoised
    return x
