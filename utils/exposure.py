"""How the whole model is exposed, measured on evaluation data after fitting on calibration data: round-to-nearest
against the worst rounding on the same grid (adversarial rounding) and a coin's (random up/down rounding), which
inputs rounding flips — their logit margins against the rounding's reach —, and bit flips in the int8 model, the
gradient-guided attack against random flips. The model passed is moved and restored bit for bit: pass a copy you
own (:func:`utils.readiness.report` does)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import bitflips, checks, config, perturbations, rounding, weights
from .geometry import logit_margin
from .outputs import logits_unchecked
from .quant import QuantSpec
from .sensitivity import outcomes_unchecked, paired_change


@config.full_precision()
def rounding_gap(work: nn.Module, fit: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                 grids: dict[int, QuantSpec], draws: int, seed: int,
                 base: tuple[torch.Tensor, torch.Tensor] | None = None) -> pd.DataFrame:
    """Whole-model rounding on each grid (``grids``: bits → spec): round-to-nearest, random up/down (``draws``
    draws; the same box as the adversary, E e² ≈ Δ²/3) and adversarial rounding fit on ``fit`` (first-order gain
    Σ|gᵢ|Δᵢ/2), as registered rounding methods; the loss change (± its standard error) and accuracy on (x, y).
    ``base``: the float model's per-sample (loss, correctness) on (x, y), if the caller has them."""
    weights.check_data(work, x, y)
    draws, seed = checks.integer("draws", draws), checks.integer("seed", seed, minimum=0)
    base, rows = base or outcomes_unchecked(work, x, y), []
    for method in perturbations.rounding_methods(("nearest", "random up/down", "adversarial")):
        gen = config.generator("readiness", "rounding", method.name, seed=seed, device=checks.model_device(work))
        for b, spec in grids.items():
            for draw in range(draws if method.name == "random up/down" else 1):
                with weights.perturbed(work, method.fn(work, spec, fit=fit, generator=gen), 1.0):
                    loss, correct = outcomes_unchecked(work, x, y)
                dl, dl_se = paired_change(base[0], loss)
                rows.append({"bits": b, "method": method.name, "draw": draw, "loss change": dl,
                             "loss change se": dl_se, "accuracy": correct.mean().item()})
    return pd.DataFrame(rows)


@config.full_precision()
def inputs_at_risk(work: nn.Module, fit: torch.Tensor, x: torch.Tensor, grids: dict[int, QuantSpec],
                   quantile: float = 0.95) -> tuple[pd.DataFrame, np.ndarray]:
    """Which inputs rounding flips: the reach r_b of b-bit rounding — the ``quantile`` of the margin lost,
    (m − m̃)⁺, over the calibration inputs ``fit`` (m = z_ŷ − max_{k≠ŷ} z_k of the float model, m̃ the same logits'
    margin after rounding) — against the evaluation inputs' margins: those with m < r_b are at risk. Returns one row
    per bit-width (reach, fractions flipped and at risk, the share of flipped inputs that were at risk and of
    at-risk inputs that flipped) and the evaluation inputs' margins."""
    checks.batch(fit, x_name="fit")
    checks.batch(x)
    quantile = checks.probability("quantile", quantile)
    z_fit, z = logits_unchecked(work, fit), logits_unchecked(work, x)
    label_fit, label = z_fit.argmax(1), z.argmax(1)
    m_fit, m, rows = logit_margin(z_fit, label_fit), logit_margin(z, label), []
    for b, spec in grids.items():
        with weights.perturbed(work, rounding.rounding_error(work, spec), 1.0):
            lost = (m_fit - logit_margin(logits_unchecked(work, fit), label_fit)).clamp_min(0)
            flipped = logits_unchecked(work, x).argmax(1) != label
        reach = torch.quantile(lost.double(), quantile).item()
        risk = m < reach
        rows.append({"bits": b, "reach": reach, "flipped": flipped.double().mean().item(),
                     "at risk": risk.double().mean().item(), "flips": int(flipped.sum()),
                     "flipped inputs at risk": (risk & flipped).sum().item() / max(int(flipped.sum()), 1),
                     "at-risk inputs flipped": (risk & flipped).sum().item() / max(int(risk.sum()), 1)})
    return pd.DataFrame(rows), m.double().cpu().numpy()


@config.full_precision()
def bit_flips(work: nn.Module, fit: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              max_flips: int, draws: int, seed: int) -> pd.DataFrame:
    """The int8 model's accuracy on (x, y) after k bit flips (a flip of bit j moves a code by ±2^j, the sign bit
    by ∓128): the gradient-guided attack fit on ``fit`` (progressive bit search, every k up to ``max_flips``)
    and random flips (mean of ``draws`` draws at k = 1, 2, 4, …); k = 0 is the int8 model itself."""
    weights.check_data(work, x, y)
    max_flips, draws = checks.integer("max_flips", max_flips, minimum=1), checks.integer("draws", draws)
    seed = checks.integer("seed", seed, minimum=0)

    def accuracy(direction: weights.Direction) -> float:
        with weights.perturbed(work, direction, 1.0):
            return outcomes_unchecked(work, x, y)[1].mean().item()

    _, _, flips = bitflips.bit_flip_attack(work, *fit, max_flips)
    gen = config.generator("readiness", "bit flips", seed=seed, device=checks.model_device(work))
    rows = [{"flips": k, "targeted": accuracy(bitflips.flip_direction(work, flips[:k])), "random": np.nan}
            for k in range(max_flips + 1)]
    for k in sorted({0, *(2**i for i in range(max_flips.bit_length())), max_flips}):
        rows[k]["random"] = float(np.mean([accuracy(bitflips.random_bit_flips(work, k, generator=gen))
                                           for _ in range(draws if k else 1)]))
    return pd.DataFrame(rows)
