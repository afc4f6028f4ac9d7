"""What a model outputs on a batch: logits, predictions, accuracy and mean loss, in evaluation mode.

The public functions check their arguments once; the kernels ``logits_unchecked`` and ``predict_unchecked``
skip the checks, for loops that call them many times on inputs already checked (a boundary search calls the
model dozens of times on the same rays). Every ``*_unchecked`` kernel of the package follows this rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, config


def hooked_forward_unchecked(model: nn.Module, x: torch.Tensor, hooks: list) -> None:
    """One forward pass of ``x`` (on the model's device) in eval mode without gradients, for the forward ``hooks``
    (their handles, already registered) to read or change what the layers see and output; the hooks are removed
    afterwards, also on an error. A kernel: the caller has checked the arguments."""
    try:
        with torch.no_grad(), checks.eval_mode(model):
            model(x.to(checks.model_device(model)))
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def logits_unchecked(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """:func:`logits` without the checks: a kernel for inner loops, whose arguments the caller has checked."""
    batch_size = batch_size or config.batch("inference")
    dev = checks.model_device(model)
    with checks.eval_mode(model):
        z = torch.cat([model(xb.to(dev)) for xb in x.split(batch_size)])
        return z.to(x.device, torch.promote_types(z.dtype, torch.float32))


def predict_unchecked(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """:func:`predict` without the checks: a kernel for inner loops, whose arguments the caller has checked."""
    return logits_unchecked(model, x, batch_size).argmax(dim=1)


def logits(model: nn.Module, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    """Model outputs z = f(x) in eval mode, computed in batches (default: :func:`config.batch`'s
    ``inference``) on the model's device, returned on x's in at least single precision (half-precision
    outputs are widened; a double-precision model keeps its precision)."""
    checks.model("model", model)
    checks.batch(x)
    batch_size = None if batch_size is None else checks.integer("batch_size", batch_size)
    checks.accepts(model, x)
    return logits_unchecked(model, x, batch_size)


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    """Predicted labels argmax_k f(x)_k."""
    return logits(model, x, batch_size=batch_size).argmax(dim=1)


def _labelled(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """Logits of (x, y) after checking the labels against the number of classes the model outputs."""
    checks.batch(x, y)
    z = logits(model, x, batch_size=batch_size)
    checks.labels("y", y, len(x), z.shape[1])
    return z


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int | None = None) -> float:
    """Accuracy: the fraction of samples with argmax_k f(x)_k = y."""
    return (_labelled(model, x, y, batch_size).argmax(1) == y.to(x.device)).float().mean().item()


@config.full_precision()
def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int | None = None) -> float:
    """Mean cross-entropy L = (1/N) Σᵢ −log softmax(f(xᵢ))_{yᵢ}."""
    return F.cross_entropy(_labelled(model, x, y, batch_size), y.to(x.device)).item()
