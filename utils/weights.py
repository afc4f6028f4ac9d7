"""Weight-space perturbations: the model as a function of its parameters, random and adversarial
moving the weights along a direction, and loss-landscape slices (random and adversarial directions are
:mod:`utils.directions`').

A *direction* is a dict ``{parameter name: tensor}`` with the shapes of the model's trainable parameters —
the one shape of every weight perturbation (:mod:`utils.perturbations`). There are two ways to apply one:
``applied(model, d, s)`` returns a copy with weights θ + s·d, ``perturbed(model, d, s)`` moves the model's
own weights there for the duration of a ``with`` block and back. Losses are the mean cross-entropy
L(θ) = (1/N) Σᵢ −log softmax(f(xᵢ; θ))_{yᵢ} on a fixed batch, computed with ``torch.func`` with the model
in evaluation mode (batch-norm layers use their running statistics), whatever mode it is in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from . import checks, config

Direction = dict[str, torch.Tensor]


def parameters_of(model: nn.Module) -> Direction:
    """The trainable parameters θ, detached, by name."""
    checks.model("model", model, trainable=True)
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def check_direction(model: nn.Module, direction: Direction, name: str = "direction") -> Direction:
    """``direction`` if it has one finite tensor of the right shape per trainable parameter of ``model``."""
    params = parameters_of(model)
    if not isinstance(direction, dict) or set(direction) != set(params):
        raise ValueError(f"{name} must be a dict with one tensor per trainable parameter of the model "
                         f"({len(params)}: {', '.join(list(params)[:3])}, …)")
    for n, p in params.items():
        checks.tensor(f"{name}[{n!r}]", direction[n], shape=tuple(p.shape))
    return direction


def flatten(direction: Direction) -> torch.Tensor:
    """All entries of a direction as one vector (in the dict's order)."""
    if not isinstance(direction, dict) or not all(isinstance(t, torch.Tensor) for t in direction.values()):
        raise TypeError(f"direction must be a dict of tensors, got {type(direction).__name__}")
    if not direction:
        raise ValueError("direction must hold at least one tensor, got an empty dict")
    return torch.cat([t.reshape(-1) for t in direction.values()])


def unflatten(vector: torch.Tensor, like: Direction) -> Direction:
    """The inverse of :func:`flatten`: a vector (or a batch of them, along the last axis) cut into tensors
    shaped like ``like``'s."""
    checks.tensor("vector", vector, min_dim=1, finite=False)
    if not isinstance(like, dict) or not like:
        raise TypeError(f"like must be a non-empty direction (a dict of tensors), got {type(like).__name__}")
    sizes = [t.numel() for t in like.values()]
    if vector.shape[-1] != sum(sizes):
        raise ValueError(f"vector has {vector.shape[-1]} entries, the direction {sum(sizes)}")
    parts = vector.split(sizes, dim=-1)
    return {n: p.reshape(*vector.shape[:-1], *t.shape) for (n, t), p in zip(like.items(), parts, strict=True)}


def stateless(model: nn.Module) -> Callable[[Direction, torch.Tensor], torch.Tensor]:
    """(θ, x) ↦ f(x; θ): the model as a function of its parameters, buffers fixed, evaluated in eval mode
    (the model's own mode is restored after each call), for ``torch.func`` transforms."""
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def f(params: Direction, x: torch.Tensor) -> torch.Tensor:
        with checks.eval_mode(model):
            return functional_call(model, {**buffers, **params}, (x,))

    return f


def check_data(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Validate a model with trainable parameters and a labelled batch (x, y) for it."""
    checks.model("model", model, trainable=True)
    checks.batch(x, y)
    checks.labels("y", y, len(x), checks.classes(model, x))


LossFunction = Callable[[Direction], torch.Tensor]


def batch_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[tuple[LossFunction, float]]:
    """[(θ ↦ mean cross-entropy on batch b, n_b/N)] over batches of :func:`config.batch`'s ``weights``
    samples on the model's device: L = Σ_b (n_b/N)·L_b, and so are its gradient and Hessian-vector products,
    computed one batch at a time to bound memory. Validates (x, y) against the model."""
    check_data(model, x, y)
    f, dev, size = stateless(model), checks.model_device(model), config.batch("weights")

    def cross_entropy(xb: torch.Tensor, yb: torch.Tensor) -> Callable[[Direction], torch.Tensor]:
        return lambda params: F.cross_entropy(f(params, xb), yb)

    return [(cross_entropy(xb.to(dev), yb.to(dev)), len(xb) / len(x))
            for xb, yb in zip(x.split(size), y.split(size), strict=True)]


def loss_function(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[Direction], torch.Tensor]:
    """θ ↦ L(θ) on (x, y), summed batch by batch (no gradient)."""
    parts = batch_losses(model, x, y)

    def loss(params: Direction) -> torch.Tensor:
        with torch.no_grad():
            return sum(w * fn(params) for fn, w in parts)

    return loss


def gradient_function(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[Direction], Direction]:
    """θ ↦ ∇L(θ) on (x, y), accumulated batch by batch."""
    parts = batch_losses(model, x, y)

    def gradient_at(params: Direction) -> Direction:
        total = {n: torch.zeros_like(t) for n, t in params.items()}
        for fn, w in parts:
            for n, g in grad(fn)(params).items():
                total[n] += w * g
        return total

    return gradient_at


@config.full_precision()
def gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Direction:
    """∇_θ L on all of (x, y), accumulated over batches of :func:`config.batch`'s ``weights`` samples."""
    return gradient_function(model, x, y)(parameters_of(model))


def minibatch_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, n_batches: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n_batches`` minibatch gradients ∇_θ L_B (B drawn without replacement within each batch), as rows of
    a (n_batches, P) matrix in :func:`flatten` order, computed with ``vmap`` over the batches."""
    check_data(model, x, y)
    batch_size = checks.integer("batch_size", batch_size, maximum=len(x))
    n_batches = checks.integer("n_batches", n_batches)
    gen = config.resolve_generator(generator)
    idx = torch.rand(n_batches, len(x), generator=gen, device=gen.device).argsort(dim=1)[:, :batch_size].cpu()
    dev = checks.model_device(model)
    xb, yb = x[idx].to(dev), y[idx].to(dev)
    theta, f = parameters_of(model), stateless(model)

    def batch_grad(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return flatten(grad(lambda p: F.cross_entropy(f(p, xs), ys))(theta))

    return vmap(batch_grad, chunk_size=config.batch("probes"))(xb, yb)  # a few minibatches' activations at a time


def difference(model: nn.Module, other: nn.Module) -> Direction:
    """θ_other − θ_model as a direction of ``model`` (e.g. a quantized copy's rounding error), so that
    ``perturbed(model, difference(model, other), 1)`` turns the model into ``other``."""
    mine, theirs = parameters_of(model), parameters_of(checks.model("other", other))
    if set(mine) != set(theirs) or any(mine[n].shape != theirs[n].shape for n in mine):
        raise ValueError("model and other must have the same parameters (names and shapes)")
    return {n: theirs[n].to(mine[n].device) - mine[n] for n in mine}


def applied(model: nn.Module, direction: Direction, scale: float = 1.0) -> nn.Module:
    """A copy of ``model`` whose parameters are θ + scale·d (the original is untouched): e.g. the quantized
    model, ``applied(model, rounding.rounding_error(model, 4))``."""
    check_direction(model, direction)
    scale = checks.number("scale", scale)
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for n, d in direction.items():
            params[n].add_(d.to(params[n].device), alpha=scale)
    return out


@contextmanager
def perturbed(model: nn.Module, direction: Direction, scale: float) -> Iterator[nn.Module]:
    """Context manager: inside, the model's parameters are θ + scale·d; on exit they are restored bit for
    bit (the original tensors are copied back, so no rounding error accumulates)."""
    check_direction(model, direction)
    scale = checks.number("scale", scale)
    params = dict(model.named_parameters())
    saved = {n: params[n].detach().clone() for n in direction}
    try:
        with torch.no_grad():
            for n, d in direction.items():
                params[n].add_(d.to(params[n].device), alpha=scale)
        yield model
    finally:
        with torch.no_grad():
            for n, t in saved.items():
                params[n].copy_(t)


@config.full_precision()
def loss_surface(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    directions: list[Direction],
    coords: torch.Tensor,
    *,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and accuracy at θ + Σⱼ c_kj·dⱼ for every row k of ``coords`` (shape (K, J), J = number of
    directions): a 1-D slice for J = 1, a 2-D plane for J = 2, or K independent draws for coords = s·I.
    ``chunk`` grid points (default: :func:`config.batch`'s ``surface``) are evaluated at once with ``vmap`` over
    stacked parameters."""
    if not isinstance(directions, (list, tuple)) or not directions:
        raise ValueError("directions must be a non-empty list of directions")
    for i, d in enumerate(directions):
        check_direction(model, d, f"directions[{i}]")
    checks.tensor("coords", coords, min_dim=2)
    if coords.dim() != 2 or coords.shape[1] != len(directions):
        raise ValueError(f"coords must be shaped (K, {len(directions)}) for {len(directions)} directions, "
                         f"got {tuple(coords.shape)}")
    chunk = config.batch("surface") if chunk is None else checks.integer("chunk", chunk)
    check_data(model, x, y)
    theta, f, dev = parameters_of(model), stateless(model), checks.model_device(model)
    x, y = x.to(dev), y.to(dev)
    basis = torch.stack([flatten(d).to(dev) for d in directions])  # (J, P)
    size = config.batch("weights")

    def evaluate(params: Direction) -> tuple[torch.Tensor, torch.Tensor]:
        loss, correct = 0.0, 0.0
        for xb, yb in zip(x.split(size), y.split(size), strict=True):
            z = f(params, xb)
            loss = loss + F.cross_entropy(z, yb, reduction="sum")
            correct = correct + (z.argmax(1) == yb).float().sum()
        return loss / len(x), correct / len(x)

    losses, accs = [], []
    with torch.no_grad():
        for c in coords.to(dev, basis.dtype).split(chunk):
            loss, acc = vmap(evaluate)(unflatten(flatten(theta) + c @ basis, theta))
            losses.append(loss)
            accs.append(acc)
    return torch.cat(losses).cpu(), torch.cat(accs).cpu()

