"""Mirrors modules/sd_samplers_kdiffusion.py (Neo @ 3df257a): the KDiffusionSampler is A1111's on the paths used
here (the A1111 stand-in's file runs first: sigmas, "no scheduler option -> the model's own uniform-timestep
sigmas", ``discard_next_to_last_sigma``, txt2img ``x * sigmas[0]`` and img2img ``xi = x + noise * sigma``, both as
Neo's ``predictor.noise_scaling`` computes them, the Brownian-tree ``noise_sampler`` for ``brownian_noise``, keyword
arguments per signature), with Neo's own:

* **sampler list** (kdiff.py 14-31: names, functions, aliases and options as Neo lists them; "DPM++ 2s a RF" is
  "Flux Realistic" only with ``opts.forbidden_knowledge``, which this stand-in does not have). A sampler whose
  function this stand-in's k-diffusion lacks is left out of ``all_samplers``, so a test that compares the list
  with Neo's fails until it is there;
* ``sampler_extra_params`` (kdiff.py 36-44: ``eta``/``s_noise``/``r`` for the SDE and ancestral samplers, the
  churn parameters for Euler, Heun and DPM2), read from ``p`` as Neo's ``Sampler.initialize`` does;
* ``CFGDenoiserKDiffusion.inner_model`` (kdiff.py 50-57): ``ForgeScheduleLinker(predictor)`` with
  ``inner_model = shared.sd_model``."""

from standin_reuse import reuse

reuse(globals(), "modules/sd_samplers_kdiffusion.py")

from modules import sd_samplers_cfg_denoiser, sd_samplers_common, sd_samplers_extra, shared

samplers_k_diffusion = [
    ("DPM++ 2M", "sample_dpmpp_2m", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    ("DPM++ SDE", "sample_dpmpp_sde", ["k_dpmpp_sde"], {"scheduler": "karras", "second_order": True,
                                                         "brownian_noise": True}),
    ("DPM++ 2M SDE", "sample_dpmpp_2m_sde", ["k_dpmpp_2m_sde_ka"], {"brownian_noise": True}),
    ("DPM++ 3M SDE", "sample_dpmpp_3m_sde", ["k_dpmpp_3m_sde"], {"scheduler": "exponential",
                                                                  "discard_next_to_last_sigma": True,
                                                                  "brownian_noise": True}),
    ("DPM++ 2s a RF", "sample_dpmpp_2s_ancestral_RF", ["sample_dpmpp_2s_ancestral_RF"], {}),
    ("Euler a", "sample_euler_ancestral", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}),
    ("Euler", "sample_euler", ["k_euler"], {}),
    ("ER SDE", "sample_er_sde", ["er_side"], {}),
    ("LCM", "sample_lcm", ["k_lcm"], {}),
    ("LMS", "sample_lms", ["k_lms"], {}),
    ("Heun", "sample_heun", ["k_heun"], {"second_order": True}),
    ("DPM2", "sample_dpm_2", ["k_dpm_2"], {"scheduler": "karras", "discard_next_to_last_sigma": True,
                                           "second_order": True}),
    ("Res Multistep", "sample_res_multistep", ["res_multistep"], {}),
    ("Kohaku LoNyu Yog", "sample_Kohaku_LoNyu_Yog", ["Kohaku_LoNyu_Yog"], {}),
    ("Restart", sd_samplers_extra.restart_sampler, ["restart"], {"scheduler": "karras", "second_order": True}),
    ("UniPC", sd_samplers_extra.sample_unipc, ["unipc"], {"discard_next_to_last_sigma": True}),
]  # fmt: skip

samplers_data_k_diffusion = [
    sd_samplers_common.SamplerData(
        label, lambda model, funcname=funcname: KDiffusionSampler(funcname, model), aliases, options
    )
    for label, funcname, aliases, options in samplers_k_diffusion
    if callable(funcname) or hasattr(k_diffusion.sampling, funcname)
]
k_diffusion_samplers_map = {x.name: x for x in samplers_data_k_diffusion}

sampler_extra_params = {
    "sample_dpmpp_sde": ["eta", "s_noise", "r"],
    "sample_dpmpp_2m_sde": ["eta", "s_noise"],
    "sample_dpmpp_3m_sde": ["eta", "s_noise"],
    "sample_euler_ancestral": ["eta", "s_noise"],
    "sample_euler": ["s_churn", "s_tmin", "s_tmax", "s_noise"],
    "sample_heun": ["s_churn", "s_tmin", "s_tmax", "s_noise"],
    "sample_dpm_2": ["s_churn", "s_tmin", "s_tmax", "s_noise"],
}


class CFGDenoiserKDiffusion(sd_samplers_cfg_denoiser.CFGDenoiser):
    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = k_diffusion.external.ForgeScheduleLinker(
                shared.sd_model.forge_objects.unet.model.predictor
            )
            self.model_wrap.inner_model = shared.sd_model
        return self.model_wrap
