"""Mirrors modules/sd_models_config.py (1.10.1): which config a checkpoint is loaded with, decided from
its state dict's keys and the first UNet conv's input channels (``guess_model_config_from_state_dict``),
unless a ``.yaml`` with the checkpoint's name sits next to it. The stand-in reads the tensors' names and
shapes from the safetensors header (as meta tensors) instead of loading them; SD2 v-prediction is not
probed (no SD2 UNet here), so every SD2 checkpoint gets ``v2-inference.yaml``."""

from __future__ import annotations

import os

config_default = "configs/v1-inference.yaml"
config_sd2 = "repositories/stable-diffusion-stability-ai/configs/stable-diffusion/v2-inference.yaml"
config_sd2_inpainting = (
    "repositories/stable-diffusion-stability-ai/configs/stable-diffusion/v2-inpainting-inference.yaml"
)
config_sdxl = "repositories/generative-models/configs/inference/sd_xl_base.yaml"
config_sdxl_refiner = "repositories/generative-models/configs/inference/sd_xl_refiner.yaml"
config_sdxl_inpainting = "configs/sd_xl_inpaint.yaml"
config_depth_model = "repositories/stable-diffusion-stability-ai/configs/stable-diffusion/v2-midas-inference.yaml"
config_unclip = (
    "repositories/stable-diffusion-stability-ai/configs/stable-diffusion/v2-1-stable-unclip-l-inference.yaml"
)
config_unopenclip = (
    "repositories/stable-diffusion-stability-ai/configs/stable-diffusion/v2-1-stable-unclip-h-inference.yaml"
)
config_inpainting = "configs/v1-inpainting-inference.yaml"
config_instruct_pix2pix = "configs/instruct-pix2pix.yaml"
config_alt_diffusion = "configs/alt-diffusion-inference.yaml"
config_alt_diffusion_m18 = "configs/alt-diffusion-m18-inference.yaml"
config_sd3 = "configs/sd3-inference.yaml"


def guess_model_config_from_state_dict(sd, filename):
    sd2_cond_proj_weight = sd.get("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", None)
    diffusion_model_input = sd.get("model.diffusion_model.input_blocks.0.0.weight", None)
    sd2_variations_weight = sd.get("embedder.model.ln_final.weight", None)

    if "model.diffusion_model.x_embedder.proj.weight" in sd:
        return config_sd3
    if sd.get("conditioner.embedders.1.model.ln_final.weight", None) is not None:
        return config_sdxl_inpainting if diffusion_model_input.shape[1] == 9 else config_sdxl
    if sd.get("conditioner.embedders.0.model.ln_final.weight", None) is not None:
        return config_sdxl_refiner
    elif sd.get("depth_model.model.pretrained.act_postprocess3.0.project.0.bias", None) is not None:
        return config_depth_model
    elif sd2_variations_weight is not None and sd2_variations_weight.shape[0] == 768:
        return config_unclip
    elif sd2_variations_weight is not None and sd2_variations_weight.shape[0] == 1024:
        return config_unopenclip
    if sd2_cond_proj_weight is not None and sd2_cond_proj_weight.shape[1] == 1024:
        return config_sd2_inpainting if diffusion_model_input.shape[1] == 9 else config_sd2
    if diffusion_model_input is not None:
        if diffusion_model_input.shape[1] == 9:
            return config_inpainting
        if diffusion_model_input.shape[1] == 8:
            return config_instruct_pix2pix
    if sd.get("cond_stage_model.roberta.embeddings.word_embeddings.weight", None) is not None:
        if sd.get("cond_stage_model.transformation.weight").size()[0] == 1024:
            return config_alt_diffusion_m18
        return config_alt_diffusion
    return config_default


def find_checkpoint_config(state_dict, info):
    if info is None:
        return guess_model_config_from_state_dict(state_dict, "")
    config = find_checkpoint_config_near_filename(info)
    if config is not None:
        return config
    return guess_model_config_from_state_dict(state_dict, info.filename)


def find_checkpoint_config_near_filename(info):
    if info is None:
        return None
    config = f"{os.path.splitext(info.filename)[0]}.yaml"
    if os.path.exists(config):
        return config
    return None
