"""Uniform quantization: the quantizer, its integer codes, and quantized copies of models.

A b-bit uniform quantizer with scale Δ and zero point z maps x to the integer code
q = clamp(round(x/Δ) + z, q_min, q_max) and back to x̂ = Δ·(q − z). Symmetric quantizers use z = 0 and
codes in [−(2^{b−1} − 1), 2^{b−1} − 1]; asymmetric ones use codes in [0, 2^b − 1]. Per-channel quantizers
have one (Δ, z) per slice along ``axis`` (the output channel of a weight).

The settings travel together as a :class:`QuantSpec`. Every function takes either a ``QuantSpec`` or a
number of bits plus keyword settings (``quantize(w, 4, per_channel=True)``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from . import checks, config

CALIBRATIONS = ("minmax", "percentile", "mse")
ROUNDINGS = ("nearest", "stochastic", "floor", "ceil")


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize: ``bits`` (1–16), ``symmetric`` (z = 0) or asymmetric, one scale per tensor or
    ``per_channel`` along ``axis``, the calibration ``method`` of the range (``percentile`` for the
    percentile method), and the ``rounding`` of x/Δ."""

    bits: int
    symmetric: bool = True
    per_channel: bool = False
    axis: int = 0
    method: str = "minmax"
    percentile: float = 99.99
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        checks.integer("bits", self.bits, minimum=1, maximum=16)
        checks.flag("symmetric", self.symmetric)
        checks.flag("per_channel", self.per_channel)
        checks.integer("axis", self.axis, minimum=None)
        checks.one_of("method", self.method, CALIBRATIONS)
        checks.number("percentile", self.percentile, low=50.0, high=100.0, low_open=True)
        checks.one_of("rounding", self.rounding, ROUNDINGS)

    def but(self, **changes: Any) -> QuantSpec:
        """A copy with some settings changed, e.g. ``spec.but(rounding="floor")``."""
        return replace(self, **changes)


def as_spec(spec: QuantSpec | int, options: dict[str, Any], **defaults: Any) -> QuantSpec:
    """``spec`` itself (no further ``options`` allowed), or ``QuantSpec(bits=spec, **defaults, **options)``."""
    if isinstance(spec, QuantSpec):
        if options:
            raise TypeError(f"pass the settings in the QuantSpec or as keywords, not both (got {sorted(options)})")
        return spec
    unknown = set(options) - set(QuantSpec.__dataclass_fields__)
    if unknown:
        allowed = list(QuantSpec.__dataclass_fields__)
        raise TypeError(f"unknown quantization settings {sorted(unknown)}; allowed: {allowed}")
    return QuantSpec(bits=spec, **{**defaults, **options})


def code_range(bits: int, symmetric: bool = True) -> tuple[int, int]:
    """(q_min, q_max): [−(2^{b−1} − 1), 2^{b−1} − 1] when symmetric (at least [−1, 1]), else [0, 2^b − 1]."""
    bits = checks.integer("bits", bits, minimum=1, maximum=16)
    if checks.flag("symmetric", symmetric):
        top = max(2 ** (bits - 1) - 1, 1)
        return -top, top
    return 0, 2**bits - 1


def _reduce_dims(x: torch.Tensor, spec: QuantSpec) -> tuple[int, ...]:
    """The dimensions a statistic is taken over: all, or all but ``spec.axis``."""
    if not spec.per_channel:
        return tuple(range(x.dim()))
    if not -x.dim() <= spec.axis < x.dim():
        raise ValueError(f"axis {spec.axis} is out of range for a tensor of shape {tuple(x.shape)}")
    return tuple(d for d in range(x.dim()) if d != spec.axis % x.dim())


def _range(x: torch.Tensor, dims: tuple[int, ...], spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) per slice: the min and max (``minmax``), or the (100 − p)-th and p-th percentiles."""
    if spec.method == "percentile":
        kept = [d for d in range(x.dim()) if d not in dims]
        flat = x.movedim(kept, list(range(len(kept)))).reshape(*[x.shape[d] for d in kept], -1)
        n = flat.shape[-1]
        k_hi = min(n, max(1, math.ceil(spec.percentile / 100 * n)))
        lo, hi = flat.kthvalue(n + 1 - k_hi, dim=-1).values, flat.kthvalue(k_hi, dim=-1).values
        shape = [1 if d in dims else x.shape[d] for d in range(x.dim())]
        return lo.reshape(shape), hi.reshape(shape)
    return x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)


def from_range(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point that cover [lo, hi] (symmetric: [−max|·|, max|·|])."""
    q_min, q_max = code_range(bits, symmetric)
    if symmetric:
        scale = (torch.maximum(lo.abs(), hi.abs()) / q_max).clamp_min(1e-12)
        return scale, torch.zeros_like(scale)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = ((hi - lo) / (q_max - q_min)).clamp_min(1e-12)
    return scale, torch.round(-lo / scale).clamp(q_min, q_max)


def qparams(x: torch.Tensor, spec: QuantSpec | int, **options: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale Δ and integer zero point z, shaped to broadcast against x. The range [lo, hi] is the min and
    max of x (``minmax``), its (100 − p)-th and p-th percentiles (``percentile``), or the clipped range
    c·[min, max] minimizing the squared error ‖Q(x) − x‖² (``mse``, c on a geometric grid of 61 points in
    [0.01, 1]). Symmetric: Δ = max(|lo|, |hi|)/q_max, z = 0; asymmetric: the range widened to include 0,
    Δ = (hi − lo)/(2^b − 1), z = round(−lo/Δ). Δ ≥ 1e-12, so an all-zero tensor stays zero."""
    spec = as_spec(spec, options)
    x = checks.tensor("x", x, min_dim=1).detach()
    dims = _reduce_dims(x, spec)
    lo, hi = _range(x, dims, spec)
    if spec.method != "mse":
        return from_range(lo, hi, spec.bits, spec.symmetric)
    nearest = spec.but(rounding="nearest")
    best, best_err = None, None
    for c in torch.logspace(-2, 0, 61).tolist():
        scale, zero = from_range(c * lo, c * hi, spec.bits, spec.symmetric)
        err = (fake_quantize(x, scale, zero, nearest) - x).pow(2).sum(dim=dims, keepdim=True)
        if best is None:
            best, best_err = (scale, zero), err
            continue
        better = err < best_err
        best = (torch.where(better, scale, best[0]), torch.where(better, zero, best[1]))
        best_err = torch.minimum(err, best_err)
    return best


def codes(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec | int, *,
    generator: torch.Generator | None = None, **options: Any,
) -> torch.Tensor:
    """Integer codes q = clamp(R(x/Δ) + z, q_min, q_max) as int64, with R round-half-to-even (``nearest``,
    like PyTorch), ⌊·⌋ (``floor``), ⌈·⌉ (``ceil``), or ⌊v + u⌋ with u ~ U[0, 1) drawn on x's device
    (``stochastic``: rounds up with probability v − ⌊v⌋, so E[R(v)] = v)."""
    spec = as_spec(spec, options)
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
    q_min, q_max = code_range(spec.bits, spec.symmetric)
    v = x / scale
    if spec.rounding == "stochastic":
        gen = config.resolve_generator(generator, x.device)
        r = torch.floor(v + torch.rand(v.shape, generator=gen, device=gen.device, dtype=v.dtype).to(v.device))
    else:
        r = {"nearest": torch.round, "floor": torch.floor, "ceil": torch.ceil}[spec.rounding](v)
    return (r + zero_point).clamp(q_min, q_max).to(torch.int64)


def fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec | int, *,
    generator: torch.Generator | None = None, **options: Any,
) -> torch.Tensor:
    """x̂ = Δ·(q − z) on a given grid (:func:`codes` for q)."""
    q = codes(x, scale, zero_point, spec, generator=generator, **options)
    return scale * (q - zero_point).to(x.dtype)


def quantize(x: torch.Tensor, spec: QuantSpec | int, *, generator: torch.Generator | None = None,
             **options: Any) -> torch.Tensor:
    """The fake-quantized (dequantized) tensor x̂ = Δ·(q − z), with (Δ, z) from :func:`qparams` and the codes
    q rounded as the spec asks (:func:`codes`)."""
    spec = as_spec(spec, options)
    scale, zero = qparams(x, spec)
    return fake_quantize(x, scale, zero, spec, generator=generator)


def fake_quantize_ste(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, *, symmetric: bool = True
) -> torch.Tensor:
    """:func:`fake_quantize` in the forward pass (bit for bit), the straight-through estimator (STE) in the
    backward pass: ∂x̂/∂x = 1 where x/Δ + z lies in [q_min, q_max], 0 where it is clipped; a ``scale`` that
    requires grad gets LSQ's gradient round(v) − v inside the range and q_min or q_max outside."""
    q_min, q_max = code_range(bits, symmetric)
    v = (x / scale + zero_point).clamp(q_min, q_max)  # clamp passes gradient only inside the range
    surrogate = (v + (torch.round(v) - v).detach() - zero_point) * scale
    exact = fake_quantize(x.detach(), scale.detach(), zero_point.detach(), bits, symmetric=symmetric)
    return exact + (surrogate - surrogate.detach())


def weight_names(model: nn.Module) -> list[str]:
    """Names of the parameters a weight quantizer acts on: every weight tensor with at least 2 dimensions
    (linear and convolution weights); biases and normalization parameters stay in floating point."""
    return [name for name, p in checks.model("model", model).named_parameters() if p.dim() >= 2]


def check_layers(model: nn.Module, layers: list[str] | None) -> list[str]:
    """``layers`` (default: every weight tensor) if each names a weight tensor of ``model``."""
    names = weight_names(model)
    if layers is None:
        return names
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers must be a list of weight tensor names or None, got {layers!r}")
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ValueError(f"layers names unknown weight tensors {unknown}; the model has {names}")
    return list(layers)


def map_weights(model: nn.Module, fn: Callable[[str, torch.Tensor], torch.Tensor],
                layers: list[str] | None = None) -> nn.Module:
    """A copy of the model with every weight tensor w in ``layers`` (default: all) replaced by fn(name, w);
    the original is untouched."""
    chosen = set(check_layers(model, layers))
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name in chosen:
            params[name].copy_(fn(name, params[name].detach()))
    return out


def quantize_weights(
    model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None,
    generator: torch.Generator | None = None, **options: Any,
) -> nn.Module:
    """A copy of ``model`` with its weight tensors (:func:`weight_names`, or only those named in ``layers``)
    fake-quantized — by default symmetric, min-max, one scale per output channel (axis 0); the original is
    untouched."""
    spec = as_spec(spec, options, per_channel=True)
    return map_weights(model, lambda _, w: quantize(w, spec, generator=generator), layers)


def noisy_weights(
    model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None,
    generator: torch.Generator | None = None, **options: Any,
) -> nn.Module:
    """Rounding's budget in a random direction: w + Δ·u with u ~ U(−½, ½) i.i.d. (drawn on the weights'
    device) and the Δ that :func:`quantize_weights` would use, so the perturbation has the rounding error's
    distribution (variance Δ²/12, |δ| ≤ Δ/2) but ignores where the grid points are."""
    spec = as_spec(spec, options, per_channel=True)

    def noise(_: str, w: torch.Tensor) -> torch.Tensor:
        gen = config.resolve_generator(generator, w.device)
        u = torch.rand(w.shape, generator=gen, device=gen.device, dtype=w.dtype).to(w.device) - 0.5
        return w + qparams(w, spec)[0] * u

    return map_weights(model, noise, layers)


class _InputQuantizer:
    """Forward pre-hook that fake-quantizes a module's input on a fixed asymmetric grid (with the
    straight-through estimator in the backward pass when ``straight_through``, else the true gradient of
    rounding, which is zero almost everywhere)."""

    def __init__(self, scale: torch.Tensor, zero: torch.Tensor, bits: int, straight_through: bool) -> None:
        self.scale, self.zero, self.bits, self.straight_through = scale, zero, bits, straight_through

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x, scale, zero = inputs[0], self.scale.to(inputs[0].device), self.zero.to(inputs[0].device)
        if self.straight_through:
            return (fake_quantize_ste(x, scale, zero, self.bits, symmetric=False), *inputs[1:])
        return (fake_quantize(x, scale, zero, self.bits, symmetric=False), *inputs[1:])


def quantize_activations(
    model: nn.Module, bits: int, calibration: torch.Tensor, *, method: str = "minmax", percentile: float = 99.99,
    straight_through: bool = False,
) -> nn.Module:
    """A copy of ``model`` whose every linear and convolution layer fake-quantizes its *input* to ``bits``
    (asymmetric, per tensor), with the range calibrated once on the ``calibration`` batch (``minmax`` or
    ``percentile``, see :func:`qparams`): the activations of a W/A-quantized network. Gradients through the
    rounding are its true ones (zero almost everywhere) unless ``straight_through``."""
    spec = QuantSpec(bits, symmetric=False, method=checks.one_of("method", method, ("minmax", "percentile")),
                     percentile=percentile)
    checks.batch(calibration, x_name="calibration")
    straight_through = checks.flag("straight_through", straight_through)
    out = copy.deepcopy(checks.model("model", model)).eval()
    layers = [m for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError("model has no linear or convolution layer whose inputs could be quantized")
    checks.accepts(out, calibration, "calibration")
    seen: dict[nn.Module, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.__setitem__(mod, inp[0].detach())) for m in layers]
    with torch.no_grad():
        out(calibration.to(checks.model_device(out)))
    for h in hooks:
        h.remove()
    for m in layers:
        scale, zero = qparams(seen[m], spec)
        m.register_forward_pre_hook(_InputQuantizer(scale, zero, bits, straight_through))
    return out
