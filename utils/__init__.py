"""Shared code of the book *Fragile Yet Robust*: every chapter imports its machinery from here.

The import graph is one-way, from the foundations up (the README's module table says what each holds):

- foundations: ``checks`` (argument validators), ``config`` (scale, seed, device, generators, folders),
  ``stats``, ``plotting``, ``budgets`` (perturbation sizes and uniform directions), ``hypotheses``;
- data and models: ``datafiles``, ``data``, ``models``, ``checkpoints``, ``outputs`` (logits, predictions,
  accuracy, loss), ``train`` (fit, the book's trained models);
- perturbations, one shape each (``perturbations``: δ for inputs, a direction for weights, and the
  registries of named methods): ``geometry``, ``noise``, ``attacks`` in input space; ``weights``,
  ``directions``, ``curvature`` in weight space;
- quantization, one vocabulary (``quant.QuantSpec``): ``quant``, ``ptq``, ``rounding``, ``bitflips``,
  ``equalization`` and ``compensation`` (bias correction, equalization, AdaRound, GPTQ), ``qat``, ``deploy``;
- records of what the chapters found: ``recordformat``, ``records``, ``claims``, ``predictions``, ``evidence``,
  ``reproducibility``;
- the chapters: ``setups`` (a chapter's first and last steps), ``explorers`` (interactive figures), and
  ``contents`` (the chapter list) and ``utils.chapters``, one module per chapter with its setups, drivers
  and explorer (imported by the chapter that uses it).
"""


from . import (
    attacks,
    bitflips,
    budgets,
    checkpoints,
    checks,
    claims,
    compensation,
    config,
    contents,
    curvature,
    data,
    datafiles,
    deploy,
    directions,
    equalization,
    evidence,
    explorers,
    geometry,
    hypotheses,
    models,
    noise,
    outputs,
    perturbations,
    plotting,
    predictions,
    ptq,
    qat,
    quant,
    recordformat,
    records,
    reproducibility,
    rounding,
    setups,
    stats,
    train,
    weights,
)

__all__ = [
    "attacks",
    "bitflips",
    "budgets",
    "checkpoints",
    "checks",
    "claims",
    "compensation",
    "config",
    "contents",
    "curvature",
    "data",
    "datafiles",
    "deploy",
    "directions",
    "equalization",
    "evidence",
    "explorers",
    "geometry",
    "hypotheses",
    "models",
    "noise",
    "outputs",
    "perturbations",
    "plotting",
    "predictions",
    "ptq",
    "qat",
    "quant",
    "recordformat",
    "records",
    "reproducibility",
    "rounding",
    "setups",
    "stats",
    "train",
    "weights",
]
__version__ = "0.3.0"
