"""Mirrors the part of modules/launch_utils.py (Neo) that tells the webui apart: ``git_tag()`` is the Forge version."""

from modules_forge import forge_version


def git_tag():
    return forge_version.version
