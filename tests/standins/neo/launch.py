"""Forge Neo's launch.py re-exports ``modules.launch_utils`` (``args.skip_install``, ``is_installed``, ``run_pip``) as
A1111's does for install.py: the A1111 stand-in's launch runs here."""

from standin_reuse import reuse

reuse(globals(), "launch.py")
