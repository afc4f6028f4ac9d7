"""Uniform quantization of tensors: the quantizer's settings and its integer codes (quantized copies of
models are :mod:`utils.ptq`'s).

A b-bit uniform quantizer with scale Δ and zero point z maps x to the integer code
q = clamp(round(x/Δ) + z, q_min, q_max) and back to x̂ = Δ·(q − z). Symmetric quantizers use z = 0 and
codes in [−(2^{b−1} − 1), 2^{b−1} − 1]; asymmetric ones use codes in [0, 2^b − 1].

**One vocabulary.** A :class:`QuantSpec` is the only way to say how to quantize — in post-training
quantization, quantization-aware training (:mod:`utils.qat`), activations and the ONNX path
(:mod:`utils.deploy`) alike: ``bits``, ``symmetric``, the ``granularity`` (:class:`PerTensor`, or
:class:`PerAxis` — one (Δ, z) per slice along an axis, e.g. a weight's output channels), the
``calibration`` of the range (:class:`MinMax`, :class:`Percentile`, :class:`MSE`) and the ``rounding``.
Wherever a spec is expected, a plain number of bits b stands for that workflow's standard spec of b bits:
:meth:`QuantSpec.for_weights` (symmetric, per output channel, min-max — what PTQ of weights uses) for
weights, :meth:`QuantSpec.for_activations` (asymmetric, per tensor) for activations, and ``QuantSpec(b)``
(symmetric, per tensor) for a bare tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from . import checks, config

ROUNDINGS = ("nearest", "stochastic", "floor", "ceil")


@dataclass(frozen=True)
class PerTensor:
    """One scale and zero point for the whole tensor."""


@dataclass(frozen=True)
class PerAxis:
    """One scale and zero point per slice along ``axis`` (axis 0 of a weight: one per output channel)."""

    axis: int = 0

    def __post_init__(self) -> None:
        checks.integer("axis", self.axis, minimum=None)


@dataclass(frozen=True)
class MinMax:
    """The range [min x, max x]: nothing is clipped."""


@dataclass(frozen=True)
class Percentile:
    """The range between the (100 − p)-th and the p-th percentile of x: the tails are clipped."""

    percentile: float = 99.99

    def __post_init__(self) -> None:
        checks.number("percentile", self.percentile, low=50.0, high=100.0, low_open=True)


@dataclass(frozen=True)
class MSE:
    """The clipped range c·[min x, max x] minimizing the squared error ‖Q(x) − x‖², c on a geometric grid of
    61 points in [0.01, 1]."""


Granularity = PerTensor | PerAxis
Calibration = MinMax | Percentile | MSE


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize: ``bits`` (1–16), ``symmetric`` (z = 0) or asymmetric, the ``granularity`` of the
    scales, the ``calibration`` of the range, and the ``rounding`` of x/Δ (``nearest``: half to even, like
    PyTorch; ``stochastic``: up with probability equal to the fractional part; ``floor``; ``ceil``)."""

    bits: int
    symmetric: bool = True
    granularity: Granularity = field(default_factory=PerTensor)
    calibration: Calibration = field(default_factory=MinMax)
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        checks.integer("bits", self.bits, minimum=1, maximum=16)
        checks.flag("symmetric", self.symmetric)
        if not isinstance(self.granularity, (PerTensor, PerAxis)):
            raise TypeError(f"granularity must be quant.PerTensor() or quant.PerAxis(axis), got {self.granularity!r}")
        if not isinstance(self.calibration, (MinMax, Percentile, MSE)):
            raise TypeError("calibration must be quant.MinMax(), quant.Percentile(p) or quant.MSE(), "
                            f"got {self.calibration!r}")
        checks.one_of("rounding", self.rounding, ROUNDINGS)

    @classmethod
    def for_weights(cls, bits: int, **settings: Any) -> QuantSpec:
        """The weight quantizer of post-training quantization: symmetric, one scale per output channel
        (axis 0), min-max, round-to-nearest — with any of those ``settings`` changed."""
        return cls(bits, **{"symmetric": True, "granularity": PerAxis(0), **settings})

    @classmethod
    def for_activations(cls, bits: int, **settings: Any) -> QuantSpec:
        """The activation quantizer: asymmetric (activations after a ReLU are ≥ 0), one scale per tensor,
        min-max — with any of those ``settings`` changed."""
        return cls(bits, **{"symmetric": False, "granularity": PerTensor(), **settings})

    @property
    def per_channel(self) -> bool:
        """Whether the scales are per slice (:class:`PerAxis`)."""
        return isinstance(self.granularity, PerAxis)

    def but(self, **changes: Any) -> QuantSpec:
        """A copy with some settings changed, e.g. ``spec.but(rounding="floor")``."""
        return replace(self, **changes)


WORKFLOWS: dict[str, Callable[[int], QuantSpec]] = {
    "tensor": QuantSpec, "weights": QuantSpec.for_weights, "activations": QuantSpec.for_activations}


def as_spec(spec: QuantSpec | int, workflow: str = "tensor") -> QuantSpec:
    """``spec`` itself, or — for a number of bits b — the ``workflow``'s standard spec of b bits (one of
    :data:`WORKFLOWS`: ``tensor``, ``weights``, ``activations``)."""
    if isinstance(spec, QuantSpec):
        return spec
    if isinstance(spec, bool) or not isinstance(spec, int):
        raise TypeError(f"spec must be a quant.QuantSpec or a number of bits, got {spec!r}")
    return WORKFLOWS[checks.one_of("workflow", workflow, tuple(WORKFLOWS))](spec)


def code_range(spec: QuantSpec | int) -> tuple[int, int]:
    """(q_min, q_max): [−(2^{b−1} − 1), 2^{b−1} − 1] when symmetric (at least [−1, 1]), else [0, 2^b − 1]."""
    spec = as_spec(spec)
    if spec.symmetric:
        top = max(2 ** (spec.bits - 1) - 1, 1)
        return -top, top
    return 0, 2**spec.bits - 1


def _reduce_dims(x: torch.Tensor, spec: QuantSpec) -> tuple[int, ...]:
    """The dimensions a statistic is taken over: all, or all but the spec's axis."""
    if not spec.per_channel:
        return tuple(range(x.dim()))
    axis = spec.granularity.axis
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")
    return tuple(d for d in range(x.dim()) if d != axis % x.dim())


def _range(x: torch.Tensor, dims: tuple[int, ...], spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) per slice: the min and max, or the (100 − p)-th and p-th percentiles."""
    if isinstance(spec.calibration, Percentile):
        kept = [d for d in range(x.dim()) if d not in dims]
        flat = x.movedim(kept, list(range(len(kept)))).reshape(*[x.shape[d] for d in kept], -1)
        n = flat.shape[-1]
        k_hi = min(n, max(1, math.ceil(spec.calibration.percentile / 100 * n)))
        lo, hi = flat.kthvalue(n + 1 - k_hi, dim=-1).values, flat.kthvalue(k_hi, dim=-1).values
        shape = [1 if d in dims else x.shape[d] for d in range(x.dim())]
        return lo.reshape(shape), hi.reshape(shape)
    return x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)


def from_range(lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point that cover [lo, hi] (symmetric: [−max|·|, max|·|]), Δ ≥ 1e-12."""
    spec = as_spec(spec)
    checks.tensor("lo", lo)
    checks.tensor("hi", hi)
    if (lo > hi).any():
        raise ValueError("lo must not exceed hi anywhere (an empty range has no grid)")
    q_min, q_max = code_range(spec)
    if spec.symmetric:
        scale = (torch.maximum(lo.abs(), hi.abs()) / q_max).clamp_min(1e-12)
        return scale, torch.zeros_like(scale)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = ((hi - lo) / (q_max - q_min)).clamp_min(1e-12)
    return scale, torch.round(-lo / scale).clamp(q_min, q_max)


def qparams(x: torch.Tensor, spec: QuantSpec | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale Δ and integer zero point z for x, shaped to broadcast against it, from the spec's calibration
    and granularity (:class:`MinMax`, :class:`Percentile` or :class:`MSE`). Symmetric: Δ = max(|lo|, |hi|)/q_max,
    z = 0; asymmetric: the range widened to include 0, Δ = (hi − lo)/(2^b − 1), z = round(−lo/Δ). Δ ≥ 1e-12,
    so an all-zero tensor stays zero."""
    spec = as_spec(spec)
    x = checks.tensor("x", x, min_dim=1).detach()
    if x.numel() == 0:
        raise ValueError("x must hold at least one value to calibrate a range on, got an empty tensor")
    dims = _reduce_dims(x, spec)
    lo, hi = _range(x, dims, spec)
    if not isinstance(spec.calibration, MSE):
        return from_range(lo, hi, spec)
    nearest = spec.but(rounding="nearest")
    best, best_err = None, None
    for c in torch.logspace(-2, 0, 61).tolist():
        scale, zero = from_range(c * lo, c * hi, spec)
        err = (fake_quantize_unchecked(x, scale, zero, nearest, None) - x).pow(2).sum(dim=dims, keepdim=True)
        if best is None:
            best, best_err = (scale, zero), err
            continue
        better = err < best_err
        best = (torch.where(better, scale, best[0]), torch.where(better, zero, best[1]))
        best_err = torch.minimum(err, best_err)
    return best


def _check_grid(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> None:
    """x, a positive scale and a zero point that broadcast against it."""
    checks.tensor("x", x)
    checks.tensor("scale", scale)
    checks.tensor("zero_point", zero_point)
    if (scale <= 0).any():
        raise ValueError("scale must be positive everywhere")
    for name, t in (("scale", scale), ("zero_point", zero_point)):
        try:
            torch.broadcast_shapes(t.shape, x.shape)
        except RuntimeError:
            raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast against x of shape "
                             f"{tuple(x.shape)}") from None


def _codes(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec,
           generator: torch.Generator | None) -> torch.Tensor:
    """:func:`codes` without the checks: a kernel for inner loops, whose arguments the caller has checked."""
    q_min, q_max = code_range(spec)
    v = x / scale
    if spec.rounding == "stochastic":
        gen = config.resolve_generator(generator, x.device)
        r = torch.floor(v + torch.rand(v.shape, generator=gen, device=gen.device, dtype=v.dtype).to(v.device))
    else:
        r = {"nearest": torch.round, "floor": torch.floor, "ceil": torch.ceil}[spec.rounding](v)
    return (r + zero_point).clamp(q_min, q_max).to(torch.int64)


def fake_quantize_unchecked(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec,
                   generator: torch.Generator | None) -> torch.Tensor:
    """:func:`fake_quantize` without the checks: a kernel for inner loops, whose arguments the caller has checked."""
    return scale * (_codes(x, scale, zero_point, spec, generator) - zero_point).to(x.dtype)


def codes(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec | int, *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integer codes q = clamp(R(x/Δ) + z, q_min, q_max) as int64, with R the spec's rounding (``stochastic``:
    ⌊v + u⌋, u ~ U[0, 1) drawn on x's device, so E[R(v)] = v)."""
    spec = as_spec(spec)
    _check_grid(x, scale, zero_point)
    return _codes(x, scale, zero_point, spec, checks.generator("generator", generator))


def fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec | int, *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x̂ = Δ·(q − z) on a given grid (:func:`codes` for q)."""
    spec = as_spec(spec)
    _check_grid(x, scale, zero_point)
    return fake_quantize_unchecked(x, scale, zero_point, spec, checks.generator("generator", generator))


def quantize(x: torch.Tensor, spec: QuantSpec | int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The fake-quantized (dequantized) tensor x̂ = Δ·(q − z), with (Δ, z) from :func:`qparams` and the codes
    q rounded as the spec asks (:func:`codes`)."""
    spec = as_spec(spec)
    scale, zero = qparams(x, spec)
    return fake_quantize_unchecked(x, scale, zero, spec, checks.generator("generator", generator))


def fake_quantize_ste(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                      spec: QuantSpec | int) -> torch.Tensor:
    """:func:`fake_quantize` in the forward pass (bit for bit, round-to-nearest), the straight-through
    estimator (STE) in the backward pass: ∂x̂/∂x = 1 where x/Δ + z lies in [q_min, q_max], 0 where it is
    clipped; a ``scale`` that requires grad gets LSQ's gradient round(v) − v inside the range and q_min or
    q_max outside."""
    spec = as_spec(spec)
    _check_grid(x, scale, zero_point)
    return fake_quantize_ste_unchecked(x, scale, zero_point, spec)


def fake_quantize_ste_unchecked(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                                spec: QuantSpec) -> torch.Tensor:
    """:func:`fake_quantize_ste` without the checks: the kernel of every training step's forward pass."""
    spec = spec.but(rounding="nearest")
    q_min, q_max = code_range(spec)
    v = (x / scale + zero_point).clamp(q_min, q_max)  # clamp passes gradient only inside the range
    surrogate = (v + (torch.round(v) - v).detach() - zero_point) * scale
    exact = fake_quantize_unchecked(x.detach(), scale.detach(), zero_point.detach(), spec, None)
    return exact + (surrogate - surrogate.detach())
