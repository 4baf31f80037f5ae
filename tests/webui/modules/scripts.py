"""Mirrors modules/scripts.py (1.10.1): the Script base class, AlwaysVisible, script loading
(module name = file name, extension folder on sys.path while loading, every Script subclass in
the module registered) and the ScriptRunner dispatch: processing hooks go to always-visible
scripts only, and only to those whose *class* overrides the method."""

from __future__ import annotations

import os
import re
import sys
from collections import namedtuple

import gradio as gr

from modules import script_callbacks, script_loading

AlwaysVisible = object()
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data: list = []
current_basedir = None


class PostSampleArgs:
    def __init__(self, samples):
        self.samples = samples


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_hr(self, p, *args):
        pass

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"


def basedir():
    return current_basedir


def load_scripts(extension_dirs):
    """Load ``<dir>/scripts/*.py`` of each extension dir, as the webui does at start-up and on reload."""
    global current_basedir
    scripts_data.clear()
    script_callbacks.clear_callbacks()
    syspath = sys.path
    for base in extension_dirs:
        folder = os.path.join(base, "scripts")
        for filename in sorted(os.listdir(folder)):
            path = os.path.join(folder, filename)
            if not filename.endswith(".py"):
                continue
            try:
                sys.path = [base, *sys.path]
                current_basedir = base
                module = script_loading.load_module(path)
                for script_class in module.__dict__.values():
                    if isinstance(script_class, type) and issubclass(script_class, Script):
                        scripts_data.append(ScriptClassData(script_class, path, base, module))
            finally:
                sys.path = syspath
                current_basedir = None


class ScriptRunner:
    def __init__(self):
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []
        self.titles = []
        self.title_map = {}
        self.infotext_fields = []
        self.paste_field_names = []
        self.inputs = [None]

    def initialize_scripts(self, is_img2img):
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        for script_data in scripts_data:
            script = script_data.script_class()
            script.filename = script_data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)

    def create_script_ui(self, script):
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        controls = script.ui(script.is_img2img)
        if controls is None:
            return
        script.name = script.title().lower()
        script.controls = controls
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names
        self.inputs += controls
        script.args_to = len(self.inputs)

    def setup_ui(self):
        """Always-visible UIs, then the Script dropdown (slot 0) and the selectable scripts' UIs."""
        self.titles = [script.title() for script in self.selectable_scripts]
        self.inputs = [None]
        with gr.Blocks():
            for script in self.alwayson_scripts:
                self.create_script_ui(script)
            dropdown = gr.Dropdown(label="Script", elem_id="script_list", choices=["None", *self.titles], value="None",
                                   type="index")  # fmt: skip
            self.inputs[0] = dropdown
            for script in self.selectable_scripts:
                self.create_script_ui(script)
        self.title_map = {title.lower(): script for title, script in zip(self.titles, self.selectable_scripts)}
        self.infotext_fields.append((dropdown, lambda x: gr.update(value=x.get("Script", "None"))))
        return self.inputs

    def run(self, p, *args):
        script_index = args[0]
        if script_index == 0 or script_index is None:
            return None
        script = self.selectable_scripts[script_index - 1]
        if script is None:
            return None
        script_args = args[script.args_from : script.args_to]
        return script.run(p, *script_args)

    def list_scripts_for_method(self, method_name):
        return [
            s for s in self.alwayson_scripts if getattr(s.__class__, method_name) is not getattr(Script, method_name)
        ]

    def _each(self, method_name, p, *extra, **kwargs):
        for script in self.list_scripts_for_method(method_name):
            script_args = p.script_args[script.args_from : script.args_to]
            getattr(script, method_name)(p, *extra, *script_args, **kwargs)

    def setup_scrips(self, p, *, is_ui=True):
        for script in self.list_scripts_for_method("setup"):
            if not is_ui and script.setup_for_ui_only:
                continue
            script.setup(p, *p.script_args[script.args_from : script.args_to])

    def before_process(self, p):
        self._each("before_process", p)

    def process(self, p):
        self._each("process", p)

    def process_before_every_sampling(self, p, **kwargs):
        self._each("process_before_every_sampling", p, **kwargs)

    def before_hr(self, p):
        self._each("before_hr", p)

    def post_sample(self, p, ps):
        self._each("post_sample", p, ps)

    def postprocess(self, p, processed):
        self._each("postprocess", p, processed)


scripts_txt2img: ScriptRunner = ScriptRunner()
scripts_img2img: ScriptRunner = ScriptRunner()
