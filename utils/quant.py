"""Uniform quantization: the quantizer, its integer codes, and quantized copies of models.

A b-bit uniform quantizer with scale Δ and zero point z maps x to the integer code
q = clamp(round(x/Δ) + z, q_min, q_max) and back to x̂ = Δ·(q − z). Symmetric quantizers use z = 0 and
codes in [−(2^{b−1} − 1), 2^{b−1} − 1]; asymmetric ones use codes in [0, 2^b − 1]. Per-channel quantizers
have one (Δ, z) per slice along ``axis`` (the output channel of a weight).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from . import weights
from .train import _check_pair


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer between 1 and 16, got {bits!r}")


def code_range(bits: int, symmetric: bool = True) -> tuple[int, int]:
    """(q_min, q_max): [−(2^{b−1} − 1), 2^{b−1} − 1] when symmetric (at least [−1, 1]), else [0, 2^b − 1]."""
    _check_bits(bits)
    if symmetric:
        top = max(2 ** (bits - 1) - 1, 1)
        return -top, top
    return 0, 2**bits - 1


def _reduce_dims(x: torch.Tensor, per_channel: bool, axis: int) -> tuple[int, ...]:
    """The dimensions a statistic is taken over: all, or all but ``axis``."""
    if not per_channel:
        return tuple(range(x.dim()))
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")
    return tuple(d for d in range(x.dim()) if d != axis % x.dim())


METHODS = ("minmax", "percentile", "mse")
ROUNDINGS = ("nearest", "stochastic", "floor", "ceil")


def _range(x: torch.Tensor, dims: tuple[int, ...], method: str, percentile: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) per slice: the min and max (``minmax``), or the (100 − p)-th and p-th percentiles."""
    if method == "percentile":
        kept = [d for d in range(x.dim()) if d not in dims]
        flat = x.movedim(kept, list(range(len(kept)))).reshape(*[x.shape[d] for d in kept], -1)
        n = flat.shape[-1]
        k_hi = min(n, max(1, math.ceil(percentile / 100 * n)))
        lo, hi = flat.kthvalue(n + 1 - k_hi, dim=-1).values, flat.kthvalue(k_hi, dim=-1).values
        shape = [1 if d in dims else x.shape[d] for d in range(x.dim())]
        return lo.reshape(shape), hi.reshape(shape)
    return x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)


def _from_range(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point that cover [lo, hi] (symmetric: [−max|·|, max|·|])."""
    q_min, q_max = code_range(bits, symmetric)
    if symmetric:
        scale = (torch.maximum(lo.abs(), hi.abs()) / q_max).clamp_min(1e-12)
        return scale, torch.zeros_like(scale)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = ((hi - lo) / (q_max - q_min)).clamp_min(1e-12)
    return scale, torch.round(-lo / scale).clamp(q_min, q_max)


def qparams(
    x: torch.Tensor,
    bits: int,
    *,
    symmetric: bool = True,
    per_channel: bool = False,
    axis: int = 0,
    method: str = "minmax",
    percentile: float = 99.99,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale Δ and integer zero point z, shaped to broadcast against x. The range [lo, hi] is the min and
    max of x (``minmax``), its (100 − p)-th and p-th percentiles (``percentile``), or the clipped range
    c·[min, max] minimizing the squared error ‖Q(x) − x‖² (``mse``, c on a geometric grid of 61 points in
    [0.01, 1]).
    Symmetric: Δ = max(|lo|, |hi|)/q_max, z = 0; asymmetric: the range widened to include 0,
    Δ = (hi − lo)/(2^b − 1), z = round(−lo/Δ). Δ ≥ 1e-12, so an all-zero tensor stays zero."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    _check_bits(bits)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 50 < percentile <= 100:
        raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    dims = _reduce_dims(x, per_channel, axis)
    x = x.detach()
    lo, hi = _range(x, dims, method, percentile)
    if method != "mse":
        return _from_range(lo, hi, bits, symmetric)
    best, best_err = None, None
    for c in torch.logspace(-2, 0, 61).tolist():
        scale, zero = _from_range(c * lo, c * hi, bits, symmetric)
        err = (fake_quantize(x, scale, zero, bits, symmetric=symmetric) - x).pow(2).sum(dim=dims, keepdim=True)
        if best is None:
            best, best_err = (scale, zero), err
            continue
        better = err < best_err
        best = (torch.where(better, scale, best[0]), torch.where(better, zero, best[1]))
        best_err = torch.minimum(err, best_err)
    return best


def codes(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    bits: int,
    *,
    symmetric: bool = True,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integer codes q = clamp(R(x/Δ) + z, q_min, q_max) as int64, with R round-half-to-even (``nearest``,
    like PyTorch), ⌊·⌋ (``floor``), ⌈·⌉ (``ceil``), or ⌊v + u⌋ with u ~ U[0, 1) (``stochastic``: rounds up
    with probability v − ⌊v⌋, so E[R(v)] = v)."""
    q_min, q_max = code_range(bits, symmetric)
    v = x / scale
    if rounding == "nearest":
        r = torch.round(v)
    elif rounding == "floor":
        r = torch.floor(v)
    elif rounding == "ceil":
        r = torch.ceil(v)
    elif rounding == "stochastic":
        r = torch.floor(v + torch.rand(v.shape, generator=generator, dtype=v.dtype).to(v.device))
    else:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    return (r + zero_point).clamp(q_min, q_max).to(torch.int64)


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    bits: int,
    *,
    symmetric: bool = True,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x̂ = Δ·(q − z) on a given grid (:func:`codes` for q)."""
    q = codes(x, scale, zero_point, bits, symmetric=symmetric, rounding=rounding, generator=generator)
    return scale * (q - zero_point).to(x.dtype)


def quantize(
    x: torch.Tensor,
    bits: int,
    *,
    symmetric: bool = True,
    per_channel: bool = False,
    axis: int = 0,
    rounding: str = "nearest",
    method: str = "minmax",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The fake-quantized (dequantized) tensor x̂ = Δ·(q − z), with (Δ, z) from :func:`qparams` and the codes
    q rounded as asked (:func:`codes`)."""
    scale, zero = qparams(x, bits, symmetric=symmetric, per_channel=per_channel, axis=axis, method=method)
    return fake_quantize(x, scale, zero, bits, symmetric=symmetric, rounding=rounding, generator=generator)


def weight_names(model: nn.Module) -> list[str]:
    """Names of the parameters a weight quantizer acts on: every weight tensor with at least 2 dimensions
    (linear and convolution weights); biases and normalization parameters stay in floating point."""
    return [name for name, p in model.named_parameters() if p.dim() >= 2]


def _map_weights(model: nn.Module, fn: Callable[[str, torch.Tensor], torch.Tensor]) -> nn.Module:
    """A copy of the model with every weight tensor w replaced by fn(name, w); the original is untouched."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name in weight_names(out):
            params[name].copy_(fn(name, params[name].detach()))
    return out


def quantize_weights(
    model: nn.Module,
    bits: int,
    *,
    per_channel: bool = True,
    symmetric: bool = True,
    method: str = "minmax",
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A copy of ``model`` with every weight tensor (:func:`weight_names`) fake-quantized, one scale per
    output channel (axis 0) when ``per_channel``; the original is untouched."""
    _check_bits(bits)
    return _map_weights(model, lambda _, w: quantize(w, bits, symmetric=symmetric, per_channel=per_channel,
                                                     method=method, rounding=rounding, generator=generator))


def noisy_weights(
    model: nn.Module, bits: int, *, per_channel: bool = True, generator: torch.Generator | None = None
) -> nn.Module:
    """Rounding's budget in a random direction: w + Δ·u with u ~ U(−½, ½) i.i.d. and the Δ that
    :func:`quantize_weights` would use, so the perturbation has the rounding error's distribution
    (variance Δ²/12, |δ| ≤ Δ/2) but ignores where the grid points are."""
    _check_bits(bits)

    def noise(_: str, w: torch.Tensor) -> torch.Tensor:
        scale, _zero = qparams(w, bits, per_channel=per_channel)
        return w + scale * (torch.rand(w.shape, generator=generator, dtype=w.dtype).to(w.device) - 0.5)

    return _map_weights(model, noise)


def adversarial_rounding(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, bits: int, *, per_channel: bool = True,
    symmetric: bool = True,
) -> nn.Module:
    """The worst rounding on :func:`quantize_weights`'s grid: each weight goes to the grid point just above
    (⌈w/Δ⌉) where the loss gradient g = ∂L/∂w is positive and just below (⌊w/Δ⌋) where it is not, so to
    first order ΔL = Σ |g|·(distance moved) — the adversary's box budget, never more than one grid step from
    round-to-nearest. A copy; the original is untouched."""
    _check_bits(bits)
    grads = weights.gradient(model, x, y)

    def worst(name: str, w: torch.Tensor) -> torch.Tensor:
        scale, zero = qparams(w, bits, symmetric=symmetric, per_channel=per_channel)
        up = fake_quantize(w, scale, zero, bits, symmetric=symmetric, rounding="ceil")
        down = fake_quantize(w, scale, zero, bits, symmetric=symmetric, rounding="floor")
        return torch.where(grads[name] > 0, up, down)

    return _map_weights(model, worst)


class _InputQuantizer:
    """Forward pre-hook that fake-quantizes a module's input on a fixed asymmetric grid."""

    def __init__(self, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> None:
        self.scale, self.zero, self.bits = scale, zero, bits

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = inputs[0]
        return (fake_quantize(x, self.scale.to(x.device), self.zero.to(x.device), self.bits, symmetric=False),
                *inputs[1:])


def quantize_activations(
    model: nn.Module, bits: int, calibration: torch.Tensor, *, method: str = "minmax", percentile: float = 99.99
) -> nn.Module:
    """A copy of ``model`` whose every linear and convolution layer fake-quantizes its *input* to ``bits``
    (asymmetric, per tensor), with the range calibrated once on the ``calibration`` batch (``minmax`` or
    ``percentile``, see :func:`qparams`): the activations of a W/A-quantized network."""
    _check_bits(bits)
    _check_pair(calibration)
    if method not in ("minmax", "percentile"):
        raise ValueError(f"activation calibration method must be 'minmax' or 'percentile', got {method!r}")
    out = copy.deepcopy(model).eval()
    layers = [m for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    seen: dict[nn.Module, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.__setitem__(mod, inp[0].detach())) for m in layers]
    with torch.no_grad():
        out(calibration.to(next(out.parameters()).device))
    for h in hooks:
        h.remove()
    for m in layers:
        scale, zero = qparams(seen[m], bits, symmetric=False, method=method, percentile=percentile)
        m.register_forward_pre_hook(_InputQuantizer(scale, zero, bits))
    return out
