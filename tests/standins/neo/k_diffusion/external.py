"""Neo's vendored k-diffusion (modules_forge/packages/k_diffusion/external.py). The A1111 stand-in's
k_diffusion/external.py runs here (the discrete schedule and the discrete-eps denoiser), then Neo's
``ForgeScheduleLinker(predictor)``: what ``CFGDenoiserKDiffusion.inner_model`` is in Neo, with ``.predictor`` (the
samplers read ``model.inner_model.predictor``), the predictor's sigmas and, set by the webui afterwards,
``.inner_model = shared.sd_model``.

Simplified: Neo's linker only carries the schedule and its model runs as ``forge_objects.unet.model`` (a KModel:
k-diffusion ``x`` and ``sigma`` in, denoised out). Here the linker is also that denoiser: k-diffusion's discrete-eps
wrapper over the engine's eps "UNet" on the predictor's schedule (``sampling_function`` in
``modules/sd_samplers_cfg_denoiser.py`` calls it, for the DDIM/PLMS denoiser too)."""

from standin_reuse import reuse

reuse(globals(), "k_diffusion/external.py")


class ForgeScheduleLinker(DiscreteEpsDDPMDenoiser):  # defined by the reused file
    def __init__(self, predictor):
        super().__init__(None, predictor.alphas_cumprod, quantize=False)
        self.predictor = predictor

    def sigma_to_t(self, sigma, quantize=None):
        """A NaN sigma (DPM++ 2s a RF's, on an SD schedule) is timestep 0, as Neo's ``predictor.timestep`` (an
        argmin over NaN distances) makes it; the output is NaN either way."""
        return super().sigma_to_t(sigma, quantize).nan_to_num(nan=0.0)

    def get_eps(self, *args, **kwargs):
        return self.inner_model.apply_model(*args, **kwargs)
