"""Shared code of the book *Fragile Yet Robust*: every chapter imports its machinery from here.

Modules: ``config`` (scale, device, seeds), ``data`` (data sets), ``models``, ``train`` (fit, evaluate,
cached pretrained models), ``geometry`` (margins, distances to the decision boundary), ``stats``,
``attacks`` (input perturbations), ``weights`` (weight perturbations, curvature, bit flips), ``quant``
(quantization), ``plotting`` (the book's figure style) and ``claims`` (verified statements).
"""

from . import attacks, claims, config, data, geometry, models, plotting, quant, stats, train, weights

__all__ = [
    "attacks", "claims", "config", "data", "geometry", "models", "plotting", "quant", "stats", "train", "weights",
]
__version__ = "0.1.0"
