"""Mirrors modules/sd_samplers_timesteps_impl.py (Neo @ 3df257a), which has ``ddim`` and ``plms`` only: both are
AUTOMATIC1111 1.10.1's loops (ts_impl.py 9-38 and 41-100: the same update rules, the same ``randn_like`` draw per
DDIM step, PLMS's ``old_eps`` of up to three returned eps and its second call at ``x_prev`` in the first step), so
the A1111 stand-in's file runs here (see tests/standin_reuse.py); A1111's DDIM CFG++ and timesteps UniPC, which Neo
does not have, are removed after it."""

from standin_reuse import reuse

reuse(globals(), "modules/sd_samplers_timesteps_impl.py")

del ddim_cfgpp, unipc
