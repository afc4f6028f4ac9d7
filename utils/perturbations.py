"""One shape for each kind of perturbation, and the registries that name the methods.

- An **input perturbation** is δ, shaped like the batch x it perturbs: the perturbed inputs are x + δ, its
  size is ``budgets.norms(δ)``. Random noise (:mod:`utils.noise`) and attacks (:mod:`utils.attacks`) alike
  return δ.
- A **weight perturbation** is a *direction*: a dict ``{parameter name: tensor}`` shaped like the model's
  trainable parameters (:mod:`utils.weights`). Random and adversarial directions, rounding errors, the
  rounding choices of a coin or an adversary, and bit flips all return one; ``weights.applied(model, d)``
  (a copy) and ``weights.perturbed(model, d, scale)`` (a context) are the two ways to apply it.

A new method is one function and one registration — its name is then known to every driver that takes method
names (:func:`flip_curves`, chapter 4's rounding grid):

    @perturbations.input_method("uniform cube", random=True)
    def cube(model, x, y, eps, *, norm, generator):
        return eps * (2 * torch.rand(x.shape, generator=generator) - 1)

    @perturbations.rounding_method("up", variance=None)
    def up(model, spec, *, layers, fit, generator):
        return rounding.rounding_error(model, spec.but(rounding="ceil"), layers=layers)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from . import checks, config
from .budgets import NORMS
from .outputs import predict_unchecked


@dataclass(frozen=True)
class InputMethod:
    """A named input perturbation: ``fn(model, x, y, eps, *, norm, generator) -> δ`` with ‖δᵢ‖ ≤ εᵢ in
    ``norm`` (y: the labels an attack pushes away from; noise ignores model and y). ``random``: its draws
    differ from call to call, so a flip rate averages several."""

    name: str
    fn: Callable[..., torch.Tensor]
    random: bool


@dataclass(frozen=True)
class RoundingMethod:
    """A named way to put weights on a quantizer's grid (or next to it), as a weight perturbation:
    ``fn(model, spec, *, layers, fit, generator) -> direction``. ``variance``: E[e²]/Δ² of the error it
    makes for weights spread smoothly over the grid (None where the error depends on data, as an
    adversary's does); ``fit``: it needs labelled data (x, y) to be fit on."""

    name: str
    fn: Callable[..., dict[str, torch.Tensor]]
    variance: float | None
    fit: bool = False


INPUT_METHODS: dict[str, InputMethod] = {}
ROUNDING_METHODS: dict[str, RoundingMethod] = {}


def _name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    return name


def _callable(fn: Callable) -> Callable:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r}")
    return fn


def input_method(name: str, *, random: bool) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the input perturbation ``name`` (a decorator; the function is returned unchanged)."""
    name, random = _name(name), checks.flag("random", random)

    def register(fn: Callable) -> Callable:
        INPUT_METHODS[name] = InputMethod(name, _callable(fn), random)
        return fn

    return register


def rounding_method(name: str, *, variance: float | None, fit: bool = False) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the rounding method ``name`` (a decorator; the function is returned unchanged)."""
    name, fit = _name(name), checks.flag("fit", fit)
    variance = None if variance is None else checks.positive("variance", variance)

    def register(fn: Callable) -> Callable:
        ROUNDING_METHODS[name] = RoundingMethod(name, _callable(fn), variance, fit)
        return fn

    return register


def input_methods(names: Sequence[str]) -> list[InputMethod]:
    """The registered input perturbations called ``names``, or an error listing the known ones."""
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise TypeError(f"methods must be a non-empty list of method names, got {names!r}")
    return [INPUT_METHODS[checks.one_of(f"methods[{i}]", n, tuple(INPUT_METHODS))] for i, n in enumerate(names)]


def rounding_methods(names: Sequence[str]) -> list[RoundingMethod]:
    """The registered rounding methods called ``names``, or an error listing the known ones."""
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise TypeError(f"methods must be a non-empty list of method names, got {names!r}")
    return [ROUNDING_METHODS[checks.one_of(f"methods[{i}]", n, tuple(ROUNDING_METHODS))] for i, n in enumerate(names)]


def flip_curves(
    model: nn.Module,
    x: torch.Tensor,
    eps_values: Sequence[float],
    *,
    norm: str = "l2",
    methods: Sequence[str] = ("fgsm", "pgd", "sphere", "gaussian", "sign"),
    n_draws: int = 10,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> list[dict[str, float | str]]:
    """Prediction-flip rate vs ε of registered input perturbations of the same norm: per method and ε, the
    fraction of samples with argmax f(x + δ) ≠ argmax f(x) (random methods: averaged over ``n_draws`` draws
    per sample). One row ``{"norm", "method", "eps", "flip_rate"}`` per method and ε. The defaults compare
    two attacks (FGSM, 20-step PGD) with three noises."""
    checks.model("model", model)
    checks.batch(x, unit_box=True)
    checks.accepts(model, x)
    checks.one_of("norm", norm, NORMS)
    chosen = input_methods(methods)
    if isinstance(eps_values, (str, bytes)) or not isinstance(eps_values, Sequence) or not eps_values:
        raise ValueError(f"eps_values must be a non-empty list of budgets >= 0, got {eps_values!r}")
    eps_values = [checks.non_negative(f"eps_values[{i}]", e) for i, e in enumerate(eps_values)]
    n_draws = checks.integer("n_draws", n_draws)
    label, rows = predict_unchecked(model, x), []
    repeated = x.repeat_interleave(n_draws, dim=0)
    for eps in tqdm(eps_values, desc=f"flip rates ({norm})", leave=False, **config.progress_options(progress)):
        for method in chosen:
            xs, ys = (repeated, label.repeat_interleave(n_draws)) if method.random else (x, label)
            delta = method.fn(model, xs, ys, eps, norm=norm, generator=generator)
            rate = (predict_unchecked(model, xs + delta) != ys).float().mean().item()
            rows.append({"norm": norm, "method": method.name, "eps": eps, "flip_rate": rate})
    return rows
