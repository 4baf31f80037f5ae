"""Mirrors modules/sd_schedulers.py (1.10.1): the "Schedule type" choices (name, label, aliases) and their
sigma functions. Like the webui it replaces ``k_diffusion.sampling.to_d`` with its own (same maths)."""

from __future__ import annotations

import dataclasses

import k_diffusion
import torch

from modules import shared


def to_d(x, sigma, denoised):
    """Converts a denoiser output to a Karras ODE derivative."""
    return (x - denoised) / sigma


k_diffusion.sampling.to_d = to_d


@dataclasses.dataclass
class Scheduler:
    name: str
    label: str
    function: object
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: list = None


def uniform(n, sigma_min, sigma_max, inner_model, device):
    return inner_model.get_sigmas(n).to(device)


def sgm_uniform(n, sigma_min, sigma_max, inner_model, device):
    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    sigs = [inner_model.t_to_sigma(ts) for ts in torch.linspace(start, end, n + 1)[:-1]]
    return torch.FloatTensor([*map(float, sigs), 0.0]).to(device)


def get_align_your_steps_sigmas(n, sigma_min, sigma_max, device):
    if shared.sd_model.is_sdxl:
        sigmas = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
    else:
        sigmas = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
    if n != len(sigmas):  # log-linear interpolation of the decreasing list to n points
        xs = torch.linspace(0, 1, len(sigmas), dtype=torch.float64)
        ys = torch.tensor(sigmas[::-1], dtype=torch.float64).log()
        new_xs = torch.linspace(0, 1, n, dtype=torch.float64)
        idx = torch.searchsorted(xs, new_xs).clamp(1, len(xs) - 1)
        w = (new_xs - xs[idx - 1]) / (xs[idx] - xs[idx - 1])
        sigmas = [*((ys[idx - 1] + w * (ys[idx] - ys[idx - 1])).exp().flip(0).tolist()), 0.0]
    else:
        sigmas = [*sigmas, 0.0]
    return torch.FloatTensor(sigmas).to(device)


def kl_optimal(n, sigma_min, sigma_max, device):
    alpha_min = torch.arctan(torch.tensor(sigma_min, device=device))
    alpha_max = torch.arctan(torch.tensor(sigma_max, device=device))
    step_indices = torch.arange(n + 1, device=device)
    return torch.tan(step_indices / n * alpha_min + (1.0 - step_indices / n) * alpha_max)


def simple_scheduler(n, sigma_min, sigma_max, inner_model, device):
    ss = len(inner_model.sigmas) / n
    sigs = [float(inner_model.sigmas[-(1 + int(x * ss))]) for x in range(n)]
    return torch.FloatTensor([*sigs, 0.0]).to(device)


def normal_scheduler(n, sigma_min, sigma_max, inner_model, device, sgm=False, floor=False):
    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    timesteps = torch.linspace(start, end, n + 1)[:-1] if sgm else torch.linspace(start, end, n)
    return torch.FloatTensor([*(float(inner_model.t_to_sigma(ts)) for ts in timesteps), 0.0]).to(device)


def ddim_scheduler(n, sigma_min, sigma_max, inner_model, device):
    ss = max(len(inner_model.sigmas) // n, 1)
    sigs = [float(inner_model.sigmas[x]) for x in range(1, len(inner_model.sigmas), ss)]
    return torch.FloatTensor([*sigs[::-1], 0.0]).to(device)


def _beta_ppf(q, alpha, beta):
    """Inverse CDF of Beta(alpha, beta) by bisection on a numerically integrated CDF (the webui uses scipy)."""
    grid = torch.linspace(0, 1, 20001, dtype=torch.float64)[1:-1]
    pdf = grid ** (alpha - 1) * (1 - grid) ** (beta - 1)
    cdf = torch.cumsum(pdf, 0)
    cdf = cdf / cdf[-1]
    return float(grid[torch.searchsorted(cdf, torch.tensor(float(q), dtype=torch.float64)).clamp(max=len(grid) - 1)])


def beta_scheduler(n, sigma_min, sigma_max, inner_model, device):
    alpha, beta = shared.opts.beta_dist_alpha, shared.opts.beta_dist_beta
    timesteps = [_beta_ppf(x, alpha, beta) for x in (1 - torch.linspace(0, 1, n, dtype=torch.float64)).tolist()]
    return torch.FloatTensor([*(sigma_min + x * (sigma_max - sigma_min) for x in timesteps), 0.0]).to(device)


schedulers = [
    Scheduler("automatic", "Automatic", None),
    Scheduler("uniform", "Uniform", uniform, need_inner_model=True),
    Scheduler("karras", "Karras", k_diffusion.sampling.get_sigmas_karras, default_rho=7.0),
    Scheduler("exponential", "Exponential", k_diffusion.sampling.get_sigmas_exponential),
    Scheduler("polyexponential", "Polyexponential", k_diffusion.sampling.get_sigmas_polyexponential, default_rho=1.0),
    Scheduler("sgm_uniform", "SGM Uniform", sgm_uniform, need_inner_model=True, aliases=["SGMUniform"]),
    Scheduler("kl_optimal", "KL Optimal", kl_optimal),
    Scheduler("align_your_steps", "Align Your Steps", get_align_your_steps_sigmas),
    Scheduler("simple", "Simple", simple_scheduler, need_inner_model=True),
    Scheduler("normal", "Normal", normal_scheduler, need_inner_model=True),
    Scheduler("ddim", "DDIM", ddim_scheduler, need_inner_model=True),
    Scheduler("beta", "Beta", beta_scheduler, need_inner_model=True),
]

schedulers_map = {**{x.name: x for x in schedulers}, **{x.label: x for x in schedulers}}
