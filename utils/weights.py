"""Weight-space perturbations: random and adversarial directions, loss-landscape slices, curvature
(Hessian-vector products, Hutchinson's trace, top eigenvalues) and bit flips in an int8 model.

A *direction* is a dict ``{parameter name: tensor}`` with the shapes of the model's trainable parameters.
``perturbed(model, d, s)`` moves the weights to θ + s·d and back. Losses are the mean cross-entropy
L(θ) = (1/N) Σᵢ −log softmax(f(xᵢ; θ))_{yᵢ} on a fixed batch, computed with ``torch.func``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from . import config, quant
from .train import _check_pair, _model_device

Direction = dict[str, torch.Tensor]
NORMALIZATIONS = ("filter", "layer", "none")
BATCH_SIZE = 2048 if config.SCALE == "small" else 128
"""Samples per data batch in losses, gradients and Hessian-vector products: sums over batches are exact,
the batch only bounds memory (at the small scale every data set fits in one batch). Lower it if a large
model runs out of memory."""


def parameters_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters θ, detached, by name."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def _check_direction(model: nn.Module, direction: Direction) -> None:
    params = parameters_of(model)
    if not isinstance(direction, dict) or set(direction) != set(params):
        raise ValueError("direction must be a dict with one tensor per trainable parameter of the model")
    bad = [n for n, p in params.items() if direction[n].shape != p.shape]
    if bad:
        raise ValueError(f"direction has the wrong shape for parameters {bad}")


def flatten(direction: Direction) -> torch.Tensor:
    """All entries of a direction as one vector (in the dict's order)."""
    return torch.cat([t.reshape(-1) for t in direction.values()])


def unflatten(vector: torch.Tensor, like: Direction) -> Direction:
    """The inverse of :func:`flatten`: a vector cut into tensors shaped like ``like``'s."""
    sizes = [t.numel() for t in like.values()]
    if vector.shape[-1] != sum(sizes):
        raise ValueError(f"vector has {vector.shape[-1]} entries, the direction {sum(sizes)}")
    parts = vector.split(sizes, dim=-1)
    return {n: p.reshape(*vector.shape[:-1], *t.shape) for (n, t), p in zip(like.items(), parts, strict=True)}


def _stateless(model: nn.Module) -> Callable[[Direction, torch.Tensor], torch.Tensor]:
    """(θ, x) ↦ f(x; θ): the model as a function of its parameters (buffers fixed), for ``torch.func``."""
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    return lambda params, x: functional_call(model, {**buffers, **params}, (x,))


def _batch_losses(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> list[tuple[Callable[[Direction], torch.Tensor], float]]:
    """[(θ ↦ mean cross-entropy on batch b, n_b/N)] over batches of :data:`BATCH_SIZE` samples, for
    ``torch.func`` transforms: L = Σ_b (n_b/N)·L_b, and so are its gradient and Hessian-vector products,
    computed one batch at a time to bound memory."""
    _check_pair(x, y)
    f, dev = _stateless(model), _model_device(model)

    def cross_entropy(xb: torch.Tensor, yb: torch.Tensor) -> Callable[[Direction], torch.Tensor]:
        return lambda params: F.cross_entropy(f(params, xb), yb)

    return [(cross_entropy(xb.to(dev), yb.to(dev)), len(xb) / len(x))
            for xb, yb in zip(x.split(BATCH_SIZE), y.split(BATCH_SIZE), strict=True)]


def _loss_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[Direction], torch.Tensor]:
    """θ ↦ L(θ) on (x, y), summed batch by batch (no gradient)."""
    parts = _batch_losses(model, x, y)

    def loss(params: Direction) -> torch.Tensor:
        with torch.no_grad():
            return sum(w * fn(params) for fn, w in parts)

    return loss


def _gradient_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[Direction], Direction]:
    """θ ↦ ∇L(θ) on (x, y), accumulated batch by batch."""
    parts = _batch_losses(model, x, y)

    def gradient_at(params: Direction) -> Direction:
        total = {n: torch.zeros_like(t) for n, t in params.items()}
        for fn, w in parts:
            for n, g in grad(fn)(params).items():
                total[n] += w * g
        return total

    return gradient_at


def random_direction(
    model: nn.Module, *, normalization: str = "filter", generator: torch.Generator | None = None
) -> Direction:
    """A Gaussian direction d ~ N(0, I). ``filter``: each output filter/row dᵢ of a weight tensor rescaled
    to ‖dᵢ‖ = ‖θᵢ‖ (Li et al., 2018); ``layer``: each weight tensor to ‖d_l‖ = ‖θ_l‖. Both set the entries of
    1-D parameters (biases, normalization) to 0. ``none``: raw N(0, I) on every parameter."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    out = {}
    for name, p in parameters_of(model).items():
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        if normalization != "none" and p.dim() < 2:
            d = torch.zeros_like(p)
        elif normalization == "filter":
            d = d * (p.flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1)).view(-1, *[1] * (p.dim() - 1))
        elif normalization == "layer":
            d = d * p.norm() / d.norm()
        out[name] = d
    return out


def _rescale(v: Direction, relative: bool, reference: Direction) -> Direction:
    """Scale v to the unit of its ball: per weight tensor ‖v_l‖ = ‖θ_l‖ (1-D parameters zero) when
    ``relative``, else ‖v‖ = 1 over all parameters."""
    if relative:
        return {n: (t * reference[n].norm() / t.norm().clamp_min(1e-30)) if t.dim() >= 2 else torch.zeros_like(t)
                for n, t in v.items()}
    total = flatten(v).norm().clamp_min(1e-30)
    return {n: t / total for n, t in v.items()}


def _project(v: Direction, eps: float, relative: bool, reference: Direction) -> Direction:
    """The nearest point of the ball: ‖v_l‖ ≤ ε‖θ_l‖ per weight tensor (``relative``), else ‖v‖ ≤ ε."""
    if relative:
        return {n: t * torch.clamp(eps * reference[n].norm() / t.norm().clamp_min(1e-30), max=1.0)
                for n, t in v.items()}
    shrink = torch.clamp(eps / flatten(v).norm().clamp_min(1e-30), max=1.0)
    return {n: t * shrink for n, t in v.items()}


def adversarial_direction(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, relative: bool = True, steps: int = 5
) -> Direction:
    """Adversarial weight perturbation (as in AWP, Wu et al. 2020): gradient ascent on L from θ,
    v ← Π(v + α·ĝ) with α = 2.5·ε/steps. ``relative``: ĝ_l = g_l·‖θ_l‖/‖g_l‖ per weight tensor and the
    ball ‖v_l‖ ≤ ε‖θ_l‖ (1-D parameters fixed); else ĝ = g/‖g‖ and the ball ‖v‖ ≤ ε over all parameters.
    Returned in the ball's unit (:func:`_rescale`), so ``perturbed(model, d, eps)`` applies the attack and
    has the same per-layer norms as a ``layer``-normalized random direction."""
    if not eps > 0 or isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"need eps > 0 and steps a positive integer, got eps={eps!r}, steps={steps!r}")
    theta, gradient_at = parameters_of(model), _gradient_at(model, x, y)
    v = {n: torch.zeros_like(p) for n, p in theta.items()}
    for _ in range(steps):
        step = _rescale(gradient_at({n: theta[n] + v[n] for n in theta}), relative, theta)
        v = _project({n: v[n] + 2.5 * eps / steps * step[n] for n in v}, eps, relative, theta)
    return _rescale(v, relative, theta)


def difference(model: nn.Module, other: nn.Module) -> Direction:
    """θ_other − θ_model as a direction of ``model`` (e.g. a quantized copy's rounding error), so that
    ``perturbed(model, difference(model, other), 1)`` turns the model into ``other``."""
    mine, theirs = parameters_of(model), parameters_of(other)
    if set(mine) != set(theirs) or any(mine[n].shape != theirs[n].shape for n in mine):
        raise ValueError("the two models must have the same parameters (names and shapes)")
    return {n: theirs[n].to(mine[n].device) - mine[n] for n in mine}


@contextmanager
def perturbed(model: nn.Module, direction: Direction, scale: float) -> Iterator[nn.Module]:
    """Context manager: inside, the model's parameters are θ + scale·d; on exit they are restored bit for
    bit (the original tensors are copied back, so no rounding error accumulates)."""
    _check_direction(model, direction)
    params = dict(model.named_parameters())
    saved = {n: params[n].detach().clone() for n in direction}
    try:
        with torch.no_grad():
            for n, d in direction.items():
                params[n].add_(d.to(params[n].device), alpha=float(scale))
        yield model
    finally:
        with torch.no_grad():
            for n, t in saved.items():
                params[n].copy_(t)


def loss_surface(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    directions: list[Direction],
    coords: torch.Tensor,
    *,
    chunk: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and accuracy at θ + Σⱼ c_kj·dⱼ for every row k of ``coords`` (shape (K, J), J = number of
    directions): a 1-D slice for J = 1, a 2-D plane for J = 2, or K independent draws for coords = s·I.
    ``chunk`` grid points are evaluated at once with ``vmap`` over stacked parameters."""
    _check_pair(x, y)
    if coords.dim() != 2 or coords.shape[1] != len(directions) or not directions:
        raise ValueError(f"coords must be shaped (K, {len(directions)}) for {len(directions)} directions")
    for d in directions:
        _check_direction(model, d)
    theta, f, dev = parameters_of(model), _stateless(model), _model_device(model)
    x, y = x.to(dev), y.to(dev)
    basis = torch.stack([flatten(d).to(dev) for d in directions])  # (J, P)

    def evaluate(params: Direction) -> tuple[torch.Tensor, torch.Tensor]:
        loss, correct = 0.0, 0.0
        for xb, yb in zip(x.split(BATCH_SIZE), y.split(BATCH_SIZE), strict=True):
            z = f(params, xb)
            loss = loss + F.cross_entropy(z, yb, reduction="sum")
            correct = correct + (z.argmax(1) == yb).float().sum()
        return loss / len(x), correct / len(x)

    losses, accs, was_training = [], [], model.training
    model.eval()
    try:
        with torch.no_grad():
            for c in coords.to(dev, basis.dtype).split(chunk):
                stacked = unflatten(flatten(theta) + c @ basis, theta)
                loss, acc = vmap(evaluate)(stacked)
                losses.append(loss)
                accs.append(acc)
    finally:
        model.train(was_training)
    return torch.cat(losses).cpu(), torch.cat(accs).cpu()


def _quiet_forward_ad() -> None:
    """Load torch's forward-AD decompositions now, hiding the FutureWarning that torch itself raises on
    first use (it compiles them with the deprecated ``torch.jit.script``); later calls do nothing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        torch.autograd.forward_ad._maybe_load_decompositions()


def hessian_vector_product(model: nn.Module, x: torch.Tensor, y: torch.Tensor, v: Direction) -> Direction:
    """H·v, H = ∇²_θ L, by forward-over-reverse differentiation: the directional derivative of ∇L along v
    (``jvp`` of ``grad``), never forming H."""
    _check_direction(model, v)
    _quiet_forward_ad()
    theta = parameters_of(model)
    tangent = {n: v[n].to(theta[n]) for n in theta}
    total = {n: torch.zeros_like(t) for n, t in theta.items()}
    for fn, w in _batch_losses(model, x, y):
        for n, hv in jvp(grad(fn), (theta,), (tangent,))[1].items():
            total[n] += w * hv
    return total


def quadratic_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: Direction) -> tuple[float, float]:
    """The two terms of ΔL ≈ gᵀδ + ½δᵀHδ for the perturbation δ (one gradient, one Hessian-vector product)."""
    first = (flatten(gradient(model, x, y)) * flatten(delta)).sum().item()
    second = 0.5 * (flatten(hessian_vector_product(model, x, y, delta)) * flatten(delta)).sum().item()
    return first, second


def _batched_hvp(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function V (k, P) ↦ (H V_i)_i (k, P), vectorized over the k vectors."""
    _quiet_forward_ad()
    theta, parts = parameters_of(model), _batch_losses(model, x, y)

    def hvps(vectors: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(vectors)
        for fn, w in parts:
            hvp = lambda vec, fn=fn: flatten(jvp(grad(fn), (theta,), (unflatten(vec, theta),))[1])
            total += w * vmap(hvp)(vectors)
        return total

    return hvps


def hessian_trace(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_probes: int = 100, chunk: int = 10,
    scale: Direction | None = None, generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Hutchinson's estimate of Tr H = E[vᵀHv] over Rademacher probes v ∈ {−1, 1}^P, with its standard
    error (sample standard deviation of vᵀHv over √n_probes). With ``scale`` s the probes are s⊙v and the
    estimate is the weighted trace Σᵢ sᵢ² Hᵢᵢ = E[(s⊙v)ᵀH(s⊙v)] (s = 0 outside a layer restricts it to that
    layer). Probes are evaluated ``chunk`` at a time."""
    if isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 2:
        raise ValueError(f"n_probes must be an integer >= 2, got {n_probes!r}")
    if scale is not None:
        _check_direction(model, scale)
    size = flatten(parameters_of(model)).numel()
    hvp, dev = _batched_hvp(model, x, y), _model_device(model)
    s = flatten(scale).to(dev) if scale is not None else torch.ones(size, device=dev)
    quad = []
    for start in range(0, n_probes, chunk):
        k = min(chunk, n_probes - start)
        v = s * (torch.randint(0, 2, (k, size), generator=generator) * 2 - 1).float().to(dev)
        quad.append((v * hvp(v)).sum(dim=1))
    q = torch.cat(quad).double()
    return q.mean().item(), (q.std() / math.sqrt(n_probes)).item()


def top_eigenvalues(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int = 1, *, iters: int = 200, tol: float = 1e-5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The k eigenvalues of H of largest magnitude (for a trained network: the positive outliers), largest
    first, by subspace iteration with Rayleigh–Ritz: V ← orth(H V), λ = eig(Vᵀ H V), until the Ritz values
    change by less than ``tol`` (relative)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    size = flatten(parameters_of(model)).numel()
    if k > size:
        raise ValueError(f"k = {k} exceeds the number of parameters ({size})")
    hvp, dev = _batched_hvp(model, x, y), _model_device(model)
    basis = torch.linalg.qr(torch.randn(size, k, generator=generator).to(dev)).Q
    previous = None
    for _ in range(iters):
        hv = hvp(basis.T).T  # (P, k)
        ritz, vecs = torch.linalg.eigh(basis.T @ hv)
        order = ritz.abs().argsort(descending=True)
        ritz = ritz[order]
        basis = torch.linalg.qr(hv @ vecs[:, order]).Q
        if previous is not None and ((ritz - previous).abs() <= tol * ritz.abs().clamp_min(1e-12)).all():
            break
        previous = ritz
    return ritz.sort(descending=True).values.cpu()


def gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Direction:
    """∇_θ L on all of (x, y), accumulated over batches of :data:`BATCH_SIZE`."""
    return _gradient_at(model, x, y)(parameters_of(model))


def minibatch_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, n_batches: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n_batches`` minibatch gradients ∇_θ L_B (B drawn without replacement within each batch), as rows of
    a (n_batches, P) matrix in :func:`flatten` order, computed in one ``vmap`` over the batches."""
    _check_pair(x, y)
    if not 1 <= batch_size <= len(x) or n_batches < 1:
        raise ValueError(f"need 1 <= batch_size <= {len(x)} and n_batches >= 1, got {batch_size}, {n_batches}")
    idx = torch.stack([torch.randperm(len(x), generator=generator)[:batch_size] for _ in range(n_batches)])
    dev = _model_device(model)
    xb, yb = x[idx].to(dev), y[idx].to(dev)
    theta, f = parameters_of(model), _stateless(model)

    def batch_grad(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return flatten(grad(lambda p: F.cross_entropy(f(p, xs), ys))(theta))

    return vmap(batch_grad, chunk_size=4)(xb, yb)  # four minibatches' activations at a time


def int8_codes(model: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Symmetric per-output-channel int8 codes of every weight tensor (:func:`quant.weight_names`):
    {name: (q, Δ)} with q ∈ [−127, 127] (int64) and w ≈ Δ·q."""
    params = dict(model.named_parameters())
    out = {}
    for name in quant.weight_names(model):
        scale, zero = quant.qparams(params[name], 8, per_channel=True)
        out[name] = (quant.codes(params[name].detach(), scale, zero, 8), scale)
    return out


def flip_bits(q: torch.Tensor, bit: torch.Tensor) -> torch.Tensor:
    """Flip bit ``bit`` (0 = least significant, 7 = sign) of int8 two's-complement codes q (as int64)."""
    u = (q & 0xFF) ^ (1 << bit)
    return u - 256 * (u >= 128).long()


def _dequantized(state: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Direction:
    """Weight tensors Δ·q of an int8 state."""
    return {name: scale * q.to(scale.dtype) for name, (q, scale) in state.items()}


def _with_codes(model: nn.Module, state: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> nn.Module:
    """A copy of the model whose weight tensors are Δ·q from ``state`` (biases stay as they are)."""
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name, w in _dequantized(state).items():
            params[name].copy_(w)
    return out


def random_bit_flips(model: nn.Module, n_flips: int, *, generator: torch.Generator | None = None) -> nn.Module:
    """The int8 model (:func:`int8_codes`) with exactly ``n_flips`` distinct bits flipped, chosen uniformly
    among all 8·(number of weights) bits; a new model (the original is untouched)."""
    state = int8_codes(model)
    total = sum(q.numel() for q, _ in state.values())
    if isinstance(n_flips, bool) or not isinstance(n_flips, int) or not 0 <= n_flips <= 8 * total:
        raise ValueError(f"n_flips must be an integer in [0, {8 * total}], got {n_flips!r}")
    chosen = torch.randperm(8 * total, generator=generator)[:n_flips]
    offset = 0
    for name, (q, scale) in state.items():
        mine = chosen[(chosen >= 8 * offset) & (chosen < 8 * (offset + q.numel()))] - 8 * offset
        flat = q.flatten().clone()
        idx, bit = (mine // 8).to(q.device), (mine % 8).to(q.device)
        flat[idx] = flip_bits(flat[idx], bit)
        state[name], offset = (flat.view_as(q), scale), offset + q.numel()
    return _with_codes(model, state)


def bit_flip_attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_flips: int
) -> tuple[nn.Module, list[float]]:
    """Progressive bit search (Rakin et al., 2019) on the int8 model: at each of ``n_flips`` steps, rank
    every not yet flipped bit of each weight tensor by the first-order loss change g·Δw (Δw = Δ·(q' − q)),
    try the best bit of each tensor, and keep the one that raises the loss most. Returns the attacked model
    (exactly ``n_flips`` distinct bits flipped) and the loss after each flip."""
    if isinstance(n_flips, bool) or not isinstance(n_flips, int) or n_flips < 0:
        raise ValueError(f"n_flips must be a non-negative integer, got {n_flips!r}")
    state, history = int8_codes(model), []
    loss_fn, gradient_at = _loss_at(model, x, y), _gradient_at(model, x, y)
    floats = parameters_of(model)
    done = {n: torch.zeros(q.numel() * 8, dtype=torch.bool, device=q.device) for n, (q, _) in state.items()}
    for _ in range(n_flips):
        params = {**floats, **_dequantized(state)}
        g = gradient_at(params)
        trials = []
        for name, (q, scale) in state.items():
            bits = torch.arange(8, device=q.device)
            gain = g[name][..., None] * scale[..., None] * (flip_bits(q[..., None], bits) - q[..., None])
            pos = gain.flatten().masked_fill(done[name], -math.inf).argmax()
            flat = q.flatten().clone()
            flat[pos // 8] = flip_bits(flat[pos // 8], pos % 8)
            loss = loss_fn({**params, name: scale * flat.view_as(q).to(scale.dtype)}).item()
            trials.append((loss, name, pos, flat.view_as(q)))
        loss, name, pos, q_new = max(trials, key=lambda t: t[0])
        state[name] = (q_new, state[name][1])
        done[name][pos] = True
        history.append(loss)
    return _with_codes(model, state), history
