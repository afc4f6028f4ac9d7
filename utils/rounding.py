"""Quantization seen as a weight perturbation: the rounding error as a direction, the rounding choices an
adversary or a coin would make on the same grid, and what the curvature predicts.

On a grid of step Δ every weight has two neighbours, ⌊w/Δ⌋Δ and ⌈w/Δ⌉Δ. Round-to-nearest picks the
closer one (error e ∈ [−Δ/2, Δ/2]); *random up/down rounding* picks either with probability ½ (error in
[−Δ, Δ], E e² ≈ Δ²/3); *adversarial rounding* picks the one that raises the loss (same box as random
up/down). Uniform noise Δ·U(−½, ½) (:func:`quant.noisy_weights`) has round-to-nearest's distribution in a
random direction, and random up/down rounding has adversarial rounding's — the two equal-budget controls.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import config
from .quant import QuantSpec, as_spec, check_layers, fake_quantize, map_weights, qparams
from .weights import Direction, gradient, parameters_of


def step_sizes(
    model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None, **options: Any
) -> Direction:
    """Δ of every weight of the tensors in ``layers`` (default: all weight tensors) on the grid ``spec``
    (default per channel), and 0 for every other parameter: a direction."""
    spec = as_spec(spec, options, per_channel=True)
    chosen = set(check_layers(model, layers))
    return {n: qparams(t, spec)[0].expand_as(t).clone() if n in chosen else torch.zeros_like(t)
            for n, t in parameters_of(model).items()}


def rounding_error(model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None,
                   **options: Any) -> Direction:
    """e = Q(w) − w for the weight tensors in ``layers`` (default: all), 0 elsewhere: the perturbation that
    quantizing the weights applies, as a direction of ``model``."""
    spec = as_spec(spec, options, per_channel=True)
    chosen = set(check_layers(model, layers))
    out = {}
    for n, t in parameters_of(model).items():
        if n in chosen:
            scale, zero = qparams(t, spec)
            out[n] = fake_quantize(t, scale, zero, spec) - t
        else:
            out[n] = torch.zeros_like(t)
    return out


def _neighbours(w: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid points just below and just above each weight."""
    scale, zero = qparams(w, spec)
    down = fake_quantize(w, scale, zero, spec.but(rounding="floor"))
    return down, fake_quantize(w, scale, zero, spec.but(rounding="ceil"))


def adversarial_rounding(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: QuantSpec | int, *, layers: list[str] | None = None,
    **options: Any,
) -> nn.Module:
    """The worst rounding on :func:`quant.quantize_weights`'s grid, fit on (x, y): each weight goes to the
    grid point just above (⌈w/Δ⌉) where the loss gradient g = ∂L/∂w is positive and just below where it is
    not, so to first order ΔL = Σ |g|·(distance moved) — the most any choice of neighbours gains. A copy;
    the original is untouched. Score it on data it was not fit on."""
    spec = as_spec(spec, options, per_channel=True)
    grads = gradient(model, x, y)

    def worst(name: str, w: torch.Tensor) -> torch.Tensor:
        down, up = _neighbours(w, spec)
        return torch.where(grads[name] > 0, up, down)

    return map_weights(model, worst, layers)


def random_rounding(
    model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None,
    generator: torch.Generator | None = None, **options: Any,
) -> nn.Module:
    """Random up/down rounding on the same grid: each weight goes to the grid point just below or just
    above it with probability ½ each (drawn on the weights' device) — adversarial rounding's budget and
    error distribution, in a random direction. A copy; the original is untouched."""
    spec = as_spec(spec, options, per_channel=True)

    def coin(_: str, w: torch.Tensor) -> torch.Tensor:
        down, up = _neighbours(w, spec)
        gen = config.resolve_generator(generator, w.device)
        heads = torch.rand(w.shape, generator=gen, device=gen.device).to(w.device) < 0.5
        return torch.where(heads, up, down)

    return map_weights(model, coin, layers)


def predicted_increase(diag_h: Direction, steps: Direction) -> float:
    """E[ΔL] ≈ ½ Σᵢ (Δᵢ²/12)·Hᵢᵢ = Σᵢ Δᵢ² Hᵢᵢ / 24 for noise with rounding's variance, from a diagonal
    curvature estimate (:func:`curvature.hessian_diagonal`) and the step sizes (:func:`step_sizes`)."""
    if set(diag_h) != set(steps):
        raise ValueError("diag_h and steps must be directions of the same model")
    return sum((steps[n].pow(2) * diag_h[n].to(steps[n])).sum().item() for n in steps) / 24


def first_order_spread(grad_at_theta: Direction, steps: Direction) -> float:
    """√(Σᵢ gᵢ² Δᵢ²/12): the standard deviation of the first-order term gᵀδ when δ has independent entries of
    variance Δᵢ²/12 — how far one rounding can land from the mean prediction."""
    if set(grad_at_theta) != set(steps):
        raise ValueError("grad_at_theta and steps must be directions of the same model")
    total = sum((grad_at_theta[n].pow(2) * steps[n].pow(2).to(grad_at_theta[n])).sum().item() for n in steps)
    return (total / 12) ** 0.5
