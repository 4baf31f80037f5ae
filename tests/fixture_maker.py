"""Random-weight files in the published layouts, with golden outputs, for a clone with no fixture folder beside it.

The project's own machines have reference fixtures made outside the package (``shared/fixtures``); a bare clone
makes its own here, in the same folder layout, file names and manifest format, so the same tests read either. The
golden outputs come from :func:`reference_interposer` and :func:`reference_upscaler`: the published layouts written
out as plain ``torch.nn.functional`` calls on the state dict's keys, independently of ``interposer.model`` and
``interposer.upscaler_model``, so a layout mistake in the package (a shifted index, a missing activation, another
resampling) still fails the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

INTERPOSER_CASES = {  # case: (ch_in, ch_out, ch_mid, scale, blocks), input shape
    "xl-to-v1_random": ((4, 4, 64, 1.0, 12), (2, 4, 24, 32)),
    "fx-to-v1_random": ((16, 4, 64, 1.0, 12), (2, 16, 24, 32)),
    "ca-to-v1_random": ((4, 4, 64, 0.5, 12), (2, 4, 24, 32)),
}
UPSCALER_CASES = {  # case: factor, input shape
    "latent-upscaler-v2.1_SDv1-x1.25_random": (1.25, (1, 4, 16, 24)),
    "latent-upscaler-v2.1_SDxl-x1.5_random": (1.5, (2, 4, 18, 14)),
    "latent-upscaler-v2.1_SDxl-x2.0_random": (2.0, (1, 4, 13, 17)),
}
UPSCALER_CONVS = 16


def _conv3(sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], padding=1)


def _bn(sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"], sd[f"{prefix}.weight"],
                        sd[f"{prefix}.bias"], training=False, eps=1e-5)  # fmt: skip


def _long(sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    x = F.silu(_conv3(sd, f"{prefix}.0", x))
    x = F.silu(_conv3(sd, f"{prefix}.2", x))
    return _conv3(sd, f"{prefix}.4", x)


def reference_interposer(sd: dict, x: torch.Tensor, scale: float, blocks: int) -> torch.Tensor:
    """city96's v4 interposer in eval mode: head (short + long, ReLU), nearest resample, residual blocks on the
    normalised input, BatchNorm, SiLU, tail conv."""
    x = F.relu(_long(sd, "head.long", x) + _conv3(sd, "head.short", x))
    if scale != 1.0:
        x = F.interpolate(x, scale_factor=scale, mode="nearest")
    for i in range(1, blocks + 1):
        normed = _bn(sd, f"core.{i}.norm", x)
        x = F.relu(_long(sd, f"core.{i}.long", normed) + normed)
    x = F.silu(_bn(sd, f"core.{blocks + 1}", x))
    return _conv3(sd, "tail", x)


def reference_upscaler(sd: dict, x: torch.Tensor, factor: float) -> torch.Tensor:
    """city96's SD-Latent-Upscaler v2.1: conv, ReLU, nearest upsample, ReLU, 16 x (conv, ReLU), conv."""
    x = F.relu(_conv3(sd, "sequential.0", x))
    x = F.relu(F.interpolate(x, scale_factor=factor, mode="nearest"))
    for index in range(4, 4 + 2 * UPSCALER_CONVS, 2):
        x = F.relu(_conv3(sd, f"sequential.{index}", x))
    return _conv3(sd, f"sequential.{4 + 2 * UPSCALER_CONVS}", x)


def _conv_params(gen: torch.Generator, ch_in: int, ch_out: int, gain: float = 1.0) -> tuple[torch.Tensor, ...]:
    bound = gain / (ch_in * 9) ** 0.5
    weight = (torch.rand(ch_out, ch_in, 3, 3, generator=gen) * 2 - 1) * bound
    return weight, (torch.rand(ch_out, generator=gen) * 2 - 1) * bound


def _interposer_state(gen: torch.Generator, ch_in: int, ch_out: int, ch_mid: int, blocks: int) -> dict:
    sd: dict[str, torch.Tensor] = {}

    # Scales that keep activations alive but bounded through twelve blocks (output std about 0.3-0.4).
    def conv(prefix: str, a: int, b: int) -> None:
        sd[f"{prefix}.weight"] = 0.05 * torch.randn(b, a, 3, 3, generator=gen)
        sd[f"{prefix}.bias"] = 0.1 * torch.randn(b, generator=gen)

    def norm(prefix: str) -> None:
        sd[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(ch_mid, generator=gen)
        sd[f"{prefix}.bias"] = 0.1 * torch.randn(ch_mid, generator=gen)
        sd[f"{prefix}.running_mean"] = 0.1 * torch.randn(ch_mid, generator=gen)
        sd[f"{prefix}.running_var"] = 1 + 0.5 * torch.rand(ch_mid, generator=gen)
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)

    conv("head.short", ch_in, ch_mid)
    for i, (a, b) in zip((0, 2, 4), ((ch_in, ch_mid), (ch_mid, ch_mid), (ch_mid, ch_mid)), strict=True):
        conv(f"head.long.{i}", a, b)
    for block in range(1, blocks + 1):
        norm(f"core.{block}.norm")
        for i in (0, 2, 4):
            conv(f"core.{block}.long.{i}", ch_mid, ch_mid)
    norm(f"core.{blocks + 1}")
    conv("tail", ch_mid, ch_out)
    return sd


def _upscaler_state(gen: torch.Generator) -> dict:
    sd: dict[str, torch.Tensor] = {}
    layers = [(0, 4, 64), *((i, 64, 64) for i in range(4, 4 + 2 * UPSCALER_CONVS, 2)), (4 + 2 * UPSCALER_CONVS, 64, 4)]
    for index, a, b in layers:
        sd[f"sequential.{index}.weight"], sd[f"sequential.{index}.bias"] = _conv_params(gen, a, b, gain=2.4)
    return sd


def _entries(sd: dict) -> list:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in sd.items()]


def make_fixtures(root: Path) -> Path:
    """``root/interposer_v4`` and ``root/latent_upscaler_v2``, made once (a manifest marks a finished folder)."""
    made = root / "interposer_v4" / "manifest.json", root / "latent_upscaler_v2" / "manifest.json"
    if all(path.exists() for path in made):
        return root
    gen = torch.Generator().manual_seed(20261207)
    cases = {}
    folder = root / "interposer_v4"
    folder.mkdir(parents=True, exist_ok=True)
    for case, ((ch_in, ch_out, ch_mid, scale, blocks), shape) in INTERPOSER_CASES.items():
        sd = _interposer_state(gen, ch_in, ch_out, ch_mid, blocks)
        x = torch.randn(*shape, generator=gen)
        y = reference_interposer(sd, x, scale, blocks)
        constructor = {"ch_in": ch_in, "ch_out": ch_out, "ch_mid": ch_mid, "scale": scale, "blocks": blocks}
        save_file(sd, str(folder / f"{case}.safetensors"), metadata={"constructor": json.dumps(constructor)})
        save_file({"input": x, "output": y.contiguous()}, str(folder / f"{case}_io.safetensors"))
        cases[case] = {"constructor": constructor, "state_dict": _entries(sd), "input_shape": list(shape),
                       "output_shape": list(y.shape)}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"made_by": __name__, "cases": cases}, indent=1))
    cases = {}
    folder = root / "latent_upscaler_v2"
    folder.mkdir(parents=True, exist_ok=True)
    for case, (factor, shape) in UPSCALER_CASES.items():
        sd = _upscaler_state(gen)
        x = torch.randn(*shape, generator=gen)
        y = reference_upscaler(sd, x, factor)
        save_file(sd, str(folder / f"{case}.safetensors"))
        save_file({"input": x, "output": y.contiguous()}, str(folder / f"{case}_io.safetensors"))
        cases[case] = {"published_name": case.removesuffix("_random") + ".safetensors", "factor": str(factor),
                       "state_dict": _entries(sd), "input_shape": list(shape),
                       "output_shape": list(y.shape)}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"made_by": __name__, "cases": cases}, indent=1))
    return root
