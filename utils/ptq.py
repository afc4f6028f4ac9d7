"""Post-training quantization (PTQ) of a model: which tensors a weight quantizer acts on, quantized copies
of a model's weights, and activations quantized on a calibrated grid. The grid is always a
:class:`~utils.quant.QuantSpec` (a number of bits b: :meth:`QuantSpec.for_weights` for weights,
:meth:`QuantSpec.for_activations` for activations); the caller's model is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from . import checks
from .quant import MSE, QuantSpec, as_spec, fake_quantize_ste_unchecked, fake_quantize_unchecked, qparams, quantize


def weight_names(model: nn.Module) -> list[str]:
    """Names of the parameters a weight quantizer acts on: every weight tensor with at least 2 dimensions
    (linear and convolution weights); biases and normalization parameters stay in floating point."""
    return [name for name, p in checks.model("model", model).named_parameters() if p.dim() >= 2]


def check_layers(model: nn.Module, layers: list[str] | None) -> list[str]:
    """``layers`` (default: every weight tensor) if each names a weight tensor of ``model``, in the model's
    order (so that random draws go to the same tensors in every run)."""
    names = weight_names(model)
    if layers is None:
        return names
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers must be a list of weight tensor names or None, got {layers!r}")
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ValueError(f"layers names unknown weight tensors {unknown}; the model has {names}")
    return [n for n in names if n in layers]


def map_weights(model: nn.Module, fn: Callable[[str, torch.Tensor], torch.Tensor],
                layers: list[str] | None = None) -> nn.Module:
    """A copy of the model with every weight tensor w in ``layers`` (default: all) replaced by fn(name, w),
    which must return a tensor of w's shape; the original is untouched."""
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(name, weight), got {fn!r}")
    chosen = check_layers(model, layers)
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name in chosen:
            new = fn(name, params[name].detach())
            if not isinstance(new, torch.Tensor) or new.shape != params[name].shape:
                raise ValueError(f"fn must return a tensor shaped like {name} {tuple(params[name].shape)}, got "
                                 f"{tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__}")
            params[name].copy_(new)
    return out


def quantize_weights(
    model: nn.Module, spec: QuantSpec | int, *, layers: list[str] | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A copy of ``model`` with its weight tensors (:func:`weight_names`, or only those named in ``layers``)
    fake-quantized on the grid ``spec`` (a number of bits: :meth:`QuantSpec.for_weights`); the original is
    untouched. Post-training quantization of the weights."""
    spec = as_spec(spec, "weights")
    checks.generator("generator", generator)
    return map_weights(model, lambda _, w: quantize(w, spec, generator=generator), layers)


class _InputQuantizer:
    """Forward pre-hook that fake-quantizes a module's input on a fixed grid (with the straight-through
    estimator in the backward pass when ``straight_through``, else the true gradient of rounding, which is
    zero almost everywhere)."""

    def __init__(self, scale: torch.Tensor, zero: torch.Tensor, spec: QuantSpec, straight_through: bool) -> None:
        self.scale, self.zero, self.spec, self.straight_through = scale, zero, spec, straight_through

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x, scale, zero = inputs[0], self.scale.to(inputs[0].device), self.zero.to(inputs[0].device)
        if self.straight_through:
            return (fake_quantize_ste_unchecked(x, scale, zero, self.spec), *inputs[1:])
        return (fake_quantize_unchecked(x, scale, zero, self.spec, None), *inputs[1:])


def quantize_activations(
    model: nn.Module, spec: QuantSpec | int, calibration: torch.Tensor, *, straight_through: bool = False,
) -> nn.Module:
    """A copy of ``model`` whose every linear and convolution layer fake-quantizes its *input* on the grid
    ``spec`` (a number of bits: :meth:`QuantSpec.for_activations`, asymmetric per tensor), with the range
    calibrated once on the ``calibration`` batch (:class:`MinMax` or :class:`Percentile`): the activations of
    a W/A-quantized network. Gradients through the rounding are its true ones (zero almost everywhere) unless
    ``straight_through``."""
    spec = as_spec(spec, "activations")
    if isinstance(spec.calibration, MSE) or spec.per_channel or spec.rounding != "nearest":
        raise ValueError("activations are quantized per tensor, with round-to-nearest, on a MinMax or Percentile "
                         f"range; got {spec}")
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
        m.register_forward_pre_hook(_InputQuantizer(scale, zero, spec, straight_through))
    return out
