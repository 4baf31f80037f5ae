"""Mirrors modules/processing.py (1.10.1), reduced to txt2img with hires fix and img2img.

Kept as in the webui: ``process_images`` (before_process, override_settings applied and restored),
``process_images_inner`` (refiner info before ``scripts.process``, ``p.init``, a base-model reload
and a new ImageRNG per batch, ``p.sample(**kwargs)``, decode, infotext, ``scripts.postprocess``),
and ``StableDiffusionProcessingTxt2Img.sample`` / ``sample_hr_pass`` step by step: first pass (or
``firstpass_image``), pixel upscalers decode with the first-pass VAE, ``reload_model_weights`` under
``SkipWritingToConfig``, then ``self.sample_hr_pass`` looked up on the instance; inside it the early
return on interrupt, latent interpolation, RNG from ``samples.shape``, ``before_hr`` and
``process_before_every_sampling``, ``sample_img2img``, decode with the hires model.
``StableDiffusionProcessingImg2Img``: ``init`` creates the sampler once for all batches, encodes the init
images with the loaded (base) model's VAE into ``init_latent`` and builds the latent ``mask``/``nmask`` of an
inpainting mask; ``sample`` draws the noise, calls ``process_before_every_sampling`` and
``sampler.sample_img2img(self, self.init_latent, x, ...)`` (the refiner switch happens inside) and blends the
result with ``self.init_latent`` outside the mask (``on_mask_blend``).
Differences: images stay tensors in [0, 1] (no PIL, no saving, no overlay compositing of inpainting
results), init images and masks are (1, C, H, W) tensors already at the target size (no resize modes, no
"inpaint only masked" crop), the mask is not blurred, ``inpainting_fill`` 0 ("fill") paints the masked
pixels with the mean colour of the others (the webui smears the surrounding colours in), and a pixel
"upscaler" is bicubic interpolation.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

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


class StableDiffusionProcessing:
    def __init__(self, sd_model=None, prompt="", negative_prompt="", styles=None, seed=-1, subseed=-1,
                 subseed_strength=0, seed_resize_from_h=-1, seed_resize_from_w=-1, sampler_name=None, scheduler=None,
                 batch_size=1, n_iter=1, steps=50, cfg_scale=7.0, width=512, height=512, extra_generation_params=None,
                 eta=None, denoising_strength=None, override_settings=None, override_settings_restore_afterwards=True,
                 refiner_checkpoint=None, refiner_switch_at=None, firstpass_image=None, **kwargs):  # fmt: skip
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
        self.width = width
        self.height = height
        self.extra_generation_params = extra_generation_params or {}
        self.eta = eta
        self.denoising_strength = denoising_strength
        self.override_settings = override_settings or {}
        self.override_settings_restore_afterwards = override_settings_restore_afterwards
        self.refiner_checkpoint = refiner_checkpoint
        self.refiner_switch_at = refiner_switch_at
        self.refiner_checkpoint_info = None
        self.firstpass_image = firstpass_image
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
        inpainting = self.sampler.conditioning_key in {"hybrid", "concat"} or getattr(
            self.sampler.model_wrap.inner_model, "is_sdxl_inpaint", False
        )
        if inpainting:
            return self.inpainting_image_conditioning(source_image, latent_image, image_mask, round_image_mask)
        return latent_image.new_zeros(latent_image.shape[0], 5, 1, 1)  # dummy: not an inpainting model

    def inpainting_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        """The mask at latent size and the masked image encoded by the *loaded* model's VAE: 1 + C channels."""
        if image_mask is None:
            conditioning_mask = source_image.new_ones(1, 1, *source_image.shape[-2:])
        else:
            conditioning_mask = image_mask[:, :1].to(source_image.dtype)
            conditioning_mask = conditioning_mask.round() if round_image_mask else conditioning_mask
        weight = opts.inpainting_mask_weight
        conditioning_image = torch.lerp(source_image, source_image * (1.0 - conditioning_mask), weight)
        conditioning_image = self.sd_model.get_first_stage_encoding(
            self.sd_model.encode_first_stage(conditioning_image)
        )
        conditioning_mask = F.interpolate(conditioning_mask, size=latent_image.shape[-2:])
        conditioning_mask = conditioning_mask.expand(conditioning_image.shape[0], -1, -1, -1)
        return torch.cat([conditioning_mask, conditioning_image], dim=1).to(latent_image.dtype)

    def setup_conds(self):
        # Conditioning depends on the checkpoint loaded (its text encoders); record which one.
        self.c = ("cond", self.sd_model.sd_checkpoint_info.title)
        self.uc = ("uncond", self.sd_model.sd_checkpoint_info.title)

    def get_conds(self):
        return self.c, self.uc

    def close(self):
        self.sampler = None


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    def __init__(self, enable_hr=False, denoising_strength=0.75, firstphase_width=0, firstphase_height=0, hr_scale=2.0,
                 hr_upscaler=None, hr_second_pass_steps=0, hr_resize_x=0, hr_resize_y=0, hr_checkpoint_name=None,
                 hr_sampler_name=None, hr_scheduler=None, hr_prompt="", hr_negative_prompt="", force_task_id=None,
                 **kwargs):  # fmt: skip
        super().__init__(denoising_strength=denoising_strength, **kwargs)
        self.enable_hr = enable_hr
        self.hr_scale = hr_scale
        self.hr_upscaler = hr_upscaler
        self.hr_second_pass_steps = hr_second_pass_steps
        self.hr_resize_x = hr_resize_x
        self.hr_resize_y = hr_resize_y
        self.hr_checkpoint_name = hr_checkpoint_name
        self.hr_sampler_name = hr_sampler_name
        self.hr_scheduler = hr_scheduler
        self.hr_checkpoint_info = None
        self.hr_upscale_to_x = 0
        self.hr_upscale_to_y = 0
        self.latent_scale_mode = None
        self.hr_c = None
        self.hr_uc = None

    def init(self, all_prompts, all_seeds, all_subseeds):
        if not self.enable_hr:
            return
        self.extra_generation_params["Denoising strength"] = self.denoising_strength
        if self.hr_checkpoint_name and self.hr_checkpoint_name != "Use same checkpoint":
            self.hr_checkpoint_info = sd_models.get_closet_checkpoint_match(self.hr_checkpoint_name)
            if self.hr_checkpoint_info is None:
                raise Exception(f"Could not find checkpoint with name {self.hr_checkpoint_name}")
            self.extra_generation_params["Hires checkpoint"] = self.hr_checkpoint_info.short_title
        if self.hr_sampler_name is not None and self.hr_sampler_name != self.sampler_name:
            self.extra_generation_params["Hires sampler"] = self.hr_sampler_name
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
        self.hr_upscale_to_x = int(self.width * self.hr_scale)
        self.hr_upscale_to_y = int(self.height * self.hr_scale)
        self.extra_generation_params["Hires upscale"] = self.hr_scale
        if self.hr_upscaler is not None:
            self.extra_generation_params["Hires upscaler"] = self.hr_upscaler

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)

        if self.firstpass_image is not None and self.enable_hr:
            if self.latent_scale_mode is None:
                samples = None
                decoded_samples = (self.firstpass_image * 2 - 1).float()
            else:
                image = self.firstpass_image.to(shared.device or devices.device, dtype=devices.dtype_vae)
                samples = sd_samplers_common.images_tensor_to_samples(image, None, self.sd_model)
                decoded_samples = None
        else:
            x = self.rng.next()
            if self.scripts is not None:
                self.scripts.process_before_every_sampling(p=self, x=x, noise=x, c=conditioning,
                                                           uc=unconditional_conditioning)  # fmt: skip
            samples = self.sampler.sample(self, x, conditioning, unconditional_conditioning,
                                          image_conditioning=self.txt2img_image_conditioning(x))  # fmt: skip
            del x
            if not self.enable_hr:
                return samples
            devices.torch_gc()
            if self.latent_scale_mode is None:
                decoded_samples = torch.stack(
                    decode_latent_batch(self.sd_model, samples, target_device=devices.cpu, check_for_nans=True)
                ).to(dtype=torch.float32)
            else:
                decoded_samples = None

        with sd_models.SkipWritingToConfig():
            sd_models.reload_model_weights(info=self.hr_checkpoint_info)

        return self.sample_hr_pass(samples, decoded_samples, seeds, subseeds, subseed_strength, prompts)

    def sample_hr_pass(self, samples, decoded_samples, seeds, subseeds, subseed_strength, prompts):
        if shared.state.interrupted:
            return samples

        self.is_hr_pass = True
        target_width = self.hr_upscale_to_x
        target_height = self.hr_upscale_to_y
        self.intermediates = []

        def save_intermediate(image, index):
            if not opts.save_images_before_highres_fix:
                return
            if not isinstance(image, torch.Tensor) or image.ndim != 4:
                return
            # The webui decodes with shared.sd_model: the hires model, already loaded.
            self.intermediates.append(sd_samplers_common.sample_to_image(image, index))

        self.sampler = sd_samplers.create_sampler(self.hr_sampler_name or self.sampler_name, self.sd_model)

        if self.latent_scale_mode is not None:
            for i in range(samples.shape[0]):
                save_intermediate(samples, i)
            samples = F.interpolate(samples, size=(target_height // opt_f, target_width // opt_f),
                                    mode=self.latent_scale_mode["mode"], antialias=self.latent_scale_mode["antialias"])  # fmt: skip
            image_conditioning = self.txt2img_image_conditioning(samples)
        else:
            lowres_samples = torch.clamp((decoded_samples + 1.0) / 2.0, min=0.0, max=1.0)
            upscaled = F.interpolate(lowres_samples, size=(target_height, target_width), mode="bicubic").clamp(0, 1)
            decoded_samples = upscaled.to(shared.device or devices.device, dtype=devices.dtype_vae)
            samples = sd_samplers_common.images_tensor_to_samples(decoded_samples, None)
            image_conditioning = self.img2img_image_conditioning(decoded_samples, samples)

        shared.state.nextjob()
        self.rng = rng.ImageRNG(samples.shape[1:], self.seeds, subseeds=self.subseeds,
                                subseed_strength=self.subseed_strength, seed_resize_from_h=self.seed_resize_from_h,
                                seed_resize_from_w=self.seed_resize_from_w)  # fmt: skip
        noise = self.rng.next()
        self.calculate_hr_conds()

        if self.scripts is not None:
            self.scripts.before_hr(self)
            self.scripts.process_before_every_sampling(p=self, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc)

        samples = self.sampler.sample_img2img(self, samples, noise, self.hr_c, self.hr_uc,
                                              steps=self.hr_second_pass_steps or self.steps,
                                              image_conditioning=image_conditioning)  # fmt: skip
        self.sampler = None
        decoded_samples = decode_latent_batch(self.sd_model, samples, target_device=devices.cpu, check_for_nans=True)
        self.is_hr_pass = False
        return decoded_samples

    def calculate_hr_conds(self):
        if self.hr_c is not None:
            return
        title = self.sd_model.sd_checkpoint_info.title
        self.hr_c, self.hr_uc = ("hr_cond", title), ("hr_uncond", title)

    def setup_conds(self):
        if self.is_hr_pass:
            self.hr_c = None
            self.calculate_hr_conds()
            return
        super().setup_conds()
        self.hr_uc = None
        self.hr_c = None

    def get_conds(self):
        if self.is_hr_pass:
            return self.hr_c, self.hr_uc
        return super().get_conds()


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    def __init__(self, init_images=None, resize_mode=0, denoising_strength=0.75, image_cfg_scale=None, mask=None,
                 mask_blur=4, mask_round=True, inpainting_fill=0, inpaint_full_res=True, inpaint_full_res_padding=0,
                 inpainting_mask_invert=0, initial_noise_multiplier=None, latent_mask=None, force_task_id=None,
                 **kwargs):  # fmt: skip
        super().__init__(denoising_strength=denoising_strength, **kwargs)
        self.init_images = init_images
        self.resize_mode = resize_mode
        self.image_cfg_scale = image_cfg_scale
        self.mask_blur = mask_blur
        self.mask_round = mask_round
        self.inpainting_fill = inpainting_fill
        self.inpaint_full_res = inpaint_full_res
        self.inpainting_mask_invert = inpainting_mask_invert
        self.latent_mask = latent_mask
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
        self.image_cfg_scale = self.image_cfg_scale if self.sd_model.cond_stage_key == "edit" else None
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)

        image_mask = self.image_mask
        if image_mask is not None:
            image_mask = (image_mask[:, :1] > 0.5).float() if self.mask_round else image_mask[:, :1].float()
            if self.inpainting_mask_invert:
                image_mask = 1 - image_mask
                self.extra_generation_params["Mask mode"] = "Inpaint not masked"
        latent_mask = self.latent_mask if self.latent_mask is not None else image_mask

        images = [img.float().clamp(0, 1) for img in self.init_images]
        if image_mask is not None and self.inpainting_fill == 0:
            images = [torch.where(image_mask > 0.5, (img * (1 - image_mask)).sum((2, 3), keepdim=True)
                                  / (1 - image_mask).sum().clamp(min=1), img) for img in images]  # fmt: skip
            self.extra_generation_params["Masked content"] = "fill"
        if len(images) == 1:
            batch_images = images[0].repeat(self.batch_size, 1, 1, 1)
        elif len(images) <= self.batch_size:
            self.batch_size = len(images)
            batch_images = torch.cat(images)
        else:
            raise RuntimeError(f"bad number of images passed: {len(images)}; expecting {self.batch_size} or less")

        image = batch_images.to(shared.device or devices.device, dtype=devices.dtype_vae)
        self.init_latent = sd_samplers_common.images_tensor_to_samples(image, None, self.sd_model)

        if image_mask is not None:
            latmask = F.interpolate(latent_mask, size=self.init_latent.shape[-2:], mode="area")[0, 0]
            if self.mask_round:
                latmask = latmask.round()
            latmask = latmask[None].repeat(self.init_latent.shape[1], 1, 1)
            self.mask = (1.0 - latmask).to(shared.device or devices.device).type(devices.dtype)
            self.nmask = latmask.to(shared.device or devices.device).type(devices.dtype)
            if self.inpainting_fill == 2:
                noise = rng.ImageRNG(self.init_latent.shape[1:], all_seeds[0 : self.init_latent.shape[0]]).next()
                self.init_latent = self.init_latent * self.mask + noise * self.nmask
                self.extra_generation_params["Masked content"] = "latent noise"
            elif self.inpainting_fill == 3:
                self.init_latent = self.init_latent * self.mask
                self.extra_generation_params["Masked content"] = "latent nothing"

        self.image_conditioning = self.img2img_image_conditioning(image * 2 - 1, self.init_latent, image_mask,
                                                                  self.mask_round)  # fmt: skip

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        x = self.rng.next()
        if self.initial_noise_multiplier != 1.0:
            self.extra_generation_params["Noise multiplier"] = self.initial_noise_multiplier
            x *= self.initial_noise_multiplier
        if self.scripts is not None:
            self.scripts.process_before_every_sampling(p=self, x=self.init_latent, noise=x, c=conditioning,
                                                       uc=unconditional_conditioning)  # fmt: skip
        samples = self.sampler.sample_img2img(self, self.init_latent, x, conditioning, unconditional_conditioning,
                                              image_conditioning=self.image_conditioning)  # fmt: skip
        if self.mask is not None:
            blended_samples = samples * self.nmask + self.init_latent * self.mask
            if self.scripts is not None:
                from modules import scripts

                mba = scripts.MaskBlendArgs(samples, self.nmask, self.init_latent, self.mask, blended_samples)
                self.scripts.on_mask_blend(self, mba)
                blended_samples = mba.blended_latent
            samples = blended_samples
        del x
        devices.torch_gc()
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
        "Version": "v1.10.1",
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
            sd_models.reload_model_weights()
        for k, v in p.override_settings.items():
            opts.set(k, v, is_api=True, run_callbacks=False)
            if k == "sd_model_checkpoint":
                sd_models.reload_model_weights()
        sd_samplers.fix_p_invalid_sampler_and_scheduler(p)
        res = process_images_inner(p)
    finally:
        if p.override_settings_restore_afterwards:
            for k, v in stored_opts.items():
                setattr(opts, k, v)
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
        with devices.autocast():
            p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
        for n in range(p.n_iter):
            p.iteration = n
            if state.skipped:
                state.skipped = False
            if state.interrupted or state.stopping_generation:
                break
            sd_models.reload_model_weights()
            p.prompts = p.all_prompts[n * p.batch_size : (n + 1) * p.batch_size]
            p.seeds = p.all_seeds[n * p.batch_size : (n + 1) * p.batch_size]
            p.subseeds = p.all_subseeds[n * p.batch_size : (n + 1) * p.batch_size]
            latent_channels = getattr(shared.sd_model, "latent_channels", opt_C)
            p.rng = rng.ImageRNG((latent_channels, p.height // opt_f, p.width // opt_f), p.seeds, subseeds=p.subseeds,
                                 subseed_strength=p.subseed_strength, seed_resize_from_h=p.seed_resize_from_h,
                                 seed_resize_from_w=p.seed_resize_from_w)  # fmt: skip
            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds,
                                               subseeds=p.subseeds)  # fmt: skip
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            p.setup_conds()
            with devices.autocast():
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
