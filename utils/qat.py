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
from .quant import code_range, fake_quantize_ste, from_range, qparams


class FakeQuantize(nn.Module):
    """x ↦ x̂ = Δ·(clamp(round(x/Δ) + z, q_min, q_max) − z) in the forward pass, with the straight-through
    estimator (STE) in the backward pass: ∂x̂/∂x = 1 where x/Δ + z lies inside [q_min, q_max] and 0 where it
    is clipped. The forward value equals :func:`fake_quantize` bit for bit.

    The grid comes from the tensor itself (min-max, per channel along ``axis`` if asked) at every call; with
    ``observe`` it comes instead from running min/max estimates updated in training mode (exponential
    average, momentum 0.1) and frozen in eval mode, as activation quantizers do; with ``scale`` given, Δ is a
    learnable parameter initialized there (LSQ, Esser et al. 2020), whose gradient is round(v) − v inside the
    range and q_min or q_max outside, scaled by 1/√(numel·q_max). With ``noise`` the training-mode forward
    adds uniform noise Δ·U(−½, ½) instead of rounding (noise injection); eval mode always rounds.
    """

    def __init__(self, bits: int, *, symmetric: bool = True, per_channel: bool = False, axis: int = 0,
                 observe: bool = False, scale: torch.Tensor | None = None, noise: bool = False) -> None:
        super().__init__()
        checks.integer("bits", bits, minimum=1, maximum=16)
        observe, noise = checks.flag("observe", observe), checks.flag("noise", noise)
        if scale is not None:
            checks.tensor("scale", scale)
        if sum([observe, scale is not None, noise]) > 1:
            raise ValueError("choose at most one of observe, a learnable scale and noise")
        self.bits, self.symmetric, self.per_channel, self.axis = bits, symmetric, per_channel, axis
        self.observe, self.noise = observe, noise
        self.scale = nn.Parameter(scale.detach().clone()) if scale is not None else None
        if observe:
            self.register_buffer("low", torch.tensor(0.0))
            self.register_buffer("high", torch.tensor(0.0))
            self.register_buffer("seen", torch.tensor(False))

    def extra_repr(self) -> str:
        mode = "observed range" if self.observe else "learned scale" if self.scale is not None else "min-max"
        return f"bits={self.bits}, symmetric={self.symmetric}, per_channel={self.per_channel}, {mode}"

    def _grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.scale is not None:
            q_max = code_range(self.bits, self.symmetric)[1]
            grad_scale = 1.0 / math.sqrt(x.numel() * q_max)
            scale = self.scale * grad_scale + (self.scale - self.scale * grad_scale).detach()
            return scale.abs().clamp_min(1e-12), torch.zeros_like(scale)
        if not self.observe:
            return qparams(x.detach(), self.bits, symmetric=self.symmetric, per_channel=self.per_channel,
                           axis=self.axis)
        if self.training:
            lo, hi = x.detach().min(), x.detach().max()
            if not self.seen:
                self.low.copy_(lo)
                self.high.copy_(hi)
                self.seen.fill_(True)
            else:
                self.low.lerp_(lo, 0.1)
                self.high.lerp_(hi, 0.1)
        return from_range(self.low, self.high, self.bits, self.symmetric)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero = self._grid(x)
        if self.noise and self.training:  # noise drawn from torch's stream: it is part of training, like dropout
            return x + scale.detach() * (torch.rand_like(x) - 0.5)
        return fake_quantize_ste(x, scale, zero, self.bits, symmetric=self.symmetric)


def prepare_qat(
    model: nn.Module,
    w_bits: int,
    a_bits: int | None = None,
    *,
    per_channel: bool = True,
    learn_scale: bool = False,
    noise: bool = False,
) -> nn.Module:
    """A copy of ``model`` for quantization-aware training: every linear and convolution weight is
    fake-quantized to ``w_bits`` in the forward pass (a :class:`FakeQuantize` parametrization, so the
    optimizer updates the float "latent" weights through the STE), and with ``a_bits`` every such layer's
    input too (asymmetric, observed range). ``learn_scale`` learns the weight scales (LSQ); ``noise`` trains
    with uniform weight noise of the quantizer's step instead (noise injection). Train it with
    :func:`utils.train.fit`; in eval mode, with ``a_bits=None``, its outputs equal those of
    :func:`quantize_weights` applied to its latent weights."""
    from torch.nn.utils import parametrize

    checks.integer("w_bits", w_bits, minimum=1, maximum=16)
    if a_bits is not None:
        checks.integer("a_bits", a_bits, minimum=1, maximum=16)
    learn_scale, noise = checks.flag("learn_scale", learn_scale), checks.flag("noise", noise)
    if learn_scale and noise:
        raise ValueError("learn_scale and noise cannot be combined")
    out = copy.deepcopy(checks.model("model", model))
    for module in [m for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]:
        w = module.weight.detach()
        scale = qparams(w, w_bits, per_channel=per_channel)[0] if learn_scale else None
        quantizer = FakeQuantize(w_bits, per_channel=per_channel, scale=scale, noise=noise)
        parametrize.register_parametrization(module, "weight", quantizer)
        if a_bits is not None:
            module.input_quantizer = FakeQuantize(a_bits, symmetric=False, observe=True)
            module.register_forward_pre_hook(lambda mod, inp: (mod.input_quantizer(inp[0]), *inp[1:]))
    return out


def latent_model(qat_model: nn.Module, like: nn.Module) -> nn.Module:
    """A plain copy of ``like`` (the float model :func:`prepare_qat` started from) holding the float "latent"
    weights and the biases that the QAT model trained; :func:`quantize_weights` of it reproduces the QAT
    model's quantized weights. (Built from ``like`` because a deep copy of a parametrized module shares its
    generated class with the original, so it cannot be un-parametrized safely.)"""
    checks.model("like", like)
    state = {k.replace(".parametrizations.weight.original", ".weight"): v
             for k, v in checks.model("qat_model", qat_model).state_dict().items()}
    out = copy.deepcopy(like)
    missing = [k for k in out.state_dict() if k not in state]
    if missing:
        raise ValueError(f"qat_model was not prepared from a model like this one: missing {missing[:3]}")
    out.load_state_dict({k: state[k] for k in out.state_dict()})
    return out
