"""Random input perturbations of an exact size, and how often they change a prediction.

Budgets ε are in pixel units, in the L2 norm ‖δ‖₂ = (Σᵢ δᵢ²)^½ or the L∞ norm ‖δ‖∞ = maxᵢ |δᵢ|, over the
D = prod(x.shape[1:]) coordinates of one sample. Everything works on a whole batch at once; random numbers
are drawn on the generator's device.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import checks, config
from .geometry import sample_sphere
from .train import predict

NORMS = ("l2", "linf")
KINDS = ("sphere", "ball", "gaussian", "sign")


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
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)


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
    e = per_sample(eps, x)
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
    checks.batch(x)
    e = per_sample(eps, x).flatten().repeat_interleave(n_draws)
    xr = x.repeat_interleave(n_draws, dim=0)
    moved = xr + random_perturbation(xr, e, norm=norm, kind=kind, generator=generator)
    flipped = predict(model, moved) != predict(model, x).repeat_interleave(n_draws)
    return flipped.view(len(x), n_draws).float().mean(dim=1)
