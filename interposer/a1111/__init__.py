"""The webui side of the interposer, written against duck-typed webui objects.

Nothing here imports the webui: ``scripts/latent_interposer.py`` passes in the objects
(``p``, ``shared.opts``, models) and this package decides what to do with them, so the logic
can be tested without the webui.
"""
