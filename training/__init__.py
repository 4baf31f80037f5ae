"""Retrain, evaluate and export latent interposers: ``python -m training encode|train|eval|export``.

Built on the ``interposer`` package (model, latent spaces, weights files, TAESD, runtime);
see docs/training.md for a walk-through.
"""
