"""Forge Neo runs Gradio 4.40; the names the extension uses (Checkbox, Dropdown, Radio, Textbox, Slider, HTML,
Group, Blocks and ``gr.update``) behave alike there and in A1111's Gradio 3.41 for what it does with them, so the
A1111 stand-in's gradio runs here. It has no ``Component.update`` (removed in Gradio 4) and no ``gr.Box``."""

from standin_reuse import reuse

reuse(globals(), "gradio/__init__.py")
