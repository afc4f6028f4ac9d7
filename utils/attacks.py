"""Input-space attacks: the gradient-guided search for the worst perturbation of a given size.

Every attack returns the perturbation δ, shaped like x (:mod:`utils.perturbations`): the adversarial
inputs are x + δ. Everything works on a whole batch at once (no loop over samples) on the model's device.
Inputs and adversarial examples live in [0, 1]; budgets ε are in pixel units (:mod:`utils.budgets`). Attacks
maximize the cross-entropy L = −log softmax(f(x))_y; with ``y=None`` they use the model's own prediction,
so success means a *flipped prediction*. FGSM and PGD are registered as the input perturbations ``fgsm`` and
``pgd``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, config, perturbations
from .budgets import NORMS, norms, norms_unchecked, per_sample, sample_sphere
from .geometry import distance_along, line_distance, logit_margin
from .noise import random_perturbation
from .outputs import predict, predict_unchecked


def _loss_and_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits f(x) (detached) and ∇ₓ Σᵢ L(f(xᵢ), yᵢ), i.e. each sample's own input gradient; zero where the
    model cuts the gradient path (e.g. true rounding of its inputs, which masks gradients)."""
    x = x.detach().requires_grad_(True)
    z = model(x)
    if not z.requires_grad:
        return z.detach(), torch.zeros_like(x)
    (grad,) = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), x, allow_unused=True)
    return z.detach(), torch.zeros_like(x) if grad is None else grad


@contextmanager
def _attack_mode(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, *, unit_box: bool = True
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Validate (x, y) — inputs in [0, 1] when ``unit_box``, labels in the model's class range — put the
    model in eval mode and yield x and y (default: the prediction) on the model's device; the model's mode
    is restored afterwards."""
    checks.model("model", model)
    checks.batch(x, y, unit_box=unit_box)
    dev = checks.model_device(model)
    xd = x.detach().to(dev)
    z = checks.accepts(model, x)
    with checks.eval_mode(model):
        yd = predict_unchecked(model, xd) if y is None else checks.labels("y", y, len(x), z.shape[1]).to(dev)
        yield xd, yd


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """∇ₓ L(f(x), y) per sample, in eval mode (``y=None``: the predicted labels)."""
    with _attack_mode(model, x, y, unit_box=False) as (xd, yd):
        return _loss_and_grad(model, xd, yd)[1].to(x.device)


def _steepest(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm ascent direction: sign(g) for L∞, g/‖g‖₂ for L2 (zero where g = 0)."""
    if norm == "linf":
        return grad.sign()
    return grad / norms_unchecked(grad, "l2").clamp_min(1e-12).view(-1, *[1] * (grad.dim() - 1))


def _project_ball(x0: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Π(x): the nearest point to x in the ε-ball around x0 (L∞: clamp each δᵢ; L2: shrink δ to ‖δ‖₂ ≤ ε),
    then clipped to [0, 1] (clipping only shrinks δ, so the result stays in the ball)."""
    delta = x - x0
    if norm == "linf":
        delta = torch.maximum(torch.minimum(delta, eps), -eps)
    else:
        delta = delta * torch.clamp(eps / norms_unchecked(delta, "l2").view(eps.shape).clamp_min(1e-12), max=1.0)
    return (x0 + delta).clamp(0.0, 1.0)


def project(x0: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor, *, norm: str = "l2") -> torch.Tensor:
    """The projection every PGD step ends with: the nearest point to x in the ball ‖x' − x0‖ ≤ ε (L2: δ scaled
    by min(1, ε/‖δ‖₂); L∞: each δᵢ clamped to [−ε, ε]), then clipped to the image box [0, 1]. ``eps`` is a
    number or one value per sample."""
    checks.one_of("norm", norm, NORMS)
    checks.batch(x0, x_name="x0")
    checks.tensor("x", x)
    if x.shape != x0.shape:
        raise ValueError(f"x must be shaped like x0 {tuple(x0.shape)}, got {tuple(x.shape)}")
    return _project_ball(x0, x, per_sample(eps, x0), norm)


@perturbations.input_method("fgsm", random=False)
def fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, eps: float | torch.Tensor, *, norm: str = "linf",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fast gradient (sign) method: δ = clip₍₀,₁₎(x + ε·s) − x, s = sign(∇ₓL) for L∞ (Goodfellow et al., 2015)
    or s = ∇ₓL/‖∇ₓL‖₂ for L2. ``x`` must lie in [0, 1]; ``generator`` is not used (FGSM draws nothing)."""
    checks.one_of("norm", norm, NORMS)
    with _attack_mode(model, x, y) as (xd, yd):
        e = per_sample(eps, xd)
        _, grad = _loss_and_grad(model, xd, yd)
        return (_project_ball(xd, xd + e * _steepest(grad, norm), e, norm) - xd).to(x.device)


@perturbations.input_method("pgd", random=False)
def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    eps: float | torch.Tensor,
    *,
    norm: str = "linf",
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on the loss (Madry et al., 2018): x_{t+1} = Π(x_t + α·s(∇ₓL(x_t))), with
    s as in :func:`fgsm`, α = ``step_size`` (default 2.5·ε/steps), Π the projection onto the ε-ball around
    x intersected with [0, 1], and (``random_start``) a random start in the ball. Over all iterates and
    ``restarts`` it keeps, per sample, the one with the lowest label margin z_y − max_{k≠y} z_k (negative:
    misclassified), and returns δ = x_best − x. ``x`` must lie in [0, 1]; random starts are drawn with
    ``generator`` (default: the book's stream). Samples are attacked ``batch_size`` at a time (default:
    :func:`config.batch`'s ``attack``; each batch holds its activations for the backward pass)."""
    checks.one_of("norm", norm, NORMS)
    steps, restarts = checks.integer("steps", steps), checks.integer("restarts", restarts)
    if step_size is not None:
        step_size = checks.positive("step_size", step_size)
    random_start = checks.flag("random_start", random_start)
    batch_size = config.batch("attack") if batch_size is None else checks.integer("batch_size", batch_size)
    with _attack_mode(model, x, y) as (xd, yd):
        e = per_sample(eps, xd)
        parts = [_pgd(model, xd[i:i + batch_size], yd[i:i + batch_size], e[i:i + batch_size], norm, steps,
                      step_size, random_start, restarts, generator) for i in range(0, len(xd), batch_size)]
        return torch.cat(parts).to(x.device)


def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, e: torch.Tensor, norm: str, steps: int,
         step_size: float | None, random_start: bool, restarts: int, generator: torch.Generator | None
         ) -> torch.Tensor:
    """:func:`pgd` on one batch, arguments checked, the model in eval mode: δ = x_best − x."""
    alpha = e * 2.5 / steps if step_size is None else torch.full_like(e, step_size)
    best, best_margin = x.clone(), torch.full((len(x),), math.inf, device=x.device)

    def keep(candidate: torch.Tensor, z: torch.Tensor) -> None:
        m = logit_margin(z, y)
        better = m < best_margin
        best[better], best_margin[better] = candidate[better], m[better]

    for _ in range(restarts):
        xt = x
        if random_start:
            start = random_perturbation(x, e.flatten(), norm=norm, kind="ball", generator=generator)
            xt = _project_ball(x, x + start, e, norm)
        for _ in range(steps):
            z, grad = _loss_and_grad(model, xt, y)
            keep(xt, z)
            xt = _project_ball(x, xt + alpha * _steepest(grad, norm), e, norm)
        with torch.no_grad():
            keep(xt, model(xt))
    return best - x


def _logits_and_jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) of shape (N, K) and the per-sample Jacobian ∂f_k/∂x of shape (N, K, *x.shape[1:]), from one
    vector-Jacobian product vectorized over the K one-hot cotangents (``torch.func.vmap`` of ``vjp``)."""
    z, vjp_fn = torch.func.vjp(model, x)
    k = z.shape[1]
    cotangents = torch.eye(k, dtype=z.dtype, device=z.device)[:, None, :].expand(k, len(x), k)
    (jac,) = torch.func.vmap(vjp_fn)(cotangents)
    return z.detach(), jac.transpose(0, 1).detach()


def deepfool(
    model: nn.Module, x: torch.Tensor, *, steps: int = 50, overshoot: float = 0.02, refine: bool = True,
    batch_size: int | None = None,
) -> torch.Tensor:
    """DeepFool (Moosavi-Dezfooli et al., 2016): the smallest L2 perturbation δ that changes the prediction
    ŷ, found by linearizing every class boundary: at x_t, with f_k = z_k − z_ŷ and w_k = ∇f_k,
    step r = (|f_l|/‖w_l‖ + 10⁻⁴)·w_l/‖w_l‖ towards the nearest one, l = argmin_{k≠ŷ} |f_k|/‖w_k‖, until
    x + (1 + overshoot)·Σr flips. With ``refine`` the result is then shrunk to the first prediction change
    along its own direction (:func:`geometry.distance_along`, plus 10⁻⁴ relative), which removes the
    overshoot. Box constraints
    are ignored, as in the original. Rows that do not flip within ``steps`` iterations are NaN. Samples go
    ``batch_size`` at a time (default: :func:`config.batch`'s ``deepfool``; the Jacobian needs K backward
    passes' memory).
    """
    steps = checks.integer("steps", steps)
    batch_size = config.batch("deepfool") if batch_size is None else checks.integer("batch_size", batch_size)
    overshoot = checks.non_negative("overshoot", overshoot)
    checks.batch(x)
    if len(x) > batch_size:
        return torch.cat([deepfool(model, xb, steps=steps, overshoot=overshoot, refine=refine,
                                   batch_size=batch_size) for xb in x.split(batch_size)])
    with _attack_mode(model, x, None, unit_box=False) as (xd, label):
        total = torch.zeros_like(xd)
        active = torch.ones(len(xd), dtype=torch.bool, device=xd.device)
        for it in range(steps + 1):
            idx = active.nonzero().squeeze(1)
            z, jac = _logits_and_jacobian(model, xd[idx] + (1 + overshoot) * total[idx])
            flipped = z.argmax(1) != label[idx]
            active[idx[flipped]] = False
            if not active.any() or it == steps:
                break
            idx, z, jac, lab = idx[~flipped], z[~flipped], jac[~flipped], label[idx][~flipped]
            f = z - z.gather(1, lab[:, None])
            w = (jac - jac[torch.arange(len(idx)), lab][:, None]).flatten(2)
            w_norm = w.norm(dim=2).clamp_min(1e-12)
            dist = (f.abs() / w_norm).scatter(1, lab[:, None], math.inf)
            nearest = dist.argmin(1)[:, None]
            step = (dist.gather(1, nearest) + 1e-4) / w_norm.gather(1, nearest)
            total[idx] += (step * w[torch.arange(len(idx)), nearest.squeeze(1)]).view_as(total[idx])
        delta = (1 + overshoot) * total
        delta[active] = math.nan
        done = (~active).nonzero().squeeze(1)
        if refine and len(done):
            size = norms(delta[done])
            r = distance_along(model, xd[done], delta[done], max_radius=1.001 * size.max().item(),
                               min_radius=1e-3 * size.min().item())
            keep = (1 + 1e-4) * r.clamp(max=size) / size  # 10⁻⁴ past the crossing survives rounding x + δ
            delta[done] *= keep.clamp(max=1).view(-1, *[1] * (xd.dim() - 1))
        return delta.to(x.device)


def flip_rate(model: nn.Module, x: torch.Tensor, x_perturbed: torch.Tensor) -> float:
    """Fraction of samples whose prediction changes: mean over i of [argmax f(x'ᵢ) ≠ argmax f(xᵢ)]."""
    checks.batch(x)
    checks.tensor("x_perturbed", x_perturbed, shape=tuple(x.shape))
    return (predict(model, x) != predict(model, x_perturbed)).float().mean().item()


def flip_radius(
    model: nn.Module, x: torch.Tensor, directions: torch.Tensor, *, lines: bool = False,
    max_radius: float | None = None, **kwargs,
) -> torch.Tensor:
    """Minimal L2 radius t along each direction u with argmax f(x + t·u/‖u‖) ≠ argmax f(x) (``inf`` if none
    up to ``max_radius``, by default the diagonal √D of the box [0, 1]^D); with ``lines`` the smaller of the
    radii along u and −u. ``directions`` shaped like x, or (N, K, …) for K per sample; keywords go to
    :func:`geometry.distance_along`."""
    checks.batch(x)
    walk = line_distance if checks.flag("lines", lines) else distance_along
    return walk(model, x, directions, max_radius=math.sqrt(x[0].numel()) if max_radius is None else max_radius,
                **kwargs)


def alignment(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, n_draws: int, *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """cos(u, ∇ₓL) for ``n_draws`` directions u uniform on the sphere per sample, shape (N, n_draws).
    In D dimensions cos(u, g) has mean 0 and variance 1/D (≈ N(0, 1/D)), whatever g is."""
    n_draws = checks.integer("n_draws", n_draws)
    g = input_gradient(model, x, y).flatten(1)
    u = sample_sphere(len(x) * n_draws, (g.shape[1],), generator=generator).to(g).view(len(x), n_draws, -1)
    return torch.einsum("nkd,nd->nk", u, g / g.norm(dim=1, keepdim=True).clamp_min(1e-12))


def pgd_radius(
    model: nn.Module, x: torch.Tensor, *, norm: str = "l2", max_eps: float = 4.0, n_bisect: int = 10, **kwargs
) -> torch.Tensor:
    """Per sample, the smallest budget ε at which :func:`pgd` flips the prediction, by bisection on
    [0, max_eps] run for all samples at once (``inf`` where even ``max_eps`` fails); keywords go to pgd."""
    max_eps, n_bisect = checks.positive("max_eps", max_eps), checks.integer("n_bisect", n_bisect)
    checks.batch(x, unit_box=True)
    label = predict(model, x)

    def flips(eps: torch.Tensor) -> torch.Tensor:
        return predict_unchecked(model, x + pgd(model, x, label, eps, norm=norm, **kwargs)) != label

    lo, hi = torch.zeros(len(x), device=x.device), torch.full((len(x),), float(max_eps), device=x.device)
    ok = flips(hi)
    for _ in range(n_bisect):
        mid = (lo + hi) / 2
        hit = flips(mid)
        lo, hi = torch.where(hit, lo, mid), torch.where(hit, mid, hi)
    return torch.where(ok, hi, torch.full_like(hi, math.inf))
