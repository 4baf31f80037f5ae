"""Mirrors modules/sd_samplers_timesteps_impl.py (1.10.1): A1111's own DDIM, DDIM CFG++ and PLMS loops
(the model returns eps, the "sigma" passed is the timestep) and UniPC, here a compact order-2
predictor-corrector with the structure of the webui's uni_pc: the model is evaluated at the *predicted*
state, the corrected state and the past x0 predictions live inside the solver (the model never sees them).

DDIM CFG++ reads the CFG denoiser's ``last_noise_uncond`` (set by the same model call) and scales CFG by
1/12.5; PLMS keeps up to three past eps (the very tensors the model returned) in ``old_eps`` and makes a
second model call at ``x_prev`` in its first step while keeping the step's main ``x``."""

from __future__ import annotations

import math

import k_diffusion.sampling
import torch


@torch.no_grad()
def ddim(model, x, timesteps, extra_args=None, callback=None, disable=None, eta=0.0):
    alphas_cumprod = model.inner_model.inner_model.alphas_cumprod
    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    sigmas = eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones(x.shape[0])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * s_in, **extra_args)
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sigma_t = sigmas[index].item() * s_x
        sqrt_one_minus_at = sqrt_one_minus_alphas[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * e_t
        noise = sigma_t * k_diffusion.sampling.torch.randn_like(x)
        x = a_prev.sqrt() * pred_x0 + dir_xt + noise
        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": pred_x0})
    return x


@torch.no_grad()
def ddim_cfgpp(model, x, timesteps, extra_args=None, callback=None, disable=None, eta=0.0):
    """DDIM whose direction to x_t uses the *unconditional* noise prediction (CFG++)."""
    alphas_cumprod = model.inner_model.inner_model.alphas_cumprod
    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    sigmas = eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    model.cond_scale_miltiplier = 1 / 12.5
    model.need_last_noise_uncond = True
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones(x.shape[0])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * s_in, **extra_args)
        last_noise_uncond = model.last_noise_uncond
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sigma_t = sigmas[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_alphas[index].item() * s_x * e_t) / a_t.sqrt()
        dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * last_noise_uncond
        noise = sigma_t * k_diffusion.sampling.torch.randn_like(x)
        x = a_prev.sqrt() * pred_x0 + dir_xt + noise
        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": pred_x0})
    return x


@torch.no_grad()
def plms(model, x, timesteps, extra_args=None, callback=None, disable=None):
    """Pseudo linear multistep on eps: Adams-Bashforth over up to three past eps; the first step is a
    pseudo improved-Euler step with a second model call at x_prev."""
    alphas_cumprod = model.inner_model.inner_model.alphas_cumprod
    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    old_eps = []

    def get_x_prev_and_pred_x0(e_t, index):
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_alphas[index].item() * s_x * e_t) / a_t.sqrt()  # the step's main x
        return a_prev.sqrt() * pred_x0 + (1.0 - a_prev).sqrt() * e_t, pred_x0

    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        ts = timesteps[index].item() * s_in
        t_next = timesteps[max(index - 1, 0)].item() * s_in
        e_t = model(x, ts, **extra_args)
        if len(old_eps) == 0:
            x_prev, pred_x0 = get_x_prev_and_pred_x0(e_t, index)
            e_t_next = model(x_prev, t_next, **extra_args)
            e_t_prime = (e_t + e_t_next) / 2
        elif len(old_eps) == 1:
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x_prev, pred_x0 = get_x_prev_and_pred_x0(e_t_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        x = x_prev
        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": pred_x0})
    return x


@torch.no_grad()
def unipc(model, x, timesteps, extra_args=None, callback=None, disable=None, is_img2img=False):
    alphas_cumprod = model.inner_model.inner_model.alphas_cumprod.double()
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones(x.shape[0])
    ts = list(reversed(timesteps.tolist()))  # high noise -> low noise

    def coefficients(t):
        a = alphas_cumprod[int(t)]
        return float(a.sqrt()), float((1 - a).sqrt())

    def data_prediction(state, t):
        alpha, sigma = coefficients(t)
        eps = model(state, t * s_in, **extra_args)
        return (state - sigma * eps) / alpha

    history = [(ts[0], data_prediction(x, ts[0]))]
    for i in range(1, len(ts)):
        t_prev, t = ts[i - 1], ts[i]
        alpha_s, sigma_s = coefficients(t_prev)
        alpha_t, sigma_t = coefficients(t)
        h = math.log(alpha_t / sigma_t) - math.log(alpha_s / sigma_s)
        m_s = history[-1][1]
        x_t_ = (sigma_t / sigma_s) * x - alpha_t * math.expm1(-h) * m_s
        b_h = math.expm1(h)
        if len(history) >= 2:
            t_prev2, m_s2 = history[-2]
            alpha_s2, sigma_s2 = coefficients(t_prev2)
            r = (math.log(alpha_s2 / sigma_s2) - math.log(alpha_s / sigma_s)) / h
            d1 = (m_s2 - m_s) / r
            x_pred = x_t_ - alpha_t * b_h * 0.5 * d1 * math.exp(-h)
        else:
            x_pred = x_t_
        m_t = data_prediction(x_pred, t)
        x = x_t_ - alpha_t * b_h * 0.5 * (m_t - m_s) * math.exp(-h)  # corrector from the solver's own x_t_
        history.append((t, m_t))
        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": m_t})
    return x
