"""Forge Neo's modules/devices.py is AUTOMATIC1111 1.10.1's on every path the extension and this stand-in use: the
A1111 stand-in's file runs here (see tests/standin_reuse.py)."""

from standin_reuse import reuse

reuse(globals(), "modules/devices.py")
