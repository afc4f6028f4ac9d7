"""Input-space perturbations: random noise of a given size, and the attacks that search for the worst one.

Everything works on a whole batch at once (no loop over samples) on the model's device. Inputs and
adversarial examples live in [0, 1]; budgets ε are in pixel units, in the L2 norm ‖δ‖₂ = (Σᵢ δᵢ²)^½ or the
L∞ norm ‖δ‖∞ = maxᵢ |δᵢ|, over the D = prod(x.shape[1:]) coordinates of one sample. Attacks maximize the
cross-entropy L = −log softmax(f(x))_y; with ``y=None`` they use the model's own prediction, so success
means a *flipped prediction*.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .geometry import distance_along, line_distance, logit_margin, sample_sphere
from .train import _check_pair, _model_device, predict

NORMS = ("l2", "linf")
KINDS = ("sphere", "ball", "gaussian", "sign")
METHODS = ("fgsm", "pgd", "sphere", "gaussian", "sign")  # flip_curves' default: two attacks, three noises


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _per_sample(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """ε as a tensor broadcastable against x, shape (N, 1, …, 1); ε ≥ 0 a number or one value per sample."""
    eps_t = torch.as_tensor(eps, dtype=x.dtype).to(x.device)
    if eps_t.dim() > 1 or (eps_t.dim() == 1 and len(eps_t) != len(x)):
        raise ValueError(f"eps must be a number or a 1-D tensor with one value per sample ({len(x)}), "
                         f"got shape {tuple(eps_t.shape)}")
    if not torch.isfinite(eps_t).all() or (eps_t < 0).any():
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    return eps_t.expand(len(x)).reshape(-1, *[1] * (x.dim() - 1))


def norms(delta: torch.Tensor, norm: str = "l2") -> torch.Tensor:
    """Per-sample size of a batch of perturbations: ‖δᵢ‖₂ or ‖δᵢ‖∞, shape (N,)."""
    _check_norm(norm)
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
    norm. δ is not clipped: x + δ may leave [0, 1], which only makes the noise larger.
    """
    _check_pair(x)
    _check_norm(norm)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    e = _per_sample(eps, x)
    n, shape, d = len(x), tuple(x.shape[1:]), x[0].numel()
    flat = (n, d)
    if kind == "sign":
        u = torch.randint(0, 2, flat, generator=generator, dtype=x.dtype) * 2 - 1
        u = u / math.sqrt(d) if norm == "l2" else u
    elif kind == "gaussian":
        u = torch.randn(flat, generator=generator, dtype=x.dtype) / (math.sqrt(d) if norm == "l2" else 1.0)
    elif norm == "l2":
        u = sample_sphere(n, (d,), generator=generator).to(x.dtype)
        if kind == "ball":
            u = u * torch.rand(n, 1, generator=generator, dtype=x.dtype) ** (1 / d)
    else:
        u = torch.rand(flat, generator=generator, dtype=x.dtype) * 2 - 1
        if kind == "sphere":
            face = torch.randint(0, d, (n, 1), generator=generator)
            u = u.scatter(1, face, torch.randint(0, 2, (n, 1), generator=generator, dtype=x.dtype) * 2 - 1)
    return e * u.view(n, *shape).to(x.device)


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
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Validate (x, y), put the model in eval mode and yield x and y (default: the prediction) on the
    model's device; the model's mode is restored afterwards."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_pair(x, y)
    dev, was_training = _model_device(model), model.training
    xd = x.detach().to(dev)
    yd = predict(model, xd) if y is None else y.to(dev)
    model.eval()
    try:
        yield xd, yd
    finally:
        model.train(was_training)


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """∇ₓ L(f(x), y) per sample, in eval mode (``y=None``: the predicted labels)."""
    with _attack_mode(model, x, y) as (xd, yd):
        return _loss_and_grad(model, xd, yd)[1].to(x.device)


def _steepest(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm ascent direction: sign(g) for L∞, g/‖g‖₂ for L2 (zero where g = 0)."""
    if norm == "linf":
        return grad.sign()
    return grad / norms(grad).clamp_min(1e-12).view(-1, *[1] * (grad.dim() - 1))


def _project(x0: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Π(x): the nearest point to x in the ε-ball around x0 (L∞: clamp each δᵢ; L2: shrink δ to ‖δ‖₂ ≤ ε),
    then clipped to [0, 1] (clipping only shrinks δ, so the result stays in the ball)."""
    delta = x - x0
    if norm == "linf":
        delta = torch.maximum(torch.minimum(delta, eps), -eps)
    else:
        delta = delta * torch.clamp(eps / norms(delta).view(eps.shape).clamp_min(1e-12), max=1.0)
    return (x0 + delta).clamp(0.0, 1.0)


def fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, eps: float | torch.Tensor, *, norm: str = "linf"
) -> torch.Tensor:
    """Fast gradient (sign) method: x' = clip₍₀,₁₎(x + ε·s), s = sign(∇ₓL) for L∞ (Goodfellow et al., 2015)
    or s = ∇ₓL/‖∇ₓL‖₂ for L2."""
    _check_norm(norm)
    with _attack_mode(model, x, y) as (xd, yd):
        e = _per_sample(eps, xd)
        _, grad = _loss_and_grad(model, xd, yd)
        return _project(xd, xd + e * _steepest(grad, norm), e, norm).to(x.device)


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
) -> torch.Tensor:
    """Projected gradient ascent on the loss (Madry et al., 2018): x_{t+1} = Π(x_t + α·s(∇ₓL(x_t))), with
    s as in :func:`fgsm`, α = ``step_size`` (default 2.5·ε/steps), Π the projection onto the ε-ball around
    x intersected with [0, 1], and a random start in the ball. Over all iterates and ``restarts`` it keeps,
    per sample, the one with the lowest label margin z_y − max_{k≠y} z_k (negative: misclassified)."""
    _check_norm(norm)
    for key, v in (("steps", steps), ("restarts", restarts)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    with _attack_mode(model, x, y) as (xd, yd):
        e = _per_sample(eps, xd)
        alpha = e * 2.5 / steps if step_size is None else torch.full_like(e, step_size)
        best, best_margin = xd.clone(), torch.full((len(xd),), math.inf, device=xd.device)

        def keep(candidate: torch.Tensor, z: torch.Tensor) -> None:
            m = logit_margin(z, yd)
            better = m < best_margin
            best[better], best_margin[better] = candidate[better], m[better]

        for _ in range(restarts):
            start = random_perturbation(xd, e.flatten(), norm=norm, kind="ball", generator=generator)
            xt = _project(xd, xd + start, e, norm) if random_start else xd
            for _ in range(steps):
                z, grad = _loss_and_grad(model, xt, yd)
                keep(xt, z)
                xt = _project(xd, xt + alpha * _steepest(grad, norm), e, norm)
            with torch.no_grad():
                keep(xt, model(xt))
        return best.to(x.device)


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
    batch_size: int = 256,
) -> torch.Tensor:
    """DeepFool (Moosavi-Dezfooli et al., 2016): the smallest L2 perturbation δ that changes the prediction
    ŷ, found by linearizing every class boundary: at x_t, with f_k = z_k − z_ŷ and w_k = ∇f_k,
    step r = (|f_l|/‖w_l‖ + 10⁻⁴)·w_l/‖w_l‖ towards the nearest one, l = argmin_{k≠ŷ} |f_k|/‖w_k‖, until
    x + (1 + overshoot)·Σr flips. With ``refine`` the result is then shrunk to the first prediction change
    along its own direction (:func:`geometry.distance_along`, plus 10⁻⁴ relative), which removes the
    overshoot. Box constraints
    are ignored, as in the original. Rows that do not flip within ``steps`` iterations are NaN. Samples go
    ``batch_size`` at a time (the Jacobian needs K backward passes' memory).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or not overshoot >= 0:
        raise ValueError(f"need steps a positive integer and overshoot >= 0, got {steps!r} and {overshoot!r}")
    _check_pair(x)
    if len(x) > batch_size:
        return torch.cat([deepfool(model, xb, steps=steps, overshoot=overshoot, refine=refine,
                                   batch_size=batch_size) for xb in x.split(batch_size)])
    with _attack_mode(model, x, None) as (xd, label):
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
    _check_pair(x)
    if not isinstance(x_perturbed, torch.Tensor) or x_perturbed.shape != x.shape:
        got = tuple(x_perturbed.shape) if isinstance(x_perturbed, torch.Tensor) else type(x_perturbed).__name__
        raise ValueError(f"x_perturbed must have x's shape {tuple(x.shape)}, got {got}")
    return (predict(model, x) != predict(model, x_perturbed)).float().mean().item()


def flip_radius(
    model: nn.Module, x: torch.Tensor, directions: torch.Tensor, *, lines: bool = False,
    max_radius: float | None = None, **kwargs,
) -> torch.Tensor:
    """Minimal L2 radius t along each direction u with argmax f(x + t·u/‖u‖) ≠ argmax f(x) (``inf`` if none
    up to ``max_radius``, by default the diagonal √D of the box [0, 1]^D); with ``lines`` the smaller of the
    radii along u and −u. ``directions`` shaped like x, or (N, K, …) for K per sample; keywords go to
    :func:`geometry.distance_along`."""
    _check_pair(x)
    walk = line_distance if lines else distance_along
    return walk(model, x, directions, max_radius=max_radius or math.sqrt(x[0].numel()), **kwargs)


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
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}")
    _check_pair(x)
    e = _per_sample(eps, x).flatten().repeat_interleave(n_draws)
    xr = x.repeat_interleave(n_draws, dim=0)
    moved = xr + random_perturbation(xr, e, norm=norm, kind=kind, generator=generator)
    flipped = predict(model, moved) != predict(model, x).repeat_interleave(n_draws)
    return flipped.view(len(x), n_draws).float().mean(dim=1)


def alignment(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, n_draws: int, *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """cos(u, ∇ₓL) for ``n_draws`` directions u uniform on the sphere per sample, shape (N, n_draws).
    In D dimensions cos(u, g) has mean 0 and variance 1/D (≈ N(0, 1/D)), whatever g is."""
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}")
    g = input_gradient(model, x, y).flatten(1)
    u = sample_sphere(len(x) * n_draws, (g.shape[1],), generator=generator).to(g).view(len(x), n_draws, -1)
    return torch.einsum("nkd,nd->nk", u, g / g.norm(dim=1, keepdim=True).clamp_min(1e-12))


def pgd_radius(
    model: nn.Module, x: torch.Tensor, *, norm: str = "l2", max_eps: float = 4.0, n_bisect: int = 10, **kwargs
) -> torch.Tensor:
    """Per sample, the smallest budget ε at which :func:`pgd` flips the prediction, by bisection on
    [0, max_eps] run for all samples at once (``inf`` where even ``max_eps`` fails); keywords go to pgd."""
    if not max_eps > 0 or isinstance(n_bisect, bool) or not isinstance(n_bisect, int) or n_bisect < 1:
        raise ValueError(f"need max_eps > 0 and n_bisect a positive integer, got {max_eps} and {n_bisect!r}")
    label = predict(model, x)

    def flips(eps: torch.Tensor) -> torch.Tensor:
        return predict(model, pgd(model, x, label, eps, norm=norm, **kwargs)) != label

    lo, hi = torch.zeros(len(x), device=x.device), torch.full((len(x),), float(max_eps), device=x.device)
    ok = flips(hi)
    for _ in range(n_bisect):
        mid = (lo + hi) / 2
        hit = flips(mid)
        lo, hi = torch.where(hit, lo, mid), torch.where(hit, mid, hi)
    return torch.where(ok, hi, torch.full_like(hi, math.inf))


def flip_curves(
    model: nn.Module,
    x: torch.Tensor,
    eps_values: list[float],
    *,
    norm: str = "l2",
    methods: tuple[str, ...] = METHODS,
    n_draws: int = 10,
    steps: int = 20,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> list[dict[str, float | str]]:
    """Prediction-flip rate vs ε for attacks (``fgsm``, ``pgd``) and random noise of the same norm
    (``sphere``, ``ball``, ``gaussian``, ``sign``, averaged over ``n_draws`` draws per sample): one row
    ``{"norm", "method", "eps", "flip_rate"}`` per method and ε."""
    _check_norm(norm)
    unknown = [m for m in methods if m not in ("fgsm", "pgd", *KINDS)]
    if unknown or not eps_values or any(not e >= 0 for e in eps_values):
        raise ValueError(f"need methods among fgsm, pgd, {', '.join(KINDS)} (unknown: {unknown}) and a "
                         f"non-empty list of eps >= 0, got {eps_values}")
    label, rows = predict(model, x), []
    for eps in tqdm(eps_values, desc=f"flip rates ({norm})", disable=not progress, leave=False):
        for method in methods:
            if method in KINDS:
                rate = random_flip_fraction(model, x, eps, n_draws, norm=norm, kind=method,
                                            generator=generator).mean().item()
            elif method == "fgsm":
                rate = flip_rate(model, x, fgsm(model, x, label, eps, norm=norm))
            else:
                rate = flip_rate(model, x, pgd(model, x, label, eps, norm=norm, steps=steps, generator=generator))
            rows.append({"norm": norm, "method": method, "eps": float(eps), "flip_rate": rate})
    return rows
