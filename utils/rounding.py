"""Quantization seen as a weight perturbation: the rounding error, the rounding choices an adversary or a
coin would make on the same grid, noise with the rounding error's distribution, and what the curvature and
the gradient predict.

On a grid of step Δ every weight has two neighbours, ⌊w/Δ⌋Δ and ⌈w/Δ⌉Δ. Round-to-nearest picks the
closer one (error e ∈ [−Δ/2, Δ/2], E e² ≈ Δ²/12); stochastic rounding picks the upper one with probability
equal to the fractional part (E e² ≈ Δ²/6); *random up/down rounding* picks either with probability ½
(E e² ≈ Δ²/3); *adversarial rounding* picks the one that raises the loss (the same box as random up/down).
Uniform noise Δ·U(−½, ½) has round-to-nearest's distribution in a random direction, and random up/down
rounding has adversarial rounding's: the two equal-budget controls. Every one returns a direction
(:mod:`utils.perturbations`) and is registered as a rounding method under the name in quotes above
(``nearest``, ``stochastic``, ``random up/down``, ``adversarial``, ``uniform noise``).
"""

from __future__ import annotations

import torch
from torch import nn

from . import checks, config, perturbations
from .ptq import check_layers
from .quant import QuantSpec, as_spec, fake_quantize_unchecked, qparams
from .weights import Direction, gradient, parameters_of


def _per_weight(model: nn.Module, spec: QuantSpec, layers: list[str] | None, fn) -> Direction:
    """{name: fn(name, w, scale, zero)} for the weight tensors in ``layers`` (in the model's order) and zeros
    for every other parameter."""
    chosen = set(check_layers(model, layers))
    return {n: fn(n, t, *qparams(t, spec)) if n in chosen else torch.zeros_like(t)
            for n, t in parameters_of(model).items()}


def step_sizes(model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None) -> Direction:
    """Δ of every weight of the tensors in ``layers`` (default: all weight tensors) on the grid ``spec`` (a
    number of bits: :meth:`QuantSpec.for_weights`), and 0 for every other parameter: a direction."""
    spec = as_spec(spec, "weights")
    return _per_weight(model, spec, layers, lambda n, t, scale, zero: scale.expand_as(t).clone())


@perturbations.rounding_method("nearest", variance=1 / 12)
def _nearest(model: nn.Module, spec: QuantSpec, *, layers: list[str] | None = None, fit=None,
             generator: torch.Generator | None = None) -> Direction:
    """Round-to-nearest's error on ``spec``'s grid."""
    return rounding_error(model, spec.but(rounding="nearest"), layers=layers)


@perturbations.rounding_method("stochastic", variance=1 / 6)
def _stochastic(model: nn.Module, spec: QuantSpec, *, layers: list[str] | None = None, fit=None,
                generator: torch.Generator | None = None) -> Direction:
    """Stochastic rounding's error on ``spec``'s grid."""
    return rounding_error(model, spec.but(rounding="stochastic"), layers=layers, generator=generator)


def rounding_error(model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None,
                   generator: torch.Generator | None = None) -> Direction:
    """e = Q(w) − w for the weight tensors in ``layers`` (default: all), 0 elsewhere, rounded as the spec
    says (a number of bits: :meth:`QuantSpec.for_weights`, round-to-nearest): the perturbation that
    quantizing the weights applies, as a direction of ``model``."""
    spec = as_spec(spec, "weights")
    gen = checks.generator("generator", generator)
    return _per_weight(model, spec, layers,
                       lambda n, t, scale, zero: fake_quantize_unchecked(t, scale, zero, spec, gen) - t)


def _neighbours(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, spec: QuantSpec
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid points just below and just above each weight."""
    return (fake_quantize_unchecked(w, scale, zero, spec.but(rounding="floor"), None),
            fake_quantize_unchecked(w, scale, zero, spec.but(rounding="ceil"), None))


def adversarial_rounding(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: QuantSpec | int, *, layers: list[str] | None = None,
) -> Direction:
    """The worst rounding on the grid ``spec`` (a number of bits: :meth:`QuantSpec.for_weights`), fit on
    (x, y), as the direction it moves the weights: each weight goes to the grid point just above (⌈w/Δ⌉)
    where the loss gradient g = ∂L/∂w is positive and just below where it is not, so to first order
    ΔL = Σ |g|·(distance moved) — the most any choice of neighbours gains (in expectation (Δ/2)‖g‖₁,
    :func:`adversarial_gain`). Score it on data it was not fit on."""
    spec = as_spec(spec, "weights")
    grads = gradient(model, x, y)

    def worst(n: str, t: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        down, up = _neighbours(t, scale, zero, spec)
        return torch.where(grads[n] > 0, up, down) - t

    return _per_weight(model, spec, layers, worst)


@perturbations.rounding_method("adversarial", variance=None, fit=True)
def _adversarial(model: nn.Module, spec: QuantSpec, *, layers: list[str] | None = None,
                 fit: tuple[torch.Tensor, torch.Tensor] | None = None,
                 generator: torch.Generator | None = None) -> Direction:
    """Adversarial rounding fit on ``fit`` = (x, y)."""
    if fit is None:
        raise ValueError("adversarial rounding needs fit=(x, y), the labelled data it is fit on")
    return adversarial_rounding(model, *fit, spec, layers=layers)


@perturbations.rounding_method("random up/down", variance=1 / 3)
def random_rounding(
    model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None, fit=None,
    generator: torch.Generator | None = None,
) -> Direction:
    """Random up/down rounding on the grid ``spec``: each weight goes to the grid point just below or just
    above it with probability ½ each (drawn on the weights' device) — adversarial rounding's budget and
    error distribution, in a random direction."""
    spec = as_spec(spec, "weights")
    checks.generator("generator", generator)

    def coin(n: str, t: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        down, up = _neighbours(t, scale, zero, spec)
        gen = config.resolve_generator(generator, t.device)
        heads = torch.rand(t.shape, generator=gen, device=gen.device).to(t.device) < 0.5
        return torch.where(heads, up, down) - t

    return _per_weight(model, spec, layers, coin)


@perturbations.rounding_method("uniform noise", variance=1 / 12)
def uniform_noise(
    model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None, fit=None,
    generator: torch.Generator | None = None,
) -> Direction:
    """Rounding's budget in a random direction: Δ·u with u ~ U(−½, ½) i.i.d. (drawn on the weights' device)
    and the Δ of the grid ``spec``, so the perturbation has round-to-nearest's error distribution (variance
    Δ²/12, |δ| ≤ Δ/2) but ignores where the grid points are."""
    spec = as_spec(spec, "weights")
    checks.generator("generator", generator)

    def noise(n: str, t: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        gen = config.resolve_generator(generator, t.device)
        return scale * (torch.rand(t.shape, generator=gen, device=gen.device, dtype=t.dtype).to(t.device) - 0.5)

    return _per_weight(model, spec, layers, noise)


def _check_pair(a: Direction, b: Direction, names: str) -> None:
    """Two directions of one model: the same names, each pair of tensors of one shape, all finite."""
    if not isinstance(a, dict) or not isinstance(b, dict) or set(a) != set(b):
        raise ValueError(f"{names} must be directions of the same model")
    first, second = names.split(" and ")
    for n in a:
        checks.tensor(f"{first}[{n!r}]", a[n])
        checks.tensor(f"{second}[{n!r}]", b[n])
        if a[n].shape != b[n].shape:
            raise ValueError(f"{first}[{n!r}] and {second}[{n!r}] must have one shape, got {tuple(a[n].shape)} "
                             f"and {tuple(b[n].shape)}")


def predicted_increase(diag_h: Direction, steps: Direction) -> float:
    """E[ΔL] ≈ ½ Σᵢ (Δᵢ²/12)·Hᵢᵢ = Σᵢ Δᵢ² Hᵢᵢ / 24 for noise with rounding's variance, from a diagonal
    curvature estimate (:func:`curvature.hessian_diagonal`) and the step sizes (:func:`step_sizes`)."""
    _check_pair(diag_h, steps, "diag_h and steps")
    return sum((steps[n].pow(2) * diag_h[n].to(steps[n])).sum().item() for n in steps) / 24


def first_order_spread(grad_at_theta: Direction, steps: Direction) -> float:
    """√(Σᵢ gᵢ² Δᵢ²/12): the standard deviation of the first-order term gᵀδ when δ has independent entries of
    variance Δᵢ²/12 — how far one rounding can land from the mean prediction."""
    _check_pair(grad_at_theta, steps, "grad_at_theta and steps")
    total = sum((grad_at_theta[n].pow(2) * steps[n].pow(2).to(grad_at_theta[n])).sum().item() for n in steps)
    return (total / 12) ** 0.5


def adversarial_gain(grad_at_theta: Direction, steps: Direction) -> float:
    """(Δ/2)‖g‖₁ = Σᵢ |gᵢ| Δᵢ/2: the first-order loss increase adversarial rounding collects on average
    (each weight moved to the neighbour the gradient points to, a distance uniform in [0, Δ]). Against
    :func:`first_order_spread` it is about √P times larger — √(3P)·E|g|/√E g² for i.i.d. gᵢ and one Δ — the
    weight-space form of the linearity argument for adversarial examples."""
    _check_pair(grad_at_theta, steps, "grad_at_theta and steps")
    return sum((grad_at_theta[n].abs() * steps[n].to(grad_at_theta[n])).sum().item() for n in steps) / 2


