"""Mirrors modules_forge/forge_version.py (Neo @ 3df257a): the version tag ``launch_utils.git_tag()`` returns."""

version = "neo"
