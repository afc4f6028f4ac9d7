"""Uniform quantization: the quantizer, its integer codes, and quantized copies of models.

A b-bit uniform quantizer with scale Δ and zero point z maps x to the integer code
q = clamp(round(x/Δ) + z, q_min, q_max) and back to x̂ = Δ·(q − z). Symmetric quantizers use z = 0 and
codes in [−(2^{b−1} − 1), 2^{b−1} − 1]; asymmetric ones use codes in [0, 2^b − 1]. Per-channel quantizers
have one (Δ, z) per slice along ``axis`` (the output channel of a weight).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


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


def qparams(
    x: torch.Tensor, bits: int, *, symmetric: bool = True, per_channel: bool = False, axis: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale Δ and integer zero point z from the range of x (min-max calibration), shaped to broadcast
    against x: symmetric Δ = max|x| / q_max, z = 0; asymmetric Δ = (max x − min x)/(2^b − 1) with the range
    widened to include 0, z = round(−min x / Δ). Δ is at least 1e-12 (an all-zero tensor stays zero)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    q_min, q_max = code_range(bits, symmetric)
    dims = _reduce_dims(x, per_channel, axis)
    if symmetric:
        scale = (x.detach().abs().amax(dim=dims, keepdim=True) / q_max).clamp_min(1e-12)
        return scale, torch.zeros_like(scale)
    lo = x.detach().amin(dim=dims, keepdim=True).clamp(max=0)
    hi = x.detach().amax(dim=dims, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / (q_max - q_min)).clamp_min(1e-12)
    return scale, torch.round(-lo / scale).clamp(q_min, q_max)


def codes(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, *,
          symmetric: bool = True) -> torch.Tensor:
    """Integer codes q = clamp(round(x/Δ) + z, q_min, q_max) (round half to even, like PyTorch), as int64."""
    q_min, q_max = code_range(bits, symmetric)
    return (torch.round(x / scale) + zero_point).clamp(q_min, q_max).to(torch.int64)


def quantize(
    x: torch.Tensor, bits: int, *, symmetric: bool = True, per_channel: bool = False, axis: int = 0
) -> torch.Tensor:
    """The fake-quantized (dequantized) tensor x̂ = Δ·(q − z), with (Δ, z) from :func:`qparams`."""
    scale, zero = qparams(x, bits, symmetric=symmetric, per_channel=per_channel, axis=axis)
    return scale * (codes(x, scale, zero, bits, symmetric=symmetric) - zero).to(x.dtype)


def weight_names(model: nn.Module) -> list[str]:
    """Names of the parameters a weight quantizer acts on: every weight tensor with at least 2 dimensions
    (linear and convolution weights); biases and normalization parameters stay in floating point."""
    return [name for name, p in model.named_parameters() if p.dim() >= 2]


def quantize_weights(model: nn.Module, bits: int, *, per_channel: bool = True, symmetric: bool = True) -> nn.Module:
    """A copy of ``model`` with every weight tensor (:func:`weight_names`) replaced by its fake-quantized
    version, one scale per output channel (axis 0) when ``per_channel``; the original is untouched."""
    _check_bits(bits)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name in weight_names(out):
            params[name].copy_(quantize(params[name], bits, symmetric=symmetric, per_channel=per_channel))
    return out
