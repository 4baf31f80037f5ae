"""Mirrors modules/extensions.py (1.10.1), reduced to discovery: ``list_extensions()`` scans
``extensions_builtin_dir`` then ``extensions_dir`` (one extension per sub-folder, sorted), ``active()``
lists the enabled ones and ``Extension.list_files`` finds an extension's ``scripts/*.py``. Metadata
(``metadata.ini`` ordering and requirements) and git status are left out."""

from __future__ import annotations

import os
from collections import namedtuple

from modules.paths_internal import extensions_builtin_dir, extensions_dir  # tests patch these

ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
extensions: list = []


class Extension:
    def __init__(self, name, path, enabled=True, is_builtin=False):
        self.name = name
        self.canonical_name = name.lower().strip()
        self.path = path
        self.enabled = enabled
        self.is_builtin = is_builtin

    def list_files(self, subdir, extension):
        dirpath = os.path.join(self.path, subdir)
        if not os.path.isdir(dirpath):
            return []
        res = [
            ScriptFile(self.path, filename, os.path.join(dirpath, filename)) for filename in sorted(os.listdir(dirpath))
        ]
        return [x for x in res if os.path.splitext(x.path)[1].lower() == extension and os.path.isfile(x.path)]


def active():
    return [x for x in extensions if x.enabled]


def list_extensions():
    extensions.clear()
    for dirname in [extensions_builtin_dir, extensions_dir]:
        if not os.path.isdir(dirname):
            continue
        for extension_dirname in sorted(os.listdir(dirname)):
            path = os.path.join(dirname, extension_dirname)
            if not os.path.isdir(path):
                continue
            extensions.append(Extension(extension_dirname, path, is_builtin=dirname == extensions_builtin_dir))
