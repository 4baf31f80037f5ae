"""Stand-in for the few gradio 3.41 (A1111 1.10's pin) names the extension uses.

Components keep their constructor kwargs and ``value``; layout blocks are context managers.
"""

from __future__ import annotations

_created: list = []


class Component:
    def __init__(self, value=None, label=None, elem_id=None, **kwargs):
        self.value = value
        self.label = label
        self.elem_id = elem_id
        self.kwargs = kwargs
        _created.append(self)


class Checkbox(Component):
    pass


class Dropdown(Component):
    pass


class Radio(Component):
    pass


class Textbox(Component):
    pass


class Slider(Component):
    pass


class Number(Component):
    pass


class HTML(Component):
    pass


class Markdown(Component):
    pass


class _Block:
    def __init__(self, *args, **kwargs):
        self.kwargs = kwargs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Blocks(_Block):
    pass


class Group(_Block):
    pass


class Row(_Block):
    pass


class Column(_Block):
    pass


class Accordion(_Block):
    pass


def update(**kwargs):
    return {"__type__": "update", **kwargs}
