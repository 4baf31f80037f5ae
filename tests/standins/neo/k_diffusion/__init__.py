"""Neo's vendored k-diffusion (modules_forge/packages/k_diffusion): for the samplers A1111 1.10.1 has too, the
update rules are the same; the A1111 stand-in's k_diffusion/__init__.py runs here."""

from standin_reuse import reuse

reuse(globals(), "k_diffusion/__init__.py")
