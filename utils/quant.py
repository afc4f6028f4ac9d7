"""Uniform quantization: the quantizer, its integer codes, and quantized copies of models.

A b-bit uniform quantizer with scale Δ and zero point z maps x to the integer code
q = clamp(round(x/Δ) + z, q_min, q_max) and back to x̂ = Δ·(q − z). Symmetric quantizers use z = 0 and
codes in [−(2^{b−1} − 1), 2^{b−1} − 1]; asymmetric ones use codes in [0, 2^b − 1]. Per-channel quantizers
have one (Δ, z) per slice along ``axis`` (the output channel of a weight).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

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
    layers: list[str] | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A copy of ``model`` with its weight tensors (:func:`weight_names`, or only those named in ``layers``)
    fake-quantized, one scale per output channel (axis 0) when ``per_channel``; the original is untouched."""
    _check_bits(bits)
    unknown = [n for n in layers or [] if n not in weight_names(model)]
    if unknown:
        raise ValueError(f"unknown weight tensors {unknown}; the model has {weight_names(model)}")

    def fn(name: str, w: torch.Tensor) -> torch.Tensor:
        if layers is not None and name not in layers:
            return w
        return quantize(w, bits, symmetric=symmetric, per_channel=per_channel, method=method, rounding=rounding,
                        generator=generator)

    return _map_weights(model, fn)


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


def fake_quantize_ste(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, *, symmetric: bool = True
) -> torch.Tensor:
    """:func:`fake_quantize` in the forward pass (bit for bit), the straight-through estimator in the
    backward pass: ∂x̂/∂x = 1 where x/Δ + z lies in [q_min, q_max], 0 where it is clipped; a ``scale`` that
    requires grad gets LSQ's gradient round(v) − v inside the range and q_min or q_max outside."""
    q_min, q_max = code_range(bits, symmetric)
    v = (x / scale + zero_point).clamp(q_min, q_max)  # clamp passes gradient only inside the range
    surrogate = (v + (torch.round(v) - v).detach() - zero_point) * scale
    exact = fake_quantize(x.detach(), scale.detach(), zero_point.detach(), bits, symmetric=symmetric)
    return exact + (surrogate - surrogate.detach())


class _InputQuantizer:
    """Forward pre-hook that fake-quantizes a module's input on a fixed asymmetric grid (with the
    straight-through estimator in the backward pass when ``straight_through``, else the true gradient of
    rounding, which is zero almost everywhere)."""

    def __init__(self, scale: torch.Tensor, zero: torch.Tensor, bits: int, straight_through: bool) -> None:
        self.scale, self.zero, self.bits = scale, zero, bits
        self.quantizer = fake_quantize_ste if straight_through else fake_quantize

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = inputs[0]
        return (self.quantizer(x, self.scale.to(x.device), self.zero.to(x.device), self.bits, symmetric=False),
                *inputs[1:])


def quantize_activations(
    model: nn.Module, bits: int, calibration: torch.Tensor, *, method: str = "minmax", percentile: float = 99.99,
    straight_through: bool = False,
) -> nn.Module:
    """A copy of ``model`` whose every linear and convolution layer fake-quantizes its *input* to ``bits``
    (asymmetric, per tensor), with the range calibrated once on the ``calibration`` batch (``minmax`` or
    ``percentile``, see :func:`qparams`): the activations of a W/A-quantized network. Gradients through the
    rounding are its true ones (zero almost everywhere) unless ``straight_through``."""
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
        m.register_forward_pre_hook(_InputQuantizer(scale, zero, bits, straight_through))
    return out


def rounding_analysis(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    bits: int,
    *,
    layers: list[str] | None = None,
    per_channel: bool = True,
    n_probes: int = 100,
    n_pairs: int = 8,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Rounding the weight tensors ``layers`` (default: all) to ``bits``, seen as a weight perturbation δ:

    - ``predicted``: E[ΔL] = Σᵢ (Δᵢ²/24)·Hᵢᵢ for noise with rounding's variance Δᵢ²/12 (weighted Hutchinson);
    - ``spread``: the standard deviation √(Σᵢ gᵢ²Δᵢ²/12) of the first-order term gᵀδ for such noise;
    - ``noise``: measured ½[L(θ+u) + L(θ−u)] − L(θ) for uniform noise u (``n_pairs`` antithetic pairs), whose
      first-order term cancels;
    - ``rtn``: measured ΔL of round-to-nearest, and ``rtn_first`` = gᵀδ, ``rtn_second`` = ½δᵀHδ of its
      actual error δ.
    """
    _check_bits(bits)
    theta = weights.parameters_of(model)
    names = weight_names(model) if layers is None else layers
    unknown = [n for n in names if n not in weight_names(model)]
    if unknown:
        raise ValueError(f"unknown weight tensors {unknown}; the model has {weight_names(model)}")
    step = {n: (qparams(t, bits, per_channel=per_channel)[0].expand_as(t) if n in names else torch.zeros_like(t))
            for n, t in theta.items()}
    trace, _ = weights.hessian_trace(model, x, y, n_probes=n_probes, generator=generator,
                                     scale={n: t / math.sqrt(12) for n, t in step.items()})
    g = weights.flatten(weights.gradient(model, x, y))
    spread = (g.pow(2) * weights.flatten(step).pow(2) / 12).sum().sqrt().item()
    base = weights.loss_surface(model, x, y, [step], torch.zeros(1, 1))[0].item()
    noise = [{n: t * (torch.rand(t.shape, generator=generator).to(t) - 0.5) for n, t in step.items()}
             for _ in range(n_pairs)]
    antithetic = torch.cat([torch.eye(n_pairs), -torch.eye(n_pairs)])
    noise_loss = weights.loss_surface(model, x, y, noise, antithetic)[0].mean().item()
    rtn = {n: (quantize(t, bits, per_channel=per_channel) - t) if n in names else torch.zeros_like(t)
           for n, t in theta.items()}
    rtn_loss = weights.loss_surface(model, x, y, [rtn], torch.ones(1, 1))[0].item()
    first, second = weights.quadratic_terms(model, x, y, rtn)
    return {"bits": bits, "predicted": 0.5 * trace, "spread": spread, "noise": noise_loss - base,
            "rtn": rtn_loss - base, "rtn_first": first, "rtn_second": second}


def onnx_benchmark(
    model: nn.Module, x: torch.Tensor, folder: str | os.PathLike[str], *, threads: int = 2, repeats: int = 30
) -> list[dict[str, float | str]]:
    """Real integer inference with ONNX Runtime: export the model to ONNX, quantize it with ONNX Runtime's
    dynamic int8 quantization (int8 weights; activations quantized on the fly), and measure for both the
    file size, the median latency of one sample and of the whole batch x on ``threads`` CPU threads, and
    how often the int8 model's prediction agrees with the float one's."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    _check_pair(x)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"float32": folder / "model.onnx", "prepared": folder / "prepared.onnx", "int8": folder / "int8.onnx"}
    cpu_model, xs = copy.deepcopy(model).cpu().eval(), x.detach().cpu()
    torch.onnx.export(cpu_model, (xs[:1],), paths["float32"], input_names=["x"], output_names=["logits"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, external_data=False, verbose=False)
    quant_pre_process(str(paths["float32"]), str(paths["prepared"]))
    quantize_dynamic(str(paths["prepared"]), str(paths["int8"]), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    reference = cpu_model(xs).argmax(1).numpy()
    rows = []
    for kind in ("float32", "int8"):
        session = ort.InferenceSession(str(paths[kind]), options, providers=["CPUExecutionProvider"])
        row = {"model": kind, "file size (kB)": paths[kind].stat().st_size / 1e3}
        batches = (("latency, 1 sample (ms)", xs[:1].numpy()), (f"latency, {len(xs)} samples (ms)", xs.numpy()))
        for label, batch in batches:
            session.run(None, {"x": batch})
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                session.run(None, {"x": batch})
                times.append(time.perf_counter() - start)
            row[label] = 1e3 * sorted(times)[len(times) // 2]
        row["agrees with float"] = float((session.run(None, {"x": xs.numpy()})[0].argmax(1) == reference).mean())
        rows.append(row)
    return rows


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
        _check_bits(bits)
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
        return _from_range(self.low, self.high, self.bits, self.symmetric)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero = self._grid(x)
        if self.noise and self.training:
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

    _check_bits(w_bits)
    if a_bits is not None:
        _check_bits(a_bits)
    if learn_scale and noise:
        raise ValueError("learn_scale and noise cannot be combined")
    out = copy.deepcopy(model)
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
    state = {k.replace(".parametrizations.weight.original", ".weight"): v for k, v in qat_model.state_dict().items()}
    out = copy.deepcopy(like)
    missing = [k for k in out.state_dict() if k not in state]
    if missing:
        raise ValueError(f"qat_model was not prepared from a model like this one: missing {missing[:3]}")
    out.load_state_dict({k: state[k] for k in out.state_dict()})
    return out
