"""Mirrors launch.py / modules/launch_utils.py (1.10.1) for install.py: ``args.skip_install``,
``is_installed`` (distribution, then importable module) and ``run_pip`` (a no-op with
--skip-install). Test hooks: WEBUI_STUB_PIP_LOG records pip commands instead of running them."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shlex
import sys

parser = argparse.ArgumentParser(add_help=False)
parser.add_argument("--skip-install", action="store_true")
args, _ = parser.parse_known_args(sys.argv[1:] + shlex.split(os.environ.get("COMMANDLINE_ARGS", "")))


def is_installed(package):
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        try:
            return importlib.util.find_spec(package) is not None
        except ModuleNotFoundError:
            return False


def run_pip(command, desc=None, live=False):
    if args.skip_install:
        return
    with open(os.environ["WEBUI_STUB_PIP_LOG"], "a") as log:
        log.write(f"pip {command} # Installing {desc}\n")
