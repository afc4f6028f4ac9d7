"""Curvature of the loss in weight space, never forming the Hessian H = ∇²_θ L.

- Hessian-vector products H·v by *forward-over-reverse* differentiation: the directional derivative, along
  v, of the gradient function (``torch.func.jvp`` of ``torch.func.grad``), as cheap as about two gradients.
- Hutchinson's estimators with *Rademacher* probes (entries ±1 with probability ½ each, drawn on the
  model's device): Tr H = E[vᵀHv] and diag(H) = E[v ⊙ Hv].
- The top eigenvalues (and eigenvectors) by *subspace iteration*: multiply a block of k orthonormal vectors
  by H, re-orthonormalize, and read the eigenvalues of the small k×k matrix VᵀHV (Rayleigh–Ritz).
- The two terms of the second-order expansion ΔL ≈ gᵀδ + ½δᵀHδ for a given perturbation δ.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import grad, jvp, vmap

from . import checks, config
from .weights import Direction, batch_losses, check_direction, flatten, gradient, parameters_of, unflatten


def _quiet_forward_ad() -> None:
    """Load torch's forward-AD decompositions now, hiding the FutureWarning that torch itself raises on
    first use (it compiles them with the deprecated ``torch.jit.script``); later calls do nothing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        torch.autograd.forward_ad._maybe_load_decompositions()


@config.full_precision()
def hessian_vector_product(model: nn.Module, x: torch.Tensor, y: torch.Tensor, v: Direction) -> Direction:
    """H·v, H = ∇²_θ L on (x, y), by forward-over-reverse differentiation (``jvp`` of ``grad``)."""
    check_direction(model, v, "v")
    _quiet_forward_ad()
    theta = parameters_of(model)
    tangent = {n: v[n].to(theta[n]) for n in theta}
    total = {n: torch.zeros_like(t) for n, t in theta.items()}
    for fn, w in batch_losses(model, x, y):
        for n, hv in jvp(grad(fn), (theta,), (tangent,))[1].items():
            total[n] += w * hv
    return total


def batched_hvp(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function V (k, P) ↦ (H Vᵢ)ᵢ (k, P) in :func:`weights.flatten` order, vectorized over the k vectors
    (:func:`config.batch`'s ``probes`` of them at a time, each on data batches of ``weights`` samples)."""
    _quiet_forward_ad()
    theta, parts = parameters_of(model), batch_losses(model, x, y)

    def hvps(vectors: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(vectors)
        for fn, w in parts:
            hvp = lambda vec, fn=fn: flatten(jvp(grad(fn), (theta,), (unflatten(vec, theta),))[1])
            total += w * vmap(hvp, chunk_size=config.batch("probes"))(vectors)
        return total

    return hvps


def probes(
    model: nn.Module, n_probes: int, chunk: int | None, generator: torch.Generator | None, scale: Direction | None
) -> Iterator[torch.Tensor]:
    """Rademacher probes s ⊙ v, ``chunk`` at a time, drawn on the model's device, with the batched HVP."""
    n_probes = checks.integer("n_probes", n_probes, minimum=2)
    chunk = config.batch("probes") if chunk is None else checks.integer("chunk", chunk)
    dev = checks.model_device(model)
    size = flatten(parameters_of(model)).numel()
    dtype = flatten(parameters_of(model)).dtype
    s = (flatten(check_direction(model, scale, "scale")).to(dev, dtype) if scale is not None
         else torch.ones(size, device=dev, dtype=dtype))
    gen = config.resolve_generator(generator, dev)
    for start in range(0, n_probes, chunk):
        k = min(chunk, n_probes - start)
        yield s * (torch.randint(0, 2, (k, size), generator=gen, device=gen.device).to(dev) * 2 - 1).to(dtype)


@config.full_precision()
def hessian_trace(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_probes: int = 100, chunk: int | None = None,
    scale: Direction | None = None, generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Hutchinson's estimate of Tr H = E[vᵀHv] over Rademacher probes v ∈ {−1, 1}^P, with its standard
    error (sample standard deviation of vᵀHv over √n_probes). With ``scale`` s the probes are s⊙v and the
    estimate is the weighted trace Σᵢ sᵢ² Hᵢᵢ = E[(s⊙v)ᵀH(s⊙v)] (s = 0 outside a layer restricts it to that
    layer). Probes are evaluated ``chunk`` at a time (default: :func:`config.batch`'s ``probes``)."""
    hvp = batched_hvp(model, x, y)
    quad = torch.cat([(v * hvp(v)).sum(dim=1) for v in probes(model, n_probes, chunk, generator, scale)]).double()
    return quad.mean().item(), (quad.std() / math.sqrt(len(quad))).item()


@config.full_precision()
def hessian_diagonal(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_probes: int = 100, chunk: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Direction, Direction]:
    """Hutchinson's estimate of the Hessian's diagonal, diag(H) = E[v ⊙ Hv] over Rademacher probes, as a
    direction, with its standard error entry by entry. One estimate serves every weighted trace:
    Σᵢ sᵢ² Hᵢᵢ ≈ Σᵢ sᵢ² diag(H)ᵢ for any layer selection or step sizes s."""
    hvp = batched_hvp(model, x, y)
    total = sq = None
    n = 0
    for v in probes(model, n_probes, chunk, generator, None):
        d = (v * hvp(v)).double()
        total = d.sum(0) if total is None else total + d.sum(0)
        sq = d.pow(2).sum(0) if sq is None else sq + d.pow(2).sum(0)
        n += len(v)
    mean = total / n
    se = ((sq / n - mean.pow(2)).clamp_min(0) * n / (n - 1) / n).sqrt()
    like = parameters_of(model)
    dtype = flatten(like).dtype
    return unflatten(mean.to(dtype), like), unflatten(se.to(dtype), like)


@config.full_precision()
def top_eigenvalues(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int = 1, *, iters: int = 100, tol: float = 1e-4,
    generator: torch.Generator | None = None, vectors: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The k eigenvalues of H of largest magnitude (for a trained network: the positive outliers), largest
    first, by subspace iteration with Rayleigh–Ritz: V ← orth(H V), λ = eig(Vᵀ H V), for at most ``iters``
    rounds or until the Ritz values change by less than ``tol`` (relative). With ``vectors`` also the
    eigenvectors, as the columns of a (P, k) matrix in :func:`weights.flatten` order."""
    k = checks.integer("k", k)
    iters, tol = checks.integer("iters", iters), checks.positive("tol", tol)
    size = flatten(parameters_of(model)).numel()
    if k > size:
        raise ValueError(f"k = {k} exceeds the number of parameters ({size})")
    hvp, dev = batched_hvp(model, x, y), checks.model_device(model)
    gen = config.resolve_generator(generator, dev)
    dtype = flatten(parameters_of(model)).dtype
    basis = torch.linalg.qr(torch.randn(size, k, generator=gen, device=gen.device).to(dev, dtype)).Q
    previous = None
    for _ in range(iters):
        hv = hvp(basis.T).T  # (P, k)
        ritz, vecs = torch.linalg.eigh(basis.T @ hv)
        order = ritz.abs().argsort(descending=True)
        ritz, rotated = ritz[order], hv @ vecs[:, order]
        basis, eigvecs = torch.linalg.qr(rotated).Q, basis @ vecs[:, order]
        if previous is not None and ((ritz - previous).abs() <= tol * ritz.abs().clamp_min(1e-12)).all():
            break
        previous = ritz
    order = ritz.argsort(descending=True)
    return (ritz[order].cpu(), eigvecs[:, order]) if vectors else ritz[order].cpu()


@config.full_precision()
def quadratic_terms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: Direction, *, grad_at_theta: Direction | None = None
) -> tuple[float, float]:
    """The two terms of ΔL ≈ gᵀδ + ½δᵀHδ for the perturbation δ: one Hessian-vector product, and one gradient
    unless ``grad_at_theta`` (g at the trained weights) is passed — compute it once for many δ."""
    check_direction(model, delta, "delta")
    g = gradient(model, x, y) if grad_at_theta is None else check_direction(model, grad_at_theta, "grad_at_theta")
    first = (flatten(g) * flatten(delta).to(flatten(g))).sum().item()
    second = 0.5 * (flatten(hessian_vector_product(model, x, y, delta)) * flatten(delta).to(flatten(g))).sum().item()
    return first, second


def direction_statistics(
    delta: Direction, grad_at_theta: Direction, eigvecs: torch.Tensor, *, variance: Direction | None = None
) -> dict[str, float]:
    """Where a perturbation δ points, against what the loss is sensitive to (g = ∇L, and V, the top-k
    Hessian eigenvectors as the columns of a (P, k) matrix from :func:`top_eigenvalues`):

    - ``cos``: cos(δ, g), and ``cos·√P``, which is ≈ N(0, 1) for a uniformly random direction in ℝ^P;
    - ``top-k share``: ‖Vᵀδ‖²/‖δ‖², the fraction of δ's energy in the top-k eigenvectors, against ``k/P``
      for a uniformly random direction;
    - with ``variance`` σᵢ² (noise with independent entries of that variance, e.g. Δᵢ²/12 for rounding),
      the same laws for such noise: ``z`` = (gᵀδ/‖δ‖) / √(Σ gᵢ²σᵢ² / Σ σᵢ²), ≈ N(0, 1), and the expected
      share Σᵢ σᵢ² Σⱼ Vᵢⱼ² / Σᵢ σᵢ².
    """
    for name, value in (("delta", delta), ("grad_at_theta", grad_at_theta), ("variance", variance)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict of tensors (a direction), got {type(value).__name__}")
    checks.tensor("eigvecs", eigvecs, min_dim=2)
    d, g = flatten(delta), flatten(grad_at_theta).to(flatten(delta))
    if d.shape != g.shape or eigvecs.dim() != 2 or eigvecs.shape[0] != d.numel():
        raise ValueError(f"delta, grad_at_theta and eigvecs must match: {d.numel()} entries, "
                         f"{g.numel()} entries, eigvecs of shape {tuple(eigvecs.shape)}")
    v = eigvecs.to(d)
    p, k = d.numel(), v.shape[1]
    cos = (d @ g / (d.norm() * g.norm()).clamp_min(1e-30)).item()
    out = {"cos": cos, "cos·√P": cos * p**0.5, "top-k share": ((v.T @ d).pow(2).sum() / d.pow(2).sum()).item(),
           "k/P": k / p}
    if variance is not None:
        s2 = flatten(variance).to(d)
        out["z"] = (d @ g / d.norm() / (g.pow(2) @ s2 / s2.sum()).sqrt()).item()
        out["share expected for such noise"] = (v.pow(2).sum(1) @ s2 / s2.sum()).item()
    return out
