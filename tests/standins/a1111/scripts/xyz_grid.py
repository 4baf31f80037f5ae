"""Mirrors scripts/xyz_grid.py (1.10.1): AxisOption/AxisOptionTxt2Img, ``axis_options``, and one
cell: ``pc = copy(p)`` (shallow), apply the axis value, ``process_images(pc)``. Loaded by the tests
as a script module named "xyz_grid.py", as the webui's loader names it."""

from __future__ import annotations

from copy import copy

from modules import processing, scripts, shared


def format_value_add_label(p, opt, x):
    return f"{opt.label}: {x}"


class AxisOption:
    def __init__(self, label, type, apply, format_value=format_value_add_label, confirm=None, cost=0.0, choices=None,
                 prepare=None):  # fmt: skip
        self.label = label
        self.type = type
        self.apply = apply
        self.format_value = format_value
        self.confirm = confirm
        self.cost = cost
        self.prepare = prepare
        self.choices = choices


class AxisOptionImg2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = False


def apply_field(field):
    def fun(p, x, xs):
        setattr(p, field, x)

    return fun


axis_options = [
    AxisOption("Nothing", str, lambda p, x, xs: None),
    AxisOptionTxt2Img(
        "Hires upscaler",
        str,
        apply_field("hr_upscaler"),
        choices=lambda: [*shared.latent_upscale_modes, *[x.name for x in shared.sd_upscalers]],
    ),
]


def run_cells(p, axis, values):
    """The X axis of an X/Y/Z plot: one ``process_images(copy(p))`` per value."""
    if axis.confirm:
        axis.confirm(p, values)
    results = []
    for value in values:
        pc = copy(p)
        pc.styles = pc.styles[:]
        axis.apply(pc, axis.type(value), values)
        results.append(processing.process_images(pc))
    return results


class Script(scripts.Script):
    def title(self):
        return "X/Y/Z plot"

    def ui(self, is_img2img):
        self.current_axis_options = [x for x in axis_options if type(x) == AxisOption or x.is_img2img == is_img2img]  # noqa: E721
        return []
