"""The webui side of the interposer: one webui-neutral decision layer, one small adapter per webui.

Nothing here imports a webui: ``scripts/latent_interposer.py`` passes in the objects (``p``, ``shared.opts``,
models, the sampler classes) and this package decides what to do with them, so the logic is tested without a
webui, against stand-ins of each.

* decisions, the same on every webui: :mod:`.generation` (hires fix: which families a pass crosses, what to
  convert or upscale, what to say), :mod:`.preflight` (what a generation will need, checked when it starts:
  samplers, families, separate VAE / text-encoder files), :mod:`.refiner` (the refiner switch inside a running
  sampler), :mod:`.samplers` (what a sampler keeps, and the one switch refusal), :mod:`.options` (settings,
  infotext), :mod:`.families` (families, checkpoint files);
* adapters, each with its webui's facts (sampler table, how it reads a model's family, its options and caches):
  :mod:`.adapter` (the interface), :mod:`.a1111` (AUTOMATIC1111 1.10), :mod:`.forge` (Forge Neo, lllyasviel's
  Forge); :mod:`.detect` picks one.
"""
