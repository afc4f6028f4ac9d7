"""Chapter 5, compensation without retraining: the models it studies, the methods it compares (round-to-nearest,
bias correction, cross-layer equalization, AdaRound, GPTQ, and QAT for reference), the measurements that say
why they work in the book's terms, and the published figures they are set beside."""

from __future__ import annotations

import math
import time

import pandas as pd
import torch
from torch import nn

from .. import checks, compensation, config, curvature, equalization, rounding, weights
from ..outputs import evaluate, logits, mean_loss
from ..ptq import quantize_weights, weight_names
from ..qat import prepare_qat
from ..quant import PerAxis, PerTensor, QuantSpec
from ..setups import WEIGHT_SPACE, Trained
from ..train import fit

SETUPS = WEIGHT_SPACE
METHODS = ("nearest", "bias correction", "equalization + bias correction", "AdaRound", "GPTQ", "QAT")
"""The methods of the comparison, from no compensation to retraining."""


def quantized(t: Trained, method: str, spec: QuantSpec, *, adaround_steps: int, qat_epochs: int,
              key: tuple = ()) -> nn.Module:
    """``t.model`` with its weights on the grid ``spec`` by ``method`` (one of :data:`METHODS`), fit on the
    calibration images ``t.x_fit`` (QAT: trained on ``t``'s training set, Adam at 10⁻³, batch 64, for
    ``qat_epochs`` epochs, as chapter 6 does); a copy, in eval mode."""
    checks.one_of("method", method, METHODS)
    model, x_fit = t.model, t.x_fit
    if method == "nearest":
        return quantize_weights(model, spec)
    if method == "bias correction":
        return equalization.bias_correction(model, quantize_weights(model, spec), x_fit)
    if method == "equalization + bias correction":
        balanced = equalization.equalize(model)
        return equalization.bias_correction(balanced, quantize_weights(balanced, spec), x_fit)
    if method == "AdaRound":
        return weights.applied(model, compensation.adaround(model, spec, x_fit, steps=adaround_steps))
    if method == "GPTQ":
        return weights.applied(model, compensation.gptq(model, spec, x_fit))
    out = prepare_qat(model, spec)
    fit(out, t.data, epochs=qat_epochs, lr=1e-3, batch_size=64, optimizer="adam", progress=False, device=t.x.device,
        generator=config.generator("QAT", t.setup.key, spec.bits, *key, device=t.x.device))
    return out.eval()


def compare(t: Trained, bits: int, *, adaround_steps: int, qat_epochs: int, methods: tuple[str, ...] = METHODS,
            key: tuple = ()) -> tuple[list[dict], dict[str, nn.Module]]:
    """One row per method: test accuracy and loss of ``t.model`` quantized to ``bits`` (per channel, symmetric,
    min-max: :meth:`QuantSpec.for_weights`) by it, and the seconds it took from the float model; and the
    quantized models, by method."""
    spec, rows, done = QuantSpec.for_weights(checks.integer("bits", bits, minimum=2, maximum=8)), [], {}
    for method in methods:
        start = time.perf_counter()
        done[method] = quantized(t, method, spec, adaround_steps=adaround_steps, qat_epochs=qat_epochs, key=key)
        seconds = time.perf_counter() - start
        rows.append({"model": t.setup.key, "bits": bits, "method": method, "accuracy": evaluate(done[method], t.x, t.y),
                     "loss": mean_loss(done[method], t.x, t.y), "seconds": seconds})
    return rows, done


def layer_errors(t: Trained, bits: int, directions: dict[str, weights.Direction]) -> list[dict]:
    """Each layer's output error E(δ) = ½ tr(δHδᵀ), H = 2XᵀX/N on the calibration images' inputs to the layer
    in the float model, for the rounding ``directions`` (name → δ) at ``bits``."""
    stats = equalization.layer_statistics(t.model, t.x_fit)
    return [{"model": t.setup.key, "bits": bits, "layer": layer, "method": name, "output error": error}
            for name, delta in directions.items()
            for layer, error in equalization.layer_errors(t.model, delta, stats).items()]


def second_order(t: Trained, directions: dict[str, weights.Direction], x: torch.Tensor, y: torch.Tensor
                 ) -> list[dict]:
    """For each rounding direction δ: the terms gᵀδ and ½δᵀHδ of the network's loss on (x, y) (chapter 3's
    expansion, :func:`curvature.quadratic_terms`) and the measured loss change."""
    g, base = weights.gradient(t.model, x, y), mean_loss(t.model, x, y)
    rows = []
    for name, delta in directions.items():
        first, second = curvature.quadratic_terms(t.model, x, y, delta, grad_at_theta=g)
        rows.append({"model": t.setup.key, "method": name, "gᵀδ": first, "½δᵀHδ": second,
                     "measured ΔL": mean_loss(weights.applied(t.model, delta), x, y) - base})
    return rows


def curvature_cost(t: Trained, bits: tuple[int, ...], *, n_probes: int,
                   generator: torch.Generator | None = None) -> list[dict]:
    """Round-to-nearest on per-tensor and per-channel grids of each of ``bits``, before and after cross-layer
    equalization: the curvature's prediction Σᵢ Δᵢ²Hᵢᵢ/24 (:func:`rounding.predicted_increase`, each model with
    its own Hessian diagonal, :func:`curvature.hessian_diagonal` on the test images, ``n_probes`` probes) and the
    measured loss change."""
    rows = []
    for name, model in (("original", t.model), ("equalized", equalization.equalize(t.model))):
        diag, _ = curvature.hessian_diagonal(model, t.x, t.y, n_probes=n_probes, generator=generator)
        base = mean_loss(model, t.x, t.y)
        for b in bits:
            for granularity in (PerTensor(), PerAxis(0)):
                spec = QuantSpec.for_weights(b, granularity=granularity)
                rows.append({"model": t.setup.key, "weights": name, "grid": "per channel" if spec.per_channel
                             else "per tensor", "bits": b,
                             "predicted Σ Δ²H/24": rounding.predicted_increase(diag, rounding.step_sizes(model, spec)),
                             "measured ΔL": mean_loss(quantize_weights(model, spec), t.x, t.y) - base})
    return rows


def exactness(t: Trained, bits: int) -> dict[str, float]:
    """How exact the two closed-form steps are on ``t``: the largest change of a logit on the test images after
    cross-layer equalization, relative to the largest logit; and, after bias correction of round-to-nearest at
    ``bits``, the largest remaining shift of a layer's mean output on the calibration images (after its batch
    norm, for a layer without a bias), relative to the largest shift before it."""
    z = logits(t.model, t.x)
    moved = (logits(equalization.equalize(t.model), t.x) - z).abs().max() / z.abs().max()
    rounded = quantize_weights(t.model, bits)
    target = equalization.output_means(t.model, t.x_fit, through_norms=True)
    shift = {name: equalization.output_means(m, t.x_fit, through_norms=True) for name, m in (
        ("before", rounded), ("after", equalization.bias_correction(t.model, rounded, t.x_fit)))}
    largest = {k: max((v[n] - target[n]).abs().max().item() for n in target) for k, v in shift.items()}
    return {"equalization: largest |Δ logit| / largest |logit|": moved.item(),
            "bias correction: largest remaining mean shift / largest before": largest["after"] / largest["before"],
            "largest mean shift before bias correction": largest["before"]}


def equalization_table(t: Trained, bits: int) -> list[dict]:
    """Data-free quantization's comparison at ``bits``: per-tensor round-to-nearest, per-channel, and per-tensor
    after cross-layer equalization, without and with bias correction — test accuracy and loss."""
    balanced, x_fit = equalization.equalize(t.model), t.x_fit
    tensor, channel = QuantSpec.for_weights(bits, granularity=PerTensor()), QuantSpec.for_weights(bits)
    variants = {
        "per tensor": quantize_weights(t.model, tensor),
        "per tensor + bias correction": equalization.bias_correction(t.model, quantize_weights(t.model, tensor), x_fit),
        "per channel": quantize_weights(t.model, channel),
        "equalization, per tensor": quantize_weights(balanced, tensor),
        "equalization, per tensor + bias correction": equalization.bias_correction(
            balanced, quantize_weights(balanced, tensor), x_fit)}
    return [{"model": t.setup.key, "bits": bits, "variant": name, "accuracy": evaluate(m, t.x, t.y),
             "loss": mean_loss(m, t.x, t.y)} for name, m in variants.items()]


def first_layer(t: Trained, spec: QuantSpec, *, n_draws: int, adaround_steps: int,
                generator: torch.Generator | None = None) -> dict[str, float]:
    """AdaRound's Table 1 experiment (Nagel et al. 2020) on ``t``: only the first layer rounded on ``spec``'s
    grid — to nearest, stochastically (``n_draws`` draws: mean and standard deviation of the test accuracy,
    the best draw by test accuracy as in the paper, the draw with the lowest calibration loss scored on the
    test images, and the share of draws whose test loss is below nearest's), by AdaRound and by GPTQ."""
    n_draws = checks.integer("n_draws", n_draws, minimum=2)
    first = weight_names(t.model)[:1]
    near = quantize_weights(t.model, spec, layers=first)
    draws = [quantize_weights(t.model, spec.but(rounding="stochastic"), layers=first, generator=generator)
             for _ in range(n_draws)]
    acc = torch.tensor([evaluate(m, t.x, t.y) for m in draws])
    loss = torch.tensor([mean_loss(m, t.x, t.y) for m in draws])
    chosen = draws[int(torch.tensor([mean_loss(m, t.x_fit, t.y_fit) for m in draws]).argmin())]
    ada = weights.applied(t.model, compensation.adaround(t.model, spec, t.x_fit, layers=first, steps=adaround_steps))
    gptq = weights.applied(t.model, compensation.gptq(t.model, spec, t.x_fit, layers=first))
    return {"float": evaluate(t.model, t.x, t.y), "nearest": evaluate(near, t.x, t.y),
            "stochastic, mean": acc.mean().item(), "stochastic, sd": acc.std().item(),
            "best stochastic (on test)": acc.max().item(), "best stochastic (chosen on training images)":
            evaluate(chosen, t.x, t.y), "AdaRound": evaluate(ada, t.x, t.y), "GPTQ": evaluate(gptq, t.x, t.y),
            "draws with lower loss than nearest": (loss < mean_loss(near, t.x, t.y)).float().mean().item(),
            "draws with higher accuracy than nearest": (acc > evaluate(near, t.x, t.y)).float().mean().item()}


PAPERS = [
    {"paper": "AdaRound, Table 1", "experiment": "float model", "their setting": "ResNet-18, ImageNet top-1",
     "theirs": "69.68%", "our setting": "the CNN, digits test accuracy", "key": "float"},
    {"paper": "AdaRound, Table 1", "experiment": "first layer only: round-to-nearest",
     "their setting": "4 bits", "theirs": "52.29%", "our setting": "4 bits; 2 bits", "key": "first nearest"},
    {"paper": "AdaRound, Table 1", "experiment": "first layer only: stochastic rounding, mean ± sd",
     "their setting": "over draws", "theirs": "52.06 ± 5.52%", "our setting": "over the chapter's draws",
     "key": "first stochastic"},
    {"paper": "AdaRound, Table 1", "experiment": "first layer only: best of 100 stochastic",
     "their setting": "best by the accuracy reported", "theirs": "63.06%", "our setting": "the same, on test images",
     "key": "first best"},
    {"paper": "AdaRound, Figure 1", "experiment": "share of stochastic roundings better than nearest",
     "their setting": "first layer, 4 bits", "theirs": "about half", "our setting": "by test loss",
     "key": "first half"},
    {"paper": "Krishnamoorthi 2018", "experiment": "weights per tensor vs per channel",
     "their setting": "MobileNet-v1 (70.9% float), 8-bit weights", "theirs": "0.1% vs within ½ point of float",
     "our setting": "3 bits, test accuracy: per tensor vs per channel", "key": "granularity"},
    {"paper": "Data-free quantization (abstract)", "experiment": "equalization + bias correction, per tensor",
     "their setting": "MobileNet family, 8 bits, no data", "theirs": "near the float model",
     "our setting": "3 bits, test accuracy, against float", "key": "dfq"},
    {"paper": "GPTQ (authors' repository)", "experiment": "share of round-to-nearest's excess recovered, 4 bits",
     "their setting": "LLaMa-7B, Wiki2 perplexity: nearest 6.29, GPTQ 6.09, FP16 5.68", "theirs": "33%",
     "our setting": "exp(mean test loss); a ratio of small differences at 4 bits", "key": "gptq 4"},
    {"paper": "GPTQ (authors' repository)", "experiment": "share of round-to-nearest's excess recovered, 3 bits",
     "their setting": "LLaMa-7B, Wiki2 perplexity: nearest 25.54, GPTQ 8.07, FP16 5.68", "theirs": "88%",
     "our setting": "exp(mean test loss)", "key": "gptq 3"},
]
"""Published figures beside which the chapter sets its own (``key`` names the measurement :func:`ours` gives)."""


def ours(first: pd.DataFrame, loss: pd.Series, float_loss: dict[str, float], grids: pd.DataFrame,
         float_accuracy: dict[str, float]) -> dict[str, str]:
    """Our numbers for :data:`PAPERS`, by key: from the first-layer table (:func:`first_layer`, one column per
    setting), the mean test loss per (model, bits, method) of the comparison, each float model's test loss, the
    test accuracy of :func:`equalization_table`'s variants (rows (model, bits), one column per variant) and each
    float model's test accuracy."""
    at3 = grids.xs(3, level="bits")
    def both(row: str, fmt: str) -> str:
        return "; ".join(f"{col}: {first.loc[row, col]:{fmt}}" for col in first.columns)

    def recovered(bits: int) -> str:  # (RTN − GPTQ) / (RTN − float) in exp(loss), a classifier's perplexity
        near, gptq = (loss.xs((bits, m), level=("bits", "method")).map(math.exp) for m in ("nearest", "GPTQ"))
        share = (near - gptq) / (near - pd.Series(float_loss).map(math.exp))
        return ", ".join(f"{m}: {v:.0%}" for m, v in share.items())

    return {"float": f"{first.iloc[:, 0]['float']:.2%}", "first nearest": both("nearest", ".2%"),
            "first stochastic": "; ".join(f"{c}: {first.loc['stochastic, mean', c]:.2%} ± "
                                          f"{first.loc['stochastic, sd', c]:.2%}" for c in first.columns),
            "first best": both("best stochastic (on test)", ".2%"),
            "first half": both("draws with lower loss than nearest", ".0%"),
            "granularity": ", ".join(f"{m}: {r['per tensor']:.1%} vs {r['per channel']:.1%}"
                                     for m, r in at3.iterrows()),
            "dfq": ", ".join(f"{m}: {r['equalization, per tensor + bias correction']:.1%} (float "
                             f"{float_accuracy[m]:.1%})" for m, r in at3.iterrows()),
            "gptq 4": recovered(4), "gptq 3": recovered(3)}
