"""Shared code of the book *Fragile Yet Robust*: every chapter imports its machinery from here.

Modules: ``config`` (scale, device, seeds), ``data`` (data sets), ``models``, ``train`` (fit, evaluate,
cached pretrained models), ``geometry`` (margins, distances to the decision boundary), ``stats``,
``plotting`` (the book's figure style) and ``claims`` (verified statements).
"""

from . import claims, config, data, geometry, models, plotting, stats, train

__all__ = ["claims", "config", "data", "geometry", "models", "plotting", "stats", "train"]
__version__ = "0.1.0"
