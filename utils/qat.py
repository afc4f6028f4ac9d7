"""Quantization-aware training (QAT): quantizers inside the network's forward pass, trained through them.

Rounding has a zero derivative almost everywhere, so QAT uses the *straight-through estimator* (STE):
the forward pass rounds, the backward pass treats the quantizer as the identity inside its range
(:func:`quant.fake_quantize_ste`). :func:`prepare_qat` turns every linear and convolution weight into a
:class:`FakeQuantize` parametrization of float "latent" weights that the optimizer updates.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from . import checks
from .quant import MinMax, QuantSpec, as_spec, code_range, fake_quantize_ste_unchecked, from_range, qparams


class FakeQuantize(nn.Module):
    """x ↦ x̂ = Δ·(clamp(round(x/Δ) + z, q_min, q_max) − z) in the forward pass, with the straight-through
    estimator (STE) in the backward pass: ∂x̂/∂x = 1 where x/Δ + z lies inside [q_min, q_max] and 0 where it
    is clipped. The forward value equals :func:`quant.fake_quantize` bit for bit.

    The grid is the ``spec``'s (a :class:`~utils.quant.QuantSpec`; a number of bits b: ``QuantSpec(b)``),
    calibrated on the tensor itself at every call; with ``observe`` it comes instead from running min/max
    estimates updated in training mode (exponential average, momentum 0.1) and frozen in eval mode, as
    activation quantizers do (per tensor, min-max); with ``scale`` given, Δ is a learnable parameter
    initialized there (LSQ, Esser et al. 2020), whose gradient is round(v) − v inside the range and q_min or
    q_max outside, scaled by 1/√(numel·q_max). With ``noise`` the training-mode forward adds uniform noise
    Δ·U(−½, ½) instead of rounding (noise injection); eval mode always rounds.
    """

    def __init__(self, spec: QuantSpec | int, *, observe: bool = False, scale: torch.Tensor | None = None,
                 noise: bool = False) -> None:
        super().__init__()
        spec = as_spec(spec)
        observe, noise = checks.flag("observe", observe), checks.flag("noise", noise)
        if scale is not None:
            checks.tensor("scale", scale)
            if (scale <= 0).any():
                raise ValueError("scale must be positive everywhere (a zero step quantizes everything to 0)")
        if sum([observe, scale is not None, noise]) > 1:
            raise ValueError("choose at most one of observe, a learnable scale and noise")
        if spec.rounding != "nearest":
            raise ValueError(f"quantization-aware training rounds to nearest; got rounding={spec.rounding!r}")
        if observe and (spec.per_channel or spec.calibration != MinMax()):
            raise ValueError(f"an observed range is per tensor and min-max; got {spec}")
        self.spec, self.observe, self.noise = spec, observe, noise
        self.scale = nn.Parameter(scale.detach().clone()) if scale is not None else None
        if observe:
            self.register_buffer("low", torch.tensor(0.0))
            self.register_buffer("high", torch.tensor(0.0))
            self.register_buffer("seen", torch.tensor(False))

    def extra_repr(self) -> str:
        mode = "observed range" if self.observe else "learned scale" if self.scale is not None else "calibrated"
        return f"{self.spec}, {mode}"

    def _grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.scale is not None:
            q_max = code_range(self.spec)[1]
            grad_scale = 1.0 / math.sqrt(x.numel() * q_max)
            scale = self.scale * grad_scale + (self.scale - self.scale * grad_scale).detach()
            return scale.abs().clamp_min(1e-12), torch.zeros_like(scale)
        if not self.observe:
            return qparams(x.detach(), self.spec)
        if self.training:
            lo, hi = x.detach().min(), x.detach().max()
            if not self.seen:
                self.low.copy_(lo)
                self.high.copy_(hi)
                self.seen.fill_(True)
            else:
                self.low.lerp_(lo, 0.1)
                self.high.lerp_(hi, 0.1)
        return from_range(self.low, self.high, self.spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero = self._grid(x)
        if self.noise and self.training:  # noise drawn from torch's stream: it is part of training, like dropout
            return x + scale.detach() * (torch.rand_like(x) - 0.5)
        return fake_quantize_ste_unchecked(x, scale, zero, self.spec)


def prepare_qat(
    model: nn.Module,
    weights: QuantSpec | int,
    activations: QuantSpec | int | None = None,
    *,
    learn_scale: bool = False,
    noise: bool = False,
) -> nn.Module:
    """A copy of ``model`` for quantization-aware training: every linear and convolution weight is
    fake-quantized on the grid ``weights`` in the forward pass (a number of bits b:
    :meth:`QuantSpec.for_weights`, symmetric per output channel; a :class:`FakeQuantize` parametrization, so
    the optimizer updates the float "latent" weights through the STE), and with ``activations`` every such
    layer's input too (a number of bits: :meth:`QuantSpec.for_activations`, on an observed range).
    ``learn_scale`` learns the weight scales (LSQ); ``noise`` trains with uniform weight noise of the
    quantizer's step instead (noise injection). Train it with :func:`utils.train.fit`; in eval mode, without
    ``activations``, its outputs equal those of :func:`ptq.quantize_weights` applied to its latent weights
    with the same spec."""
    from torch.nn.utils import parametrize

    w_spec = as_spec(weights, "weights")
    a_spec = None if activations is None else as_spec(activations, "activations")
    learn_scale, noise = checks.flag("learn_scale", learn_scale), checks.flag("noise", noise)
    if learn_scale and noise:
        raise ValueError("learn_scale and noise cannot be combined")
    out = copy.deepcopy(checks.model("model", model))
    layers = [m for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError("model has no linear or convolution layer to quantize")
    for module in layers:
        w = module.weight.detach()
        scale = qparams(w, w_spec)[0] if learn_scale else None
        parametrize.register_parametrization(module, "weight", FakeQuantize(w_spec, scale=scale, noise=noise))
        if a_spec is not None:
            module.input_quantizer = FakeQuantize(a_spec, observe=True)
            module.register_forward_pre_hook(lambda mod, inp: (mod.input_quantizer(inp[0]), *inp[1:]))
    return out


def latent_model(qat_model: nn.Module, like: nn.Module) -> nn.Module:
    """A plain copy of ``like`` (the float model :func:`prepare_qat` started from) holding the float "latent"
    weights and the biases that the QAT model trained; :func:`ptq.quantize_weights` of it reproduces the QAT
    model's quantized weights. (Built from ``like`` because a deep copy of a parametrized module shares its
    generated class with the original, so it cannot be un-parametrized safely.)"""
    checks.model("like", like)
    state = {k.replace(".parametrizations.weight.original", ".weight"): v
             for k, v in checks.model("qat_model", qat_model).state_dict().items()}
    out = copy.deepcopy(like)
    missing = [k for k, v in out.state_dict().items() if k not in state or state[k].shape != v.shape]
    if missing:
        raise ValueError(f"qat_model was not prepared from a model like this one: missing or reshaped {missing[:3]}")
    out.load_state_dict({k: state[k] for k in out.state_dict()})
    return out
