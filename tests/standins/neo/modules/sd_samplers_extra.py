"""Mirrors modules/sd_samplers_extra.py (Neo @ 3df257a). The restart sampler is AUTOMATIC1111 1.10.1's (the A1111
stand-in's file runs here, see tests/standin_reuse.py); **UniPC** is Neo's: a *k-diffusion* sampler
(``sample_unipc``, extra.py 80-129, with ``modules/uni_pc/uni_pc.py``), not A1111's timesteps one.

``sample_unipc`` divides the k-diffusion state by ``sqrt(1 + sigma_0^2)`` (variance preserving) and runs UniPC
(bh1, data prediction, multistep, order ``min(3, len(sigmas) - 2)``, lower order at the end) on the sigmas as its
time axis (``SigmaConvert``: alpha = 1 / sqrt(sigma^2 + 1)). The model is reached through ``predict_eps_sigma``,
which hands ``forward`` a **new** tensor ``input * sqrt(sigma^2 + 1)`` and turns the estimate into eps; one call
per step (none for the final one), always at the *predicted* state. The state that carries on (corrected from the
predictor's base ``x_t_``), the list of past x0 predictions (computed from the eps, numerically the returned
estimates but separate tensors) and their times live inside the solver: the model never sees them. Written here
compactly from uni_pc.py's update rules (only the paths Neo's call reaches)."""

from standin_reuse import reuse

reuse(globals(), "modules/sd_samplers_extra.py")

import torch


class SigmaConvert:
    """The noise schedule UniPC sees: time is the k-diffusion sigma."""

    schedule = ""

    def marginal_log_mean_coeff(self, sigma):
        return 0.5 * torch.log(1 / (sigma * sigma + 1))

    def marginal_alpha(self, t):
        return torch.exp(self.marginal_log_mean_coeff(t))

    def marginal_std(self, t):
        return torch.sqrt(1.0 - torch.exp(2.0 * self.marginal_log_mean_coeff(t)))

    def marginal_lambda(self, t):
        log_mean_coeff = self.marginal_log_mean_coeff(t)
        return log_mean_coeff - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_mean_coeff))


def predict_eps_sigma(model, input, sigma_in, **kwargs):
    sigma = sigma_in.view(sigma_in.shape[:1] + (1,) * (input.ndim - 1))
    input = input * ((sigma**2 + 1.0) ** 0.5)
    return (input - model(input, sigma_in, **kwargs)) / sigma


class _UniPC:
    """uni_pc.py ``UniPC`` with ``predict_x0=True``, ``variant="bh1"``, no thresholding, ``method="multistep"``."""

    def __init__(self, eps_fn, schedule):
        self.eps_fn = eps_fn
        self.ns = schedule

    def data_prediction(self, x, t):
        eps = self.eps_fn(x, t)
        return (x - self.ns.marginal_std(t).view(-1, 1, 1, 1) * eps) / self.ns.marginal_alpha(t).view(-1, 1, 1, 1)

    def update(self, x, model_prev_list, t_prev_list, t, order, use_corrector=True):
        """One bh1 step from t_prev_list[-1] to t: the predictor from the past x0 differences, then (with the
        corrector) the model at the predicted state and the corrected state from the same base ``x_t_``."""
        ns = self.ns
        t_prev_0, model_prev_0 = t_prev_list[-1], model_prev_list[-1]
        lambda_prev_0, lambda_t = ns.marginal_lambda(t_prev_0), ns.marginal_lambda(t)
        sigma_prev_0, sigma_t = ns.marginal_std(t_prev_0), ns.marginal_std(t)
        alpha_t = ns.marginal_alpha(t)
        h = lambda_t - lambda_prev_0

        rks, d1s = [], []
        for i in range(1, order):
            rk = ((ns.marginal_lambda(t_prev_list[-(i + 1)]) - lambda_prev_0) / h)[0]
            rks.append(rk)
            d1s.append((model_prev_list[-(i + 1)] - model_prev_0) / rk)
        rks = torch.tensor([*rks, 1.0], device=x.device)

        hh = -h[0]
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        b_h = hh
        rows, b = [], []
        factorial = 1
        for i in range(1, order + 1):
            rows.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        big_r, b = torch.stack(rows), torch.tensor(b, device=x.device)

        d1s = torch.stack(d1s, dim=1) if d1s else None
        scale = (alpha_t * b_h).view(-1, 1, 1, 1)
        x_t_ = (sigma_t / sigma_prev_0).view(-1, 1, 1, 1) * x - (alpha_t * h_phi_1).view(-1, 1, 1, 1) * model_prev_0
        if d1s is not None:
            rhos_p = torch.tensor([0.5], device=x.device) if order == 2 else torch.linalg.solve(big_r[:-1, :-1], b[:-1])
            x_t = x_t_ - scale * torch.tensordot(d1s, rhos_p, dims=([1], [0]))
        else:
            x_t = x_t_
        model_t = None
        if use_corrector:
            rhos_c = torch.tensor([0.5], device=x.device) if order == 1 else torch.linalg.solve(big_r, b)
            model_t = self.data_prediction(x_t, t)  # the model at the PREDICTED state
            corr_res = torch.tensordot(d1s, rhos_c[:-1], dims=([1], [0])) if d1s is not None else 0
            x_t = x_t_ - scale * (corr_res + rhos_c[-1] * (model_t - model_prev_0))
        return x_t, model_t

    def sample(self, x, timesteps, order, callback=None):
        steps = len(timesteps) - 1
        assert steps >= order
        for step_index in range(steps):
            if step_index == 0:
                vec_t = timesteps[0].expand(x.shape[0])
                model_prev_list, t_prev_list = [self.data_prediction(x, vec_t)], [vec_t]
            elif step_index < order:
                vec_t = timesteps[step_index].expand(x.shape[0])
                x, model_x = self.update(x, model_prev_list, t_prev_list, vec_t, step_index)
                model_prev_list.append(model_x)
                t_prev_list.append(vec_t)
            else:
                last = steps if step_index == steps - 1 else step_index  # the last index also steps to t_N
                for step in range(step_index, last + 1):
                    vec_t = timesteps[step].expand(x.shape[0])
                    step_order = min(order, steps + 1 - step)  # lower_order_final
                    x, model_x = self.update(x, model_prev_list, t_prev_list, vec_t, step_order,
                                             use_corrector=step != steps)  # fmt: skip
                    model_prev_list[:-1], t_prev_list[:-1] = model_prev_list[1:], t_prev_list[1:]
                    t_prev_list[-1] = vec_t
                    if step < steps:
                        model_prev_list[-1] = model_x
            if callback is not None:
                callback({"x": x, "i": step_index, "denoised": model_prev_list[-1]})
        return x


def sample_unipc(model, x, sigmas, extra_args=None, callback=None, disable=False, variant="bh1"):
    if variant != "bh1":
        raise NotImplementedError("the stand-in's UniPC is bh1, the variant Neo uses")
    timesteps = sigmas.clone()
    if sigmas[-1] < 0.001:
        timesteps[-1] = 0.001
    ns = SigmaConvert()
    x = x / torch.sqrt(1.0 + timesteps[0] ** 2.0)
    extra_args = {} if extra_args is None else extra_args
    solver = _UniPC(lambda state, sigma: predict_eps_sigma(model, state, sigma, **extra_args), ns)
    x = solver.sample(x, timesteps, order=min(3, len(timesteps) - 2), callback=callback)
    x /= ns.marginal_alpha(timesteps[-1])
    return x
