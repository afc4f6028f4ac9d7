"""Shared code of the book *Fragile Yet Robust*: every chapter imports its machinery from here.

The import graph is one-way, from the foundations up:

- ``checks`` (argument validators), ``config`` (scale, seed, device, generators, folders), ``stats``,
  ``plotting``, ``claims`` (verified statements and their records);
- ``datafiles`` (safe readers of the image formats), ``data`` (data sets), ``models``, ``checkpoints``
  (the verified cache of trained weights), ``train`` (fit, evaluate, the book's trained models);
- input space: ``geometry`` (margins, distances to the boundary), ``noise`` (random perturbations of an
  exact size), ``attacks`` (FGSM, PGD, DeepFool and the measures built on them);
- weight space: ``weights`` (the model as a function of its parameters, directions, slices),
  ``curvature`` (Hessian-vector products, trace, diagonal, eigenvalues);
- quantization: ``quant`` (the quantizer), ``bitflips`` (int8 codes and bit flips), ``rounding``
  (quantization as a weight perturbation), ``qat`` (quantization-aware training), ``deploy`` (ONNX
  Runtime int8 inference);
- ``records`` (reading claim records back, across seeds), ``reproducibility`` (claims across seeds and
  the margins of their limits), ``evidence`` (the synthesis's verdicts, computed
  from the records), ``experiments`` (drivers of multi-step
  measurements), ``explorers`` (interactive figures with static counterparts), ``setups`` (which models
  each chapter studies, and each chapter's first step).
"""

from . import (
    attacks,
    bitflips,
    checkpoints,
    checks,
    claims,
    config,
    curvature,
    data,
    datafiles,
    deploy,
    evidence,
    experiments,
    explorers,
    geometry,
    models,
    noise,
    plotting,
    qat,
    quant,
    records,
    reproducibility,
    rounding,
    setups,
    stats,
    train,
    weights,
)

__all__ = [
    "attacks", "bitflips", "checkpoints", "checks", "claims", "config", "curvature", "data", "datafiles", "deploy",
    "evidence", "experiments", "explorers", "geometry", "models", "noise", "plotting", "qat", "quant", "records",
    "reproducibility", "rounding", "setups", "stats", "train", "weights",
]
__version__ = "0.2.0"
