"""Compensation chosen by the rounding itself, fit on calibration data, without retraining: AdaRound (Nagel et
al. 2020) learns for every weight whether to round up or down so that the layer's output changes least; GPTQ
(Frantar et al. 2023, after Optimal Brain Quantization, Frantar and Alistarh 2022) rounds one column of weights
at a time and moves the not-yet-rounded weights of the same rows to cancel the error — "the other weights
compensate", in closed form.

Both minimize a layer's output error E(δ) = Σ_r δ_r G δ_rᵀ = ½ tr(δHδᵀ), G = XᵀX/N on the calibration rows
X, H = 2G (:mod:`utils.equalization`), layer after layer in the order the network runs them; each layer's
inputs are read by a forward pre-hook from the network whose earlier layers are already rounded. The grid is
a :class:`~utils.quant.QuantSpec`'s, fixed from the float weights as in PTQ (a number of bits b:
:meth:`QuantSpec.for_weights`). Both return the direction the weights move (:mod:`utils.perturbations`) and
are registered as the rounding methods ``"gptq"`` and ``"adaround"`` (``fit=(x, y)``; only x is used).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from . import checks, perturbations
from .equalization import Statistics, input_rows, layer_of, statistics
from .outputs import hooked_forward_unchecked
from .ptq import check_layers
from .quant import QuantSpec, as_spec, fake_quantize_unchecked, qparams
from .weights import Direction, difference

ZETA, GAMMA = 1.1, -0.1
"""AdaRound's rectified sigmoid h(V) = clip(σ(V)(ζ − γ) + γ, 0, 1) stretches σ to (γ, ζ), so h reaches 0 and 1."""


def grid(w: torch.Tensor, spec: QuantSpec | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale Δ and zero point z of every weight of ``w`` on the grid ``spec`` (:func:`quant.qparams` of the
    float weights), both shaped like ``w`` flattened to (out, d)."""
    spec = as_spec(spec, "weights")
    scale, zero = qparams(checks.tensor("w", w, min_dim=2), spec)
    return scale.expand_as(w).reshape(len(w), -1), zero.expand_as(w).reshape(len(w), -1)


def _check_layer(w: torch.Tensor, gram: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor,
                 spec: QuantSpec) -> QuantSpec:
    """The arguments of a one-layer solver: w (out, d), G (d, d), Δ and z shaped like w; rounding to nearest."""
    checks.tensor("w", w, min_dim=2)
    if w.dim() != 2:
        raise ValueError(f"w must be a weight flattened to (out, d), got shape {tuple(w.shape)}")
    checks.tensor("gram", gram, shape=(w.shape[1], w.shape[1]))
    checks.tensor("scale", scale, shape=tuple(w.shape))
    checks.tensor("zero", zero, shape=tuple(w.shape))
    return nearest_spec(spec)


def nearest_spec(spec: QuantSpec | int) -> QuantSpec:
    """``spec`` (a number of bits: :meth:`QuantSpec.for_weights`) if it rounds to nearest: AdaRound and GPTQ
    choose the rounding themselves, so a spec asking for another is a mistake."""
    spec = as_spec(spec, "weights")
    if spec.rounding != "nearest":
        raise ValueError(f"spec must round to nearest (the method chooses the rounding itself); got {spec.rounding!r}")
    return spec


def gptq_layer(w: torch.Tensor, gram: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, spec: QuantSpec, *,
               block_size: int = 128, dampening: float = 0.01) -> torch.Tensor:
    """GPTQ on one layer (Frantar et al. 2023, Algorithm 1): the rounded weights, shaped like w (out, d).

    With H = 2G + λI (λ = ``dampening`` × mean diag 2G; an input never seen gets Hⱼⱼ = 1) and U the upper
    Cholesky factor of H⁻¹, the columns j = 1 … d are rounded in turn, all rows at once: q = Q(w_:,j), and the
    error is spread over the columns not yet rounded, w_:,k ← w_:,k − (w_:,j − q)/U_jj · U_jk (k > j) — the
    optimal compensation δ_F = −(w_q − q)/[H_F⁻¹]_qq · (H_F⁻¹)_:,q of Optimal Brain Quantization, which U
    gives for every step at once. Updates beyond the current block of ``block_size`` columns are applied
    once per block (lazy batches: the same result, fewer memory passes)."""
    spec = _check_layer(w, gram, scale, zero, spec)
    block_size = checks.integer("block_size", block_size)
    dampening = checks.positive("dampening", dampening)
    rows, d = w.shape
    h = 2 * gram.detach().double().clone()
    h.diagonal()[h.diagonal() == 0] = 1.0
    h.diagonal().add_(dampening * h.diagonal().mean())
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    todo, q = w.detach().double().clone(), torch.zeros(rows, d, dtype=torch.float64, device=w.device)
    s, z = scale.double(), zero.double()
    for start in range(0, d, block_size):
        end = min(start + block_size, d)
        block, errors = todo[:, start:end].clone(), torch.zeros(rows, end - start, dtype=torch.float64,
                                                                  device=w.device)
        for j in range(end - start):
            col = start + j
            q[:, col] = fake_quantize_unchecked(block[:, j], s[:, col], z[:, col], spec, None)
            errors[:, j] = (block[:, j] - q[:, col]) / u[col, col]
            block[:, j:] -= errors[:, j : j + 1] * u[col, col:end]
        todo[:, end:] -= errors @ u[start:end, end:]
    return fake_quantize_unchecked(q.to(w.dtype), scale, zero, spec, None)  # exactly on the float grid


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    """h(V) = clip(σ(V)(ζ − γ) + γ, 0, 1), ζ = 1.1, γ = −0.1: AdaRound's soft choice between down (0) and up (1)."""
    return (torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def adaround_settings(steps: int, lr: float, regularization: float, beta: tuple[float, float],
                      warmup: float) -> tuple[int, float, float, tuple[float, float], float]:
    """AdaRound's settings, validated: ``steps`` ≥ 1, ``lr`` > 0, ``regularization`` ≥ 0, ``beta`` = (start,
    end) with start ≥ end ≥ 1, ``warmup`` in [0, 1)."""
    if not isinstance(beta, (tuple, list)) or len(beta) != 2:
        raise TypeError(f"beta must be a pair (start, end) of exponents, got {beta!r}")
    high, low = (checks.number(f"beta[{i}]", b, low=1.0) for i, b in enumerate(beta))
    if high < low:
        raise ValueError(f"beta must anneal downwards, start >= end; got {tuple(beta)}")
    return (checks.integer("steps", steps), checks.positive("lr", lr),
            checks.non_negative("regularization", regularization), (high, low),
            checks.number("warmup", warmup, low=0.0, high=1.0, high_open=True))


def adaround_layer(w: torch.Tensor, gram: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, spec: QuantSpec, *,
                   steps: int = 500, lr: float = 1e-2, regularization: float = 1.0,
                   beta: tuple[float, float] = (20.0, 2.0), warmup: float = 0.2) -> torch.Tensor:
    """AdaRound on one layer (Nagel et al. 2020): the rounded weights, shaped like w (out, d), each on the grid
    point just below or just above it.

    W̃ = ⌊W⌋ + h(V)·(⌈W⌉ − ⌊W⌋) (grid neighbours), V initialized so that W̃ = W, and ``steps`` Adam steps (rate
    ``lr``, full batch) on Σ_r δ_r G δ_rᵀ + λ Σᵢ (1 − |2h(Vᵢ) − 1|^β), δ = W̃ − W, λ = ``regularization``:
    the layer's output error plus a term that pushes every h to 0 or 1, off for the first ``warmup`` fraction
    of the steps and then with β annealed linearly from ``beta[0]`` to ``beta[1]``. Each weight ends where its
    h ≥ ½ says: up, else down. (The paper uses λ = 0.01 over 10⁴–2·10⁴ minibatch steps; with a few hundred
    full-batch steps a stronger push, λ = 1, is needed for every h to reach 0 or 1 in time — chosen on the
    digits models' calibration output error.)"""
    spec = _check_layer(w, gram, scale, zero, spec)
    steps, lr, regularization, (high, low), warmup = adaround_settings(steps, lr, regularization, beta, warmup)
    w = w.detach()
    down = fake_quantize_unchecked(w, scale, zero, spec.but(rounding="floor"), None)
    up = fake_quantize_unchecked(w, scale, zero, spec.but(rounding="ceil"), None)
    gap = up - down
    rest = torch.where(gap > 0, (w - down) / gap.clamp_min(1e-30), torch.zeros_like(w))
    v = torch.logit(((rest - GAMMA) / (ZETA - GAMMA)).clamp(1e-6, 1 - 1e-6)).requires_grad_(True)
    g, first = gram.detach().to(w.dtype), int(warmup * steps)
    opt = torch.optim.Adam([v], lr=lr)
    with torch.enable_grad():
        for t in range(steps):
            h = rectified_sigmoid(v)
            delta = down + h * gap - w
            loss = ((delta @ g) * delta).sum()
            if t >= first:
                b = low + (high - low) * (1 - (t - first) / max(steps - first, 1))
                loss = loss + regularization * (1 - (2 * h - 1).abs().pow(b)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return torch.where(rectified_sigmoid(v.detach()) >= 0.5, up, down)


def layerwise(model: nn.Module, x: torch.Tensor, solve: Callable[[str, torch.Tensor, Statistics], torch.Tensor], *,
              layers: list[str] | None = None) -> nn.Module:
    """A copy of ``model`` whose weight tensors ``layers`` (default: all) are replaced, in the order the network
    runs them, by solve(name, w, stats) — w the float weight, stats the :class:`Statistics` of the layer's
    input rows in the copy, whose earlier layers are already replaced — in one pass over the calibration batch
    ``x`` (eval mode; forward pre-hooks)."""
    chosen = check_layers(model, layers)
    checks.batch(x)
    checks.accepts(model, x)
    out, done = copy.deepcopy(model), set()

    def hook(name: str) -> Callable:
        def replace(mod: nn.Module, inputs: tuple) -> None:
            if name not in done:  # a layer called twice is solved once
                done.add(name)
                new = solve(name, mod.weight.detach(), statistics(input_rows(mod, inputs[0].detach())))
                mod.weight.copy_(new.reshape(mod.weight.shape))
        return replace

    hooked_forward_unchecked(out, x, [layer_of(out, n).register_forward_pre_hook(hook(n)) for n in chosen])
    return out


def gptq(model: nn.Module, spec: QuantSpec | int, x: torch.Tensor, *, layers: list[str] | None = None,
         block_size: int = 128, dampening: float = 0.01) -> Direction:
    """GPTQ's rounding of the weight tensors ``layers`` (default: all) on the grid ``spec``, fit on the
    calibration batch ``x`` layer by layer (:func:`layerwise`, :func:`gptq_layer`): the direction W_GPTQ − W."""
    spec = nearest_spec(spec)
    checks.integer("block_size", block_size)
    checks.positive("dampening", dampening)

    def solve(name: str, w: torch.Tensor, stats: Statistics) -> torch.Tensor:
        flat = w.flatten(1)
        return gptq_layer(flat, stats.gram, *grid(w, spec), spec, block_size=block_size, dampening=dampening)

    return difference(model, layerwise(model, x, solve, layers=layers))


def adaround(model: nn.Module, spec: QuantSpec | int, x: torch.Tensor, *, layers: list[str] | None = None,
             steps: int = 500, lr: float = 1e-2, regularization: float = 1.0,
             beta: tuple[float, float] = (20.0, 2.0), warmup: float = 0.2) -> Direction:
    """AdaRound's rounding of the weight tensors ``layers`` (default: all) on the grid ``spec``, fit on the
    calibration batch ``x`` layer by layer (:func:`layerwise`, :func:`adaround_layer`): the direction W̃ − W."""
    spec = nearest_spec(spec)
    adaround_settings(steps, lr, regularization, beta, warmup)
    settings = dict(steps=steps, lr=lr, regularization=regularization, beta=beta, warmup=warmup)

    def solve(name: str, w: torch.Tensor, stats: Statistics) -> torch.Tensor:
        return adaround_layer(w.flatten(1), stats.gram, *grid(w, spec), spec, **settings)

    return difference(model, layerwise(model, x, solve, layers=layers))


def _fit_inputs(name: str, fit: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    if not isinstance(fit, (tuple, list)) or len(fit) != 2:
        raise ValueError(f"{name} needs fit=(x, y), the calibration data it is fit on (only x is used); got {fit!r}")
    return fit[0]


@perturbations.rounding_method("gptq", variance=None, fit=True)
def _gptq(model: nn.Module, spec: QuantSpec, *, layers: list[str] | None = None,
          fit: tuple[torch.Tensor, torch.Tensor] | None = None, generator: torch.Generator | None = None) -> Direction:
    """GPTQ fit on ``fit`` = (x, y) (deterministic: no generator is used)."""
    checks.generator("generator", generator)
    return gptq(model, spec, _fit_inputs("gptq", fit), layers=layers)


@perturbations.rounding_method("adaround", variance=None, fit=True)
def _adaround(model: nn.Module, spec: QuantSpec, *, layers: list[str] | None = None,
              fit: tuple[torch.Tensor, torch.Tensor] | None = None,
              generator: torch.Generator | None = None) -> Direction:
    """AdaRound fit on ``fit`` = (x, y) (deterministic: no generator is used)."""
    checks.generator("generator", generator)
    return adaround(model, spec, _fit_inputs("adaround", fit), layers=layers)
