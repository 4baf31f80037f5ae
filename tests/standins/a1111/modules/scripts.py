"""Mirrors modules/scripts.py (1.10.1): the Script base class, AlwaysVisible, script loading and the
ScriptRunner dispatch.

``load_scripts()`` takes no argument, as in the webui: it lists ``<paths.script_path>/scripts/*.py``
then each active extension's ``scripts/*.py`` (``modules.extensions``), loads each file as a module
named after the file, with the extension folder on ``sys.path`` while loading, reports a file that
fails to load and goes on, registers every Script subclass, and replaces ``scripts_txt2img`` and
``scripts_img2img`` with new runners. Processing hooks go to always-visible scripts only, to those whose
*class* overrides the method, and each call is wrapped as in the webui: an exception is reported
(``errors.report``) and the next script runs. ``run`` (the dropdown script) is not wrapped.
Left out: metadata.ini ordering, ``modules/processing_scripts`` (the webui's own Refiner/Seed/Sampler
accordions; tests set ``p.refiner_checkpoint`` and friends as the API does) and user callback sorting."""

from __future__ import annotations

import os
import re
import sys
from collections import namedtuple

import gradio as gr

from modules import errors, extensions, paths, script_callbacks, script_loading

AlwaysVisible = object()
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
scripts_data: list = []
current_basedir = None


class MaskBlendArgs:
    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None):
        self.current_latent = current_latent
        self.nmask = nmask
        self.init_latent = init_latent
        self.mask = mask
        self.blended_latent = blended_latent
        self.denoiser = denoiser
        self.is_final_blend = denoiser is None
        self.sigma = sigma


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

    def on_mask_blend(self, p, mba: MaskBlendArgs, *args):
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


def list_scripts(scriptdirname, extension, *, include_extensions=True):
    scripts_list = []
    root_script_basedir = os.path.join(paths.script_path, scriptdirname)
    if os.path.exists(root_script_basedir):
        for filename in sorted(os.listdir(root_script_basedir)):
            if not os.path.isfile(os.path.join(root_script_basedir, filename)):
                continue
            if os.path.splitext(filename)[1].lower() != extension:
                continue
            scripts_list.append(ScriptFile(paths.script_path, filename, os.path.join(root_script_basedir, filename)))
    if include_extensions:
        for ext in extensions.active():
            scripts_list += [x for x in ext.list_files(scriptdirname, extension) if os.path.isfile(x.path)]
    return scripts_list


def load_scripts():
    """Load the webui's and every active extension's scripts, as the webui does at start-up and on reload."""
    global current_basedir, scripts_txt2img, scripts_img2img
    scripts_data.clear()
    script_callbacks.clear_callbacks()
    scripts_list = list_scripts("scripts", ".py")
    syspath = sys.path

    def register_scripts_from_module(module):
        for script_class in module.__dict__.values():
            if isinstance(script_class, type) and issubclass(script_class, Script):
                scripts_data.append(ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module))

    for scriptfile in scripts_list:
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir, *sys.path]
            current_basedir = scriptfile.basedir
            module = script_loading.load_module(scriptfile.path)
            register_scripts_from_module(module)
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
        finally:
            sys.path = syspath
            current_basedir = paths.script_path

    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()


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
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                getattr(script, method_name)(p, *extra, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {method_name}: {script.filename}", exc_info=True)

    def setup_scrips(self, p, *, is_ui=True):
        for script in self.list_scripts_for_method("setup"):
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script.setup(p, *p.script_args[script.args_from : script.args_to])
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)

    def before_process(self, p):
        self._each("before_process", p)

    def process(self, p):
        self._each("process", p)

    def before_process_batch(self, p, **kwargs):
        self._each("before_process_batch", p, **kwargs)

    def process_batch(self, p, **kwargs):
        self._each("process_batch", p, **kwargs)

    def process_before_every_sampling(self, p, **kwargs):
        self._each("process_before_every_sampling", p, **kwargs)

    def before_hr(self, p):
        self._each("before_hr", p)

    def post_sample(self, p, ps):
        self._each("post_sample", p, ps)

    def on_mask_blend(self, p, mba):
        self._each("on_mask_blend", p, mba)

    def postprocess(self, p, processed):
        self._each("postprocess", p, processed)


scripts_txt2img: ScriptRunner = ScriptRunner()
scripts_img2img: ScriptRunner = ScriptRunner()
