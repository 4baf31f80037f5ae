"""Mirrors modules/processing.py (Neo @ 3df257a), reduced to txt2img with hires fix and img2img.

Kept as in Neo, because the extension depends on it or must survive it:

* ``process_images``: ``before_process``, ``override_settings`` through ``set_config`` (a checkpoint override goes
  through ``main_entry.checkpoint_change``), ``forge_model_reload``, then ``process_images_inner``; the options are
  restored afterwards the same way.
* ``process_images_inner``: refiner info, ``scripts.process``, ``p.init``, per batch ``forge_model_reload()`` (back to
  the first-pass checkpoint), the RNG shaped by ``forge_objects.vae.latent_channels``, ``setup_conds``,
  ``p.sample(...)``, ``post_sample``, decode, infotext, ``scripts.postprocess``.
* **The cond cache**: ``cached_c``/``cached_uc`` (shared by every ``p`` and the class), ``cached_hr_c``/``cached_hr_uc``
  (Txt2Img), each ``[key, conds]``, keyed by ``cached_params`` with ``str(model_data.forge_loading_parameters)`` in
  it. After a hires or refiner checkpoint load, Neo resets those parameters to the first-pass checkpoint, so the
  other model's conds are stored under the first-pass key: the next request that asks for that key gets conds of
  the other architecture, and the fake UNet raises ``AssertionError`` as Neo's does.
* ``StableDiffusionProcessingTxt2Img.sample``: first pass (or ``firstpass_image``), pixel upscalers decode with the
  first-pass VAE, then the hires checkpoint/modules switch through ``main_entry`` (``hr_additional_modules=None``
  raises ``TypeError`` as in Neo: API callers must send ``["Use same choices"]``), ``forge_model_reload``, the
  parameters reset to the first pass in ``finally``, and ``self.sample_hr_pass`` looked up on the instance.
* ``sample_hr_pass``: interrupt return, latent interpolation with ``latent_upscale_modes``, image conditioning,
  ``truncate_x/y``, ``ImageRNG(samples.shape[1:])``, ``calculate_hr_conds``, ``before_hr``, then
  ``process_before_every_sampling`` **twice** (Neo calls it before and after the forge objects are reset),
  ``sample_img2img`` with the hires conds and ``hr_cfg`` (default 1: no unconditional pass), decode.

Simplified: prompts are not parsed (no extra networks, no schedules); ``prompt_parser`` is the engine's
``get_learned_conditioning``; images are tensors in [0, 1]; a pixel upscaler is bicubic interpolation; img2img has
no masks (the refiner tests that need them run on the A1111 stand-in)."""

from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F
from modules_forge import main_entry

from modules import devices, rng, sd_models, sd_samplers, sd_samplers_common, shared
from modules.infotext_utils import quote
from modules.shared import opts, state

opt_C = 4
opt_f = 8


class DecodedSamples(list):
    already_decoded = True


def decode_latent_batch(model, batch, target_device=None, check_for_nans=False):
    samples = DecodedSamples()
    for i in range(batch.shape[0]):
        sample = sd_samplers_common.decode_first_stage(model, batch[i : i + 1])[0]
        if target_device is not None:
            sample = sample.to(target_device)
        samples.append(sample)
    return samples


def txt2img_image_conditioning(sd_model, x, width, height):
    return x.new_zeros(x.shape[0], 5, 1, 1, dtype=x.dtype, device=x.device)


def set_config(req, is_api=False, run_callbacks=True, save_config=True):
    """modules/sysinfo.py ``set_config``: checkpoint and modules through main_entry, then one refresh."""
    refresh = False
    for k, v in req.items():
        if v == opts.data.get(k):
            continue
        if k == "sd_model_checkpoint":
            if v is not None and v not in sd_models.checkpoint_aliases:
                raise RuntimeError(f"Model {v!r} not found...")
            refresh |= main_entry.checkpoint_change(v, preset=None, save=False, refresh=False)
        elif k == "forge_additional_modules":
            refresh |= main_entry.modules_change(v, preset=None, save=False, refresh=False)
        else:
            opts.set(k, v, is_api=is_api, run_callbacks=run_callbacks)
    if refresh:
        main_entry.refresh_model_loading_parameters()


class StableDiffusionProcessing:
    cached_uc = [None, None, None]
    cached_c = [None, None, None]

    def __init__(self, sd_model=None, prompt="", negative_prompt="", styles=None, seed=-1, subseed=-1,
                 subseed_strength=0, seed_resize_from_h=-1, seed_resize_from_w=-1, sampler_name=None, scheduler=None,
                 batch_size=1, n_iter=1, steps=50, cfg_scale=7.0, distilled_cfg_scale=3.5, width=512, height=512,
                 extra_generation_params=None, eta=None, denoising_strength=None, override_settings=None,
                 override_settings_restore_afterwards=True, refiner_checkpoint=None, refiner_switch_at=None,
                 firstpass_image=None, disable_extra_networks=False, s_churn=None, s_tmin=None, s_tmax=None,
                 s_noise=None, **kwargs):  # fmt: skip
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.styles = styles or []
        self.seed = seed
        self.subseed = subseed
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.sampler_name = sampler_name
        self.scheduler = scheduler
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.steps = steps
        self.cfg_scale = cfg_scale
        self.distilled_cfg_scale = distilled_cfg_scale
        self.width = width
        self.height = height
        self.extra_generation_params = extra_generation_params or {}
        self.eta = eta
        # processing.py 252-255: the sampler parameters default to the settings (s_tmax 0 = infinity)
        self.s_churn = s_churn if s_churn is not None else opts.s_churn
        self.s_tmin = s_tmin if s_tmin is not None else opts.s_tmin
        self.s_tmax = (s_tmax if s_tmax is not None else opts.s_tmax) or float("inf")
        self.s_noise = s_noise if s_noise is not None else opts.s_noise
        self.denoising_strength = denoising_strength
        self.override_settings = override_settings or {}
        self.override_settings_restore_afterwards = override_settings_restore_afterwards
        self.refiner_checkpoint = refiner_checkpoint
        self.refiner_switch_at = refiner_switch_at
        self.refiner_checkpoint_info = None
        self.firstpass_image = firstpass_image
        self.disable_extra_networks = disable_extra_networks
        self.scripts_value = None
        self.script_args_value = None
        self.scripts_setup_complete = False
        self.sampler = None
        self.is_hr_pass = False
        self.c = None
        self.uc = None
        self.rng = None
        self.iteration = 0
        self.is_api = False
        self.sampler_noise_scheduler_override = None
        self.modified_noise = None
        self.extra_network_data = {}
        self.hr_distilled_cfg = 3.5
        self.cached_uc = StableDiffusionProcessing.cached_uc
        self.cached_c = StableDiffusionProcessing.cached_c

    def clear_prompt_cache(self):
        self.cached_c = [None, None, None]
        self.cached_uc = [None, None, None]
        StableDiffusionProcessing.cached_c = [None, None, None]
        StableDiffusionProcessing.cached_uc = [None, None, None]

    @property
    def sd_model(self):
        return shared.sd_model

    @sd_model.setter
    def sd_model(self, value):
        pass

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value):
        self.scripts_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value):
        self.script_args_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    def setup_scripts(self):
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def txt2img_image_conditioning(self, x, width=None, height=None):
        return txt2img_image_conditioning(self.sd_model, x, width or self.width, height or self.height)

    def img2img_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        return latent_image.new_zeros(latent_image.shape[0], 5, 1, 1)  # not an inpainting model

    def cached_params(self, required_prompts, steps, extra_network_data, hires_steps, use_old_scheduling):
        """Returns parameters that invalidate the cond cache if changed (Neo: the *loading parameters*; lllyasviel's
        Forge, ``sd_samplers_common.FLAVOUR == "forge"``: the loaded model's checkpoint, processing.py 420-440)."""
        forge = sd_samplers_common.FLAVOUR == "forge"
        model_key = (
            shared.sd_model.sd_checkpoint_info.filename if forge else str(sd_models.model_data.forge_loading_parameters)
        )
        return (tuple(required_prompts), self.distilled_cfg_scale, self.hr_distilled_cfg, steps, hires_steps,
                use_old_scheduling, opts.CLIP_stop_at_last_layers, model_key,
                json.dumps(extra_network_data, default=str), self.width, self.height, opts.emphasis)  # fmt: skip

    def get_conds_with_caching(self, function, required_prompts, steps, caches, extra_network_data, hires_steps=None):
        cached_params = self.cached_params(required_prompts, steps, extra_network_data, hires_steps,
                                           opts.use_old_scheduling)  # fmt: skip
        for cache in caches:
            if cache[0] is not None and cached_params == cache[0]:
                return cache[1]
        cache = caches[0]
        cache[1] = function(shared.sd_model, required_prompts, steps, hires_steps, opts.use_old_scheduling)
        cache[0] = cached_params
        return cache[1]

    def setup_conds(self):
        self.firstpass_steps = self.steps
        learned = get_learned_conditioning
        self.uc = (
            None
            if self.cfg_scale == 1
            else self.get_conds_with_caching(
                learned,
                [self.negative_prompt] * len(self.prompts),
                self.steps,
                [self.cached_uc],
                self.extra_network_data,
            )
        )
        self.c = self.get_conds_with_caching(learned, self.prompts, self.steps, [self.cached_c],
                                             self.extra_network_data)  # fmt: skip

    def get_conds(self):
        return self.c, self.uc

    def close(self):
        self.sampler = None
        self.c = None
        self.uc = None
        if not opts.persistent_cond_cache:
            self.clear_prompt_cache()


def get_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    """prompt_parser.get_learned_conditioning, reduced: the loaded engine's text encoder, no schedules."""
    return model.get_learned_conditioning(prompts)


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    cached_hr_uc = [None, None, None]
    cached_hr_c = [None, None, None]

    def __init__(self, enable_hr=False, denoising_strength=0.75, firstphase_width=0, firstphase_height=0, hr_scale=2.0,
                 hr_upscaler=None, hr_second_pass_steps=0, hr_resize_x=0, hr_resize_y=0, hr_checkpoint_name=None,
                 hr_additional_modules=None, hr_sampler_name=None, hr_scheduler=None, hr_prompt="",
                 hr_negative_prompt="", hr_cfg=1.0, hr_distilled_cfg=3.5, force_task_id=None, **kwargs):  # fmt: skip
        super().__init__(denoising_strength=denoising_strength, **kwargs)
        self.enable_hr = enable_hr
        self.hr_scale = hr_scale
        self.hr_upscaler = hr_upscaler
        self.hr_second_pass_steps = hr_second_pass_steps
        self.hr_resize_x = hr_resize_x
        self.hr_resize_y = hr_resize_y
        self.hr_checkpoint_name = hr_checkpoint_name
        self.hr_additional_modules = hr_additional_modules
        self.hr_sampler_name = hr_sampler_name
        self.hr_scheduler = hr_scheduler
        self.hr_prompt = hr_prompt
        self.hr_negative_prompt = hr_negative_prompt
        self.hr_cfg = hr_cfg
        self.hr_distilled_cfg = hr_distilled_cfg
        self.hr_checkpoint_info = None
        self.hr_upscale_to_x = 0
        self.hr_upscale_to_y = 0
        self.truncate_x = 0
        self.truncate_y = 0
        self.latent_scale_mode = None
        self.hr_c = None
        self.hr_uc = None
        self.cached_hr_uc = StableDiffusionProcessingTxt2Img.cached_hr_uc
        self.cached_hr_c = StableDiffusionProcessingTxt2Img.cached_hr_c

    def init(self, all_prompts, all_seeds, all_subseeds):
        if not self.enable_hr:
            return
        self.extra_generation_params["Denoising strength"] = self.denoising_strength
        if self.hr_checkpoint_name and self.hr_checkpoint_name != "Use same checkpoint":
            self.hr_checkpoint_info = sd_models.get_closet_checkpoint_match(self.hr_checkpoint_name)
            if self.hr_checkpoint_info is None:
                raise Exception(f"Could not find checkpoint with name {self.hr_checkpoint_name}")
            self.extra_generation_params["Hires checkpoint"] = self.hr_checkpoint_info.short_title
        if isinstance(self.hr_additional_modules, list):  # Neo 2.26 processing.py 1396-1403
            if self.hr_additional_modules == []:
                self.extra_generation_params["Hires Module 1"] = "Built-in"
            elif "Use same choices" in self.hr_additional_modules:
                self.extra_generation_params["Hires Module 1"] = "Use same choices"
            else:
                for i, m in enumerate(self.hr_additional_modules):
                    self.extra_generation_params[f"Hires Module {i + 1}"] = os.path.splitext(os.path.basename(m))[0]
        if self.hr_sampler_name is not None and self.hr_sampler_name != self.sampler_name:
            self.extra_generation_params["Hires sampler"] = self.hr_sampler_name
        self.extra_generation_params["Hires CFG Scale"] = self.hr_cfg
        if self.hr_scheduler is None:
            self.hr_scheduler = self.scheduler
        self.latent_scale_mode = (
            shared.latent_upscale_modes.get(self.hr_upscaler, None)
            if self.hr_upscaler is not None
            else shared.latent_upscale_modes.get(shared.latent_upscale_default_mode, "nearest")
        )
        if self.enable_hr and self.latent_scale_mode is None:
            if not any(x.name == self.hr_upscaler for x in shared.sd_upscalers):
                raise Exception(f"could not find upscaler named {self.hr_upscaler}")
        self.extra_generation_params["Hires upscale"] = self.hr_scale
        self.hr_upscale_to_x = int(self.width * self.hr_scale)
        self.hr_upscale_to_y = int(self.height * self.hr_scale)
        if self.hr_second_pass_steps:
            self.extra_generation_params["Hires steps"] = self.hr_second_pass_steps
        if self.hr_upscaler is not None:
            self.extra_generation_params["Hires upscaler"] = self.hr_upscaler

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)

        if self.firstpass_image is not None and self.enable_hr:
            if self.latent_scale_mode is None:
                samples = None
                decoded_samples = self.firstpass_image.float().clamp(0, 1)
            else:
                image = self.firstpass_image.to(shared.device or devices.device, dtype=torch.float32)
                samples = sd_samplers_common.images_tensor_to_samples(image, None, self.sd_model)
                decoded_samples = None
        else:
            x = self.rng.next()
            self.sd_model.forge_objects = self.sd_model.forge_objects_after_applying_lora.shallow_copy()
            if self.scripts is not None:
                self.scripts.process_before_every_sampling(p=self, x=x, noise=x, c=conditioning,
                                                           uc=unconditional_conditioning)  # fmt: skip
            if self.modified_noise is not None:
                x = self.modified_noise
                self.modified_noise = None
            samples = self.sampler.sample(self, x, conditioning, unconditional_conditioning,
                                          image_conditioning=self.txt2img_image_conditioning(x))  # fmt: skip
            del x
            if not self.enable_hr:
                return samples
            if self.latent_scale_mode is None:
                decoded_samples = torch.stack(decode_latent_batch(self.sd_model, samples, target_device=devices.cpu,
                                                                  check_for_nans=True)).float()  # fmt: skip
                decoded_samples = torch.clamp((decoded_samples + 1.0) / 2.0, min=0.0, max=1.0)
            else:
                decoded_samples = None

        fp_checkpoint = shared.opts.sd_model_checkpoint
        fp_additional_modules = shared.opts.forge_additional_modules
        reload = False
        if hasattr(self, "hr_additional_modules") and "Use same choices" not in self.hr_additional_modules:
            if main_entry.modules_change(self.hr_additional_modules, preset=None, save=False, refresh=False):
                reload = True
        if self.hr_checkpoint_name and self.hr_checkpoint_name != "Use same checkpoint":
            if main_entry.checkpoint_change(self.hr_checkpoint_name, preset=None, save=False, refresh=False):
                reload = True
        if reload:
            try:
                main_entry.refresh_model_loading_parameters()
                sd_models.forge_model_reload()
            finally:
                main_entry.modules_change(fp_additional_modules, preset=None, save=False, refresh=False)
                main_entry.checkpoint_change(fp_checkpoint, preset=None, save=False, refresh=False)
                main_entry.refresh_model_loading_parameters()

        return self.sample_hr_pass(samples, decoded_samples, seeds, subseeds, subseed_strength, prompts)

    def sample_hr_pass(self, samples, decoded_samples, seeds, subseeds, subseed_strength, prompts):
        if shared.state.interrupted:
            return samples

        self.is_hr_pass = True
        target_width = self.hr_upscale_to_x
        target_height = self.hr_upscale_to_y
        self.sampler = sd_samplers.create_sampler(self.hr_sampler_name or self.sampler_name, self.sd_model)

        if self.latent_scale_mode is not None:
            if _5d := (len(samples.shape) == 5):  # Neo 2.26 processing.py 1562-1567: Wan's [B, C, T, H, W]
                samples = samples.squeeze(2)
            samples = F.interpolate(samples, size=(target_height // opt_f, target_width // opt_f),
                                    mode=self.latent_scale_mode["mode"], antialias=self.latent_scale_mode["antialias"])  # fmt: skip
            if _5d:
                samples = samples.unsqueeze(2)
            image_conditioning = self.txt2img_image_conditioning(samples)
        else:
            if len(decoded_samples.shape) == 5:
                decoded_samples = decoded_samples.squeeze(1)
            upscaled = F.interpolate(decoded_samples, size=(target_height, target_width), mode="bicubic").clamp(0, 1)
            decoded_samples = upscaled.to(shared.device or devices.device, dtype=torch.float32)
            samples = sd_samplers_common.images_tensor_to_samples(decoded_samples, None)
            image_conditioning = self.img2img_image_conditioning(decoded_samples, samples)

        shared.state.nextjob()
        samples = samples[:, :, self.truncate_y // 2 : samples.shape[2] - (self.truncate_y + 1) // 2,
                          self.truncate_x // 2 : samples.shape[3] - (self.truncate_x + 1) // 2]  # fmt: skip
        self.rng = rng.ImageRNG(samples.shape[1:], self.seeds, subseeds=self.subseeds,
                                subseed_strength=self.subseed_strength, seed_resize_from_h=self.seed_resize_from_h,
                                seed_resize_from_w=self.seed_resize_from_w)  # fmt: skip
        noise = self.rng.next()
        self.calculate_hr_conds()

        if self.scripts is not None:
            self.scripts.before_hr(self)
            self.scripts.process_before_every_sampling(p=self, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc)
        self.sd_model.forge_objects = self.sd_model.forge_objects_after_applying_lora.shallow_copy()
        if self.scripts is not None:
            self.scripts.process_before_every_sampling(self, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc)
        if self.modified_noise is not None:
            noise = self.modified_noise
            self.modified_noise = None

        samples = self.sampler.sample_img2img(self, samples, noise, self.hr_c, self.hr_uc,
                                              steps=self.hr_second_pass_steps or self.steps,
                                              image_conditioning=image_conditioning)  # fmt: skip
        self.sampler = None
        decoded_samples = decode_latent_batch(self.sd_model, samples, target_device=devices.cpu, check_for_nans=True)
        self.is_hr_pass = False
        return decoded_samples

    def close(self):
        super().close()
        self.hr_c = None
        self.hr_uc = None
        if not opts.persistent_cond_cache:
            StableDiffusionProcessingTxt2Img.cached_hr_uc = [None, None]
            StableDiffusionProcessingTxt2Img.cached_hr_c = [None, None]

    def calculate_hr_conds(self):
        if self.hr_c is not None:
            return
        steps = self.hr_second_pass_steps or self.steps
        hr_prompts = [self.hr_prompt or p for p in self.prompts]
        if self.hr_cfg == 1:
            self.hr_uc = None
        else:
            negative = [self.hr_negative_prompt or self.negative_prompt] * len(hr_prompts)
            self.hr_uc = self.get_conds_with_caching(get_learned_conditioning, negative, self.firstpass_steps,
                                                     [self.cached_hr_uc, self.cached_uc], self.extra_network_data,
                                                     steps)  # fmt: skip
        self.hr_c = self.get_conds_with_caching(get_learned_conditioning, hr_prompts, self.firstpass_steps,
                                                [self.cached_hr_c, self.cached_c], self.extra_network_data, steps)  # fmt: skip

    def setup_conds(self):
        if self.is_hr_pass:
            self.hr_c = None
            self.calculate_hr_conds()
            return
        super().setup_conds()
        self.hr_uc = None
        self.hr_c = None
        if self.enable_hr and self.hr_checkpoint_info is None:
            self.calculate_hr_conds()

    def get_conds(self):
        if self.is_hr_pass:
            return self.hr_c, self.hr_uc
        return super().get_conds()


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    def __init__(self, init_images=None, resize_mode=0, denoising_strength=0.75, image_cfg_scale=None, mask=None,
                 mask_blur=4, inpainting_fill=0, initial_noise_multiplier=None, force_task_id=None, **kwargs):  # fmt: skip
        super().__init__(denoising_strength=denoising_strength, **kwargs)
        self.init_images = init_images
        self.image_cfg_scale = image_cfg_scale
        self.image_mask = mask
        self.mask = None
        self.nmask = None
        self.image_conditioning = None
        self.init_latent = None
        self.initial_noise_multiplier = (
            opts.initial_noise_multiplier if initial_noise_multiplier is None else initial_noise_multiplier
        )

    def init(self, all_prompts, all_seeds, all_subseeds):
        self.extra_generation_params["Denoising strength"] = self.denoising_strength
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        images = [img.float().clamp(0, 1) for img in self.init_images]
        batch_images = images[0].repeat(self.batch_size, 1, 1, 1) if len(images) == 1 else torch.cat(images)
        image = batch_images.to(shared.device or devices.device, dtype=torch.float32)
        self.init_latent = sd_samplers_common.images_tensor_to_samples(image, None, self.sd_model)
        self.image_conditioning = self.img2img_image_conditioning(image * 2 - 1, self.init_latent)

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        x = self.rng.next()
        if self.initial_noise_multiplier != 1.0:
            x *= self.initial_noise_multiplier
        self.sd_model.forge_objects = self.sd_model.forge_objects_after_applying_lora.shallow_copy()
        if self.scripts is not None:
            self.scripts.process_before_every_sampling(p=self, x=self.init_latent, noise=x, c=conditioning,
                                                       uc=unconditional_conditioning)  # fmt: skip
        samples = self.sampler.sample_img2img(self, self.init_latent, x, conditioning, unconditional_conditioning,
                                              image_conditioning=self.image_conditioning)  # fmt: skip
        del x
        return samples


class Processed:
    def __init__(self, p, images_list, seed=-1, info="", subseed=None, infotexts=None):
        self.images = images_list
        self.prompt = p.prompt
        self.seed = seed
        self.info = info
        self.infotexts = infotexts or [info] * len(images_list)
        self.extra_generation_params = p.extra_generation_params

    def js(self):
        return json.dumps({"infotexts": self.infotexts, "extra_generation_params": self.extra_generation_params},
                          default=lambda o: None)  # fmt: skip


def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0):
    index = position_in_batch + iteration * p.batch_size
    generation_params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "CFG scale": p.cfg_scale,
        "Seed": all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        "Model": p.sd_model_name,
        **p.extra_generation_params,
        "Version": "neo",
    }
    for key, value in list(generation_params.items()):
        if isinstance(value, list):
            generation_params[key] = value[index]
        elif callable(value):
            generation_params[key] = value(**locals())
    text = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in generation_params.items() if v is not None)
    return f"{all_prompts[index]}\n{text}".strip()


def process_images(p):
    if p.scripts is not None:
        p.scripts.before_process(p)
    stored_opts = {k: opts.data[k] if k in opts.data else opts.get_default(k) for k in p.override_settings
                   if k in opts.data}  # fmt: skip
    try:
        if sd_models.checkpoint_aliases.get(p.override_settings.get("sd_model_checkpoint")) is None:
            p.override_settings.pop("sd_model_checkpoint", None)
        set_config(p.override_settings, is_api=True, run_callbacks=False, save_config=False)
        sd_models.forge_model_reload()
        sd_samplers.fix_p_invalid_sampler_and_scheduler(p)
        res = process_images_inner(p)
    finally:
        if p.override_settings_restore_afterwards:
            set_config(stored_opts, save_config=False)
    return res


def process_images_inner(p):
    if p.refiner_checkpoint not in (None, "", "None", "none"):
        p.refiner_checkpoint_info = sd_models.get_closet_checkpoint_match(p.refiner_checkpoint)
        if p.refiner_checkpoint_info is None:
            raise Exception(f"Could not find checkpoint with name {p.refiner_checkpoint}")
    p.sd_model_name = shared.sd_model.sd_checkpoint_info.name_for_extra
    seed = p.seed if p.seed != -1 else 1234
    p.all_seeds = [seed + i for i in range(p.n_iter * p.batch_size)]
    p.all_subseeds = list(p.all_seeds)
    p.all_prompts = [p.prompt] * (p.n_iter * p.batch_size)

    if p.scripts is not None:
        p.scripts.process(p)

    infotexts, output_images = [], []
    with torch.no_grad():
        p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
        for n in range(p.n_iter):
            p.iteration = n
            if state.skipped:
                state.skipped = False
            if state.interrupted or state.stopping_generation:
                break
            sd_models.forge_model_reload()  # model can be changed for example by refiner, hiresfix
            p.sd_model.forge_objects = p.sd_model.forge_objects_original.shallow_copy()
            p.prompts = p.all_prompts[n * p.batch_size : (n + 1) * p.batch_size]
            p.seeds = p.all_seeds[n * p.batch_size : (n + 1) * p.batch_size]
            p.subseeds = p.all_subseeds[n * p.batch_size : (n + 1) * p.batch_size]
            latent_channels = shared.sd_model.forge_objects.vae.latent_channels
            p.rng = rng.ImageRNG((latent_channels, p.height // opt_f, p.width // opt_f), p.seeds, subseeds=p.subseeds,
                                 subseed_strength=p.subseed_strength, seed_resize_from_h=p.seed_resize_from_h,
                                 seed_resize_from_w=p.seed_resize_from_w)  # fmt: skip
            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds,
                                               subseeds=p.subseeds)  # fmt: skip
            p.sd_model.forge_objects = p.sd_model.forge_objects_after_applying_lora.shallow_copy()
            if p.scripts is not None:
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            p.setup_conds()
            samples_ddim = p.sample(conditioning=p.c, unconditional_conditioning=p.uc, seeds=p.seeds,
                                    subseeds=p.subseeds, subseed_strength=p.subseed_strength, prompts=p.prompts)  # fmt: skip
            if p.scripts is not None:
                from modules import scripts

                ps = scripts.PostSampleArgs(samples_ddim)
                p.scripts.post_sample(p, ps)
                samples_ddim = ps.samples
            if getattr(samples_ddim, "already_decoded", False):
                x_samples_ddim = samples_ddim
            else:
                x_samples_ddim = decode_latent_batch(p.sd_model, samples_ddim, target_device=devices.cpu,
                                                     check_for_nans=True)  # fmt: skip
            x_samples_ddim = torch.stack(x_samples_ddim).float()
            x_samples_ddim = torch.clamp((x_samples_ddim + 1.0) / 2.0, min=0.0, max=1.0)
            for i, x_sample in enumerate(x_samples_ddim):
                output_images.append(x_sample)
                infotexts.append(create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, iteration=n,
                                                 position_in_batch=i))  # fmt: skip
    res = Processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0] if infotexts else "",
                    infotexts=infotexts)  # fmt: skip
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res
