"""Mirrors modules/sd_samplers.py (1.10.1): ``create_sampler(name, model)`` by name or alias."""

from __future__ import annotations

from modules import sd_samplers_kdiffusion, sd_samplers_timesteps

all_samplers = [*sd_samplers_kdiffusion.samplers_data_k_diffusion, *sd_samplers_timesteps.samplers_data_timesteps]
all_samplers_map = {x.name: x for x in all_samplers}


def find_sampler_config(name):
    if name is None:
        return all_samplers[0]
    for config in all_samplers:
        if name == config.name or name in config.aliases:
            return config
    return None


def create_sampler(name, model):
    config = find_sampler_config(name)
    assert config is not None, f"bad sampler name: {name}"
    sampler = config.constructor(model)
    sampler.config = config
    return sampler
