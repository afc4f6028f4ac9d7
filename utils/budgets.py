"""Perturbation budgets and uniform directions: the helpers every kind of input perturbation shares.

Budgets ε are in pixel units, in the L2 norm ‖δ‖₂ = (Σᵢ δᵢ²)^½ or the L∞ norm ‖δ‖∞ = maxᵢ |δᵢ|, over the
D = prod(x.shape[1:]) coordinates of one sample; a budget is one number or one value per sample.
"""

from __future__ import annotations

import torch

from . import checks, config

NORMS = ("l2", "linf")


def per_sample(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """ε as a tensor broadcastable against x, shape (N, 1, …, 1); ε ≥ 0 a number or one value per sample."""
    if not isinstance(eps, (torch.Tensor, float, int)) or isinstance(eps, bool):
        raise TypeError(f"eps must be a number or a 1-D tensor with one value per sample, got {eps!r}")
    eps_t = torch.as_tensor(eps, dtype=x.dtype).to(x.device)
    if eps_t.dim() > 1 or (eps_t.dim() == 1 and len(eps_t) != len(x)):
        raise ValueError(f"eps must be a number or a 1-D tensor with one value per sample ({len(x)}), "
                         f"got shape {tuple(eps_t.shape)}")
    if not torch.isfinite(eps_t).all() or (eps_t < 0).any():
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    return eps_t.expand(len(x)).reshape(-1, *[1] * (x.dim() - 1))


def norms(delta: torch.Tensor, norm: str = "l2") -> torch.Tensor:
    """Per-sample size of a batch of perturbations: ‖δᵢ‖₂ or ‖δᵢ‖∞, shape (N,)."""
    checks.one_of("norm", norm, NORMS)
    checks.tensor("delta", delta, min_dim=1, finite=False)
    return norms_unchecked(delta, norm)


def norms_unchecked(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """:func:`norms` without the checks: a kernel for inner loops, whose arguments the caller has checked."""
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)


def sample_sphere(n: int, shape: tuple[int, ...], *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` directions drawn uniformly from the unit L2 sphere in ℝ^{prod(shape)}: u = g/‖g‖, g ~ N(0, I),
    on the generator's device (default: the book's stream on the CPU)."""
    n = checks.integer("n", n)
    if not isinstance(shape, tuple) or not shape:
        raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {shape!r}")
    shape = tuple(checks.integer(f"shape[{i}]", s) for i, s in enumerate(shape))
    gen = config.resolve_generator(generator)
    g = torch.randn(n, *shape, generator=gen, device=gen.device)
    return g / g.flatten(1).norm(dim=1).view(-1, *[1] * len(shape))
