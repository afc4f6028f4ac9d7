"""Random input perturbations of an exact size, and how often they change a prediction.

Budgets ε are in pixel units (:mod:`utils.budgets`). Everything works on a whole batch at once; random
numbers are drawn on the generator's device. Each kind of noise is registered as an input perturbation
(:mod:`utils.perturbations`) under its name: ``sphere``, ``ball``, ``gaussian``, ``sign``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import checks, config, perturbations
from .budgets import NORMS, per_sample, sample_sphere
from .outputs import predict_unchecked

KINDS = ("sphere", "ball", "gaussian", "sign")


def random_perturbation(
    x: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    norm: str = "l2",
    kind: str = "sphere",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random perturbations δ shaped like ``x``, one per sample, of size ``eps`` (a number or one per sample).

    L2: ``sphere`` δ = ε g/‖g‖₂, g ~ N(0, I) (uniform on the sphere, ‖δ‖₂ = ε exactly); ``ball`` the same
    times U^{1/D} (uniform in the ball); ``gaussian`` δ ~ N(0, ε²/D · I) (E‖δ‖₂² = ε²); ``sign``
    δ = ε s/√D with s uniform in {−1, 1}^D (‖δ‖₂ = ε exactly).
    L∞: ``sphere`` uniform on the cube's surface (δ ~ U[−ε, ε]^D, then one random coordinate set to ±ε);
    ``ball`` δ ~ U[−ε, ε]^D; ``gaussian`` δ ~ N(0, ε² I), the same energy E‖δ‖₂² = Dε² as ``sign``, which
    is δ = ε s, a random vertex of the cube (FGSM's step without the gradient). Gaussian noise has no exact
    norm. δ is not clipped: x + δ may leave [0, 1], which only makes the noise larger. The numbers are
    drawn on the generator's device (default: the book's stream on x's device).
    """
    checks.batch(x)
    checks.one_of("norm", norm, NORMS)
    checks.one_of("kind", kind, KINDS)
    return _random_perturbation(x, per_sample(eps, x), norm, kind, generator)


def _random_perturbation(x: torch.Tensor, e: torch.Tensor, norm: str, kind: str,
                         generator: torch.Generator | None) -> torch.Tensor:
    """:func:`random_perturbation` without the checks, with ε already shaped by :func:`budgets.per_sample`."""
    gen = config.resolve_generator(generator, x.device)
    n, shape, d = len(x), tuple(x.shape[1:]), x[0].numel()
    draw = {"generator": gen, "device": gen.device, "dtype": x.dtype}
    if kind == "sign":
        u = torch.randint(0, 2, (n, d), **draw) * 2 - 1
        u = u / math.sqrt(d) if norm == "l2" else u
    elif kind == "gaussian":
        u = torch.randn((n, d), **draw) / (math.sqrt(d) if norm == "l2" else 1.0)
    elif norm == "l2":
        u = sample_sphere(n, (d,), generator=gen).to(x.dtype)
        if kind == "ball":
            u = u * torch.rand((n, 1), **draw) ** (1 / d)
    else:
        u = torch.rand((n, d), **draw) * 2 - 1
        if kind == "sphere":
            face = torch.randint(0, d, (n, 1), generator=gen, device=gen.device)
            u = u.scatter(1, face, torch.randint(0, 2, (n, 1), **draw) * 2 - 1)
    return e * u.view(n, *shape).to(x.device)


def random_flip_fraction(
    model: nn.Module,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    n_draws: int,
    *,
    norm: str = "l2",
    kind: str = "sphere",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per sample, the fraction of ``n_draws`` random perturbations (:func:`random_perturbation`) of size
    ``eps`` (a number or one per sample) that change the prediction; shape (N,)."""
    n_draws = checks.integer("n_draws", n_draws)
    checks.model("model", model)
    checks.batch(x)
    checks.accepts(model, x)
    checks.one_of("norm", norm, NORMS)
    checks.one_of("kind", kind, KINDS)
    xr = x.repeat_interleave(n_draws, dim=0)
    e = per_sample(eps, x).flatten().repeat_interleave(n_draws)
    moved = xr + _random_perturbation(xr, per_sample(e, xr), norm, kind, generator)
    flipped = predict_unchecked(model, moved) != predict_unchecked(model, x).repeat_interleave(n_draws)
    return flipped.view(len(x), n_draws).float().mean(dim=1)


def _register(kind: str) -> None:
    """Register noise of ``kind`` as the input perturbation of that name."""

    def method(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, eps: float | torch.Tensor, *,
               norm: str, generator: torch.Generator | None = None) -> torch.Tensor:
        return random_perturbation(x, eps, norm=norm, kind=kind, generator=generator)

    method.__doc__ = f"Random noise of kind {kind!r} (:func:`random_perturbation`); model and y are ignored."
    perturbations.input_method(kind, random=True)(method)


for _kind in KINDS:
    _register(_kind)
