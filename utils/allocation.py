"""Mixed precision under a size budget: bits per layer chosen by an integer program that minimizes the predicted
loss increase, and the allocations it is measured against at the same size.

With c_{l,b} the predicted loss increase of rounding layer l (n_l weights) to b bits — additive over layers,
because independent zero-mean rounding errors of two layers have no expected cross term δ_lᵀH_{lm}δ_m — the
Hessian-aware allocation solves (HAWQ-V3's integer program with a size constraint only)

    minimize Σ_{l,b} c_{l,b} x_{l,b}  subject to  Σ_b x_{l,b} = 1 for every l,
                                                  minimum ≤ Σ_{l,b} n_l·b·x_{l,b} ≤ budget,  x ∈ {0, 1},

with ``scipy.optimize.milp``. Its controls: uniform bits (where the budget is b bits a weight), random
allocations of about the same size, and the *reversed* allocation — the same program maximizing the predicted
increase within the same size band, the allocation the curvature says is worst.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from . import checks, config, rounding, weights
from .quant import QuantSpec
from .sensitivity import outcomes_unchecked, paired_change


def _problem(costs: np.ndarray, sizes: Sequence[int], bits: Sequence[int]) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    """``costs`` (L, B), ``sizes`` (L,) and ``bits`` (B,) as checked arrays."""
    costs = np.asarray(costs, dtype=float)
    sizes, bits = np.asarray(sizes, dtype=np.int64), np.asarray(bits, dtype=np.int64)
    if costs.ndim != 2 or costs.shape != (len(sizes), len(bits)) or not costs.size:
        raise ValueError(f"costs must be shaped (layers, bit-widths) = ({len(sizes)}, {len(bits)}), got {costs.shape}")
    if not np.isfinite(costs).all():
        raise ValueError("costs must be finite (a NaN prediction cannot be allocated)")
    if (sizes < 1).any() or (bits < 1).any() or len(set(bits.tolist())) != len(bits):
        raise ValueError(f"sizes must be positive weight counts and bits distinct positive widths, got {sizes.tolist()}"
                         f" and {bits.tolist()}")
    return costs, sizes, bits


def size_of(sizes: Sequence[int], chosen: Sequence[int]) -> int:
    """The weight bits Σ_l n_l·b_l of an allocation (b_l the bits of layer l)."""
    return int(np.dot(np.asarray(sizes, dtype=np.int64), np.asarray(chosen, dtype=np.int64)))


def allocate(costs: np.ndarray, sizes: Sequence[int], bits: Sequence[int], budget: float, *, minimum: float = 0.0,
             maximize: bool = False, resource: np.ndarray | None = None) -> np.ndarray:
    """The bits per layer (an array of L widths from ``bits``) that minimize Σ_l c_{l,b_l} — or maximize it,
    with ``maximize`` — subject to ``minimum`` ≤ Σ_l r_{l,b_l} ≤ ``budget``, by ``milp``; the resource r is the
    weight bits r_{l,b} = n_l·b unless given as an (L, B) array (e.g. bit operations). A budget below the
    smallest allocation (every layer at its cheapest width) is a ``ValueError`` that names both."""
    costs, sizes, bits = _problem(costs, sizes, bits)
    budget, minimum = checks.positive("budget", budget), checks.non_negative("minimum", minimum)
    used = np.outer(sizes, bits).astype(float) if resource is None else np.asarray(resource, dtype=float)
    if used.shape != costs.shape or not np.isfinite(used).all() or (used < 0).any():
        raise ValueError(f"resource must be a finite, non-negative array shaped like costs {costs.shape}")
    smallest, largest = used.min(1).sum(), used.max(1).sum()
    if budget < smallest:
        raise ValueError(f"budget of {budget:,.0f} is below the smallest allocation: every layer at its cheapest width "
                         f"({bits.min()} bits for weights) takes {smallest:,.0f}")
    if minimum > min(budget, largest):
        raise ValueError(f"minimum of {minimum:,.0f} exceeds the budget ({budget:,.0f}) or the largest allocation "
                         f"({largest:,.0f})")
    n_layers, n_bits = costs.shape
    one_each = np.kron(np.eye(n_layers), np.ones(n_bits))  # Σ_b x_{l,b} = 1
    result = milp((-1.0 if checks.flag("maximize", maximize) else 1.0) * costs.ravel(),
                  integrality=np.ones(costs.size), bounds=Bounds(0, 1),
                  constraints=[LinearConstraint(one_each, 1, 1), LinearConstraint(used.ravel(), minimum, budget)])
    if result.status != 0 or result.x is None:
        raise ValueError(f"no allocation of bits {bits.tolist()} uses between {minimum:,.0f} and {budget:,.0f} "
                         f"({result.message})")
    return bits[result.x.reshape(n_layers, n_bits).argmax(1)]


def random_allocation(sizes: Sequence[int], bits: Sequence[int], budget: float, *, minimum: float = 0.0,
                      generator: torch.Generator | None = None, tries: int = 100) -> np.ndarray:
    """A random allocation of about the same size: every layer's bits drawn uniformly from ``bits``, then
    repaired — a random layer one width down while the total exceeds ``budget``, one width up (where that
    stays within the budget) while it is below ``minimum`` — and drawn again if no repair lands in the band."""
    _, sizes, bits = _problem(np.zeros((len(sizes), len(bits))), sizes, bits)
    budget, minimum = checks.positive("budget", budget), checks.non_negative("minimum", minimum)
    levels = np.sort(bits)
    gen = config.resolve_generator(checks.generator("generator", generator))
    for _ in range(checks.integer("tries", tries)):
        level = torch.randint(len(levels), (len(sizes),), generator=gen, device=gen.device).cpu().numpy()
        steps = torch.rand(4 * len(sizes) * len(levels), generator=gen, device=gen.device).argsort().cpu().numpy()
        for order in steps % len(sizes):  # a random sequence of layers to repair
            total = size_of(sizes, levels[level])
            if total > budget and level[order] > 0:
                level[order] -= 1
            elif total < minimum and level[order] < len(levels) - 1 and total + sizes[order] * (
                    levels[level[order] + 1] - levels[level[order]]) <= budget:
                level[order] += 1
        if minimum <= size_of(sizes, levels[level]) <= budget:
            return levels[level]
    raise ValueError(f"no random allocation of bits {levels.tolist()} between {minimum:,.0f} and {budget:,.0f} weight "
                     f"bits was found in {tries} draws: widen the band")


def rounded(model: nn.Module, allocation: dict[str, int], template: QuantSpec) -> weights.Direction:
    """Round-to-nearest of every layer at its own bits (``allocation``: weight tensor → bits, on the grid
    ``template.but(bits=b)``), as one direction of ``model``."""
    theta = weights.parameters_of(model)
    out = {n: torch.zeros_like(t) for n, t in theta.items()}
    for layer, b in allocation.items():
        out[layer] = rounding.rounding_error(model, template.but(bits=int(b)), layers=[layer])[layer]
    return out


def rounded_outcomes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, allocation: dict[str, int],
                     template: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample loss and correctness of the model rounded as ``allocation`` says (moved and restored bit for
    bit; inputs as checked by :func:`measure`)."""
    with weights.perturbed(model, rounded(model, allocation, template), 1.0):
        return outcomes_unchecked(model, x, y)


@config.full_precision()
def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, allocation: dict[str, int],
            template: QuantSpec) -> dict[str, float]:
    """Loss change and accuracy of the model rounded as ``allocation`` says, on (x, y), with standard errors
    (paired over the samples against the float model). ``model`` is moved and restored bit for bit (pass a copy
    you own)."""
    weights.check_data(model, x, y)
    if not isinstance(template, QuantSpec):
        raise TypeError(f"template must be a quant.QuantSpec, got {template!r}")
    base_loss, base_correct = outcomes_unchecked(model, x, y)
    loss, correct = rounded_outcomes(model, x, y, allocation, template)
    dl, dl_se = paired_change(base_loss, loss)
    da, da_se = paired_change(base_correct, correct)
    return {"loss change": dl, "loss change se": dl_se, "accuracy": correct.mean().item(), "accuracy change": da,
            "accuracy change se": da_se}


@config.full_precision()
def pareto(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, predicted: pd.DataFrame, budgets: Sequence[float],
    template: QuantSpec, *, n_random: int = 8, band: float = 0.03, generator: torch.Generator | None = None,
    base: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> pd.DataFrame:
    """The measured Pareto front: for each budget (average bits per weight), the Hessian-aware allocation, uniform
    bits (where the budget is one of the widths), ``n_random`` random allocations and the reversed one, all
    within the size band [(1 − ``band``)·s, budget] (s: the Hessian-aware allocation's size), each measured on
    (x, y), against the float model and, paired over the same samples, against the Hessian-aware allocation
    ("loss over Hessian-aware": mean of ℓᵢ(this) − ℓᵢ(Hessian-aware), with its standard error). ``predicted``:
    one row per layer and bit-width with columns layer, bits, predicted, weights. ``base``: the float model's
    per-sample (loss, correctness) on (x, y), if the caller has them."""
    weights.check_data(model, x, y)
    if not isinstance(predicted, pd.DataFrame) or not {"layer", "bits", "predicted", "weights"} <= set(predicted):
        raise ValueError("predicted must be a DataFrame with columns layer, bits, predicted and weights")
    if not isinstance(template, QuantSpec):
        raise TypeError(f"template must be a quant.QuantSpec, got {template!r}")
    table = predicted.pivot_table(index="layer", columns="bits", values="predicted", sort=False)
    layers, bits = list(table.index), [int(b) for b in table.columns]
    budgets = [checks.number(f"budgets[{i}]", b, low=min(bits), high=max(bits))
               for i, b in enumerate(checks.sequence("budgets", budgets, min_len=1))]
    n_random, band = checks.integer("n_random", n_random, minimum=0), checks.number("band", band, low=0.0, high=0.5)
    gen = config.resolve_generator(checks.generator("generator", generator))
    sizes = predicted.groupby("layer", sort=False)["weights"].first().loc[layers].to_numpy()
    costs, total = table.to_numpy(), int(sizes.sum())
    base, rows, aware = base or outcomes_unchecked(model, x, y), [], {}

    def add(budget: float, strategy: str, chosen: np.ndarray, draw: int = 0) -> None:
        after = rounded_outcomes(model, x, y, dict(zip(layers, (int(b) for b in chosen), strict=True)), template)
        aware.setdefault(budget, after[0])  # the Hessian-aware allocation is measured first at each budget
        (dl, dl_se), (da, da_se), (dh, dh_se) = (paired_change(base[0], after[0]), paired_change(base[1], after[1]),
                                                 paired_change(aware[budget], after[0]))
        rows.append({"budget (bits/weight)": budget, "strategy": strategy, "draw": draw,
                     "size (bits/weight)": size_of(sizes, chosen) / total,
                     "predicted": float(costs[np.arange(len(layers)), [bits.index(b) for b in chosen]].sum()),
                     "loss change": dl, "loss change se": dl_se, "accuracy": after[1].mean().item(),
                     "accuracy change": da, "accuracy change se": da_se, "loss over Hessian-aware": dh,
                     "loss over Hessian-aware se": dh_se, "allocation": " ".join(str(int(b)) for b in chosen)})

    for avg in budgets:
        budget = avg * total
        best = allocate(costs, sizes, bits, budget)
        low = (1 - band) * size_of(sizes, best)
        add(avg, "Hessian-aware", best)
        if float(avg).is_integer() and int(avg) in bits:
            add(avg, "uniform", np.full(len(layers), int(avg)))
        for draw in range(n_random):
            add(avg, "random", random_allocation(sizes, bits, budget, minimum=low, generator=gen), draw)
        add(avg, "reversed", allocate(costs, sizes, bits, budget, minimum=low, maximize=True))
    return pd.DataFrame(rows)
