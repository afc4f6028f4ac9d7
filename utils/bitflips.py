"""Bit flips in an int8 model: its integer codes, random flips, and the gradient-guided bit-flip attack.

Every weight tensor is stored as symmetric per-output-channel int8 codes q ∈ [−127, 127] with w ≈ Δ·q
(:func:`int8_codes`). Flipping bit b of a two's-complement byte changes q by ±2^b, and the sign bit (b = 7)
by ∓128: one flip can move a weight by up to 128 steps. Like every weight perturbation, flips are returned
as a direction (:mod:`utils.perturbations`): the step from the float weights to the int8 model with those
bits flipped, so ``weights.applied(model, d)`` is the flipped int8 model (``flip_direction(model, [])`` is
the int8 model itself).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import checks, config
from .ptq import weight_names
from .quant import QuantSpec, codes, qparams
from .weights import Direction, gradient_function, loss_function, parameters_of

Codes = dict[str, tuple[torch.Tensor, torch.Tensor]]
INT8 = QuantSpec.for_weights(8)


def int8_codes(model: nn.Module) -> Codes:
    """Symmetric per-output-channel int8 codes of every weight tensor (:func:`quant.weight_names`):
    {name: (q, Δ)} with q ∈ [−127, 127] (int64) and w ≈ Δ·q."""
    params = parameters_of(model)
    out = {}
    for name in weight_names(model):
        scale, zero = qparams(params[name], INT8)
        out[name] = (codes(params[name], scale, zero, INT8), scale)
    return out


def flip_bits(q: torch.Tensor, bit: torch.Tensor | int) -> torch.Tensor:
    """Flip bit ``bit`` (0 = least significant, 7 = sign) of int8 two's-complement codes q (held as int64)."""
    checks.tensor("q", q, floating=False)
    if q.dtype != torch.int64:
        raise TypeError(f"q must hold int64 codes, got dtype {q.dtype}")
    if q.numel() and (q.min() < -128 or q.max() > 127):
        raise ValueError("q must be int64 codes in the int8 range [-128, 127]")
    bit_t = torch.as_tensor(bit, device=q.device)
    if bit_t.is_floating_point() or bit_t.dtype == torch.bool or (bit_t < 0).any() or (bit_t > 7).any():
        raise ValueError(f"bit must be an integer (or integer tensor) in [0, 7], got {bit!r}")
    u = (q & 0xFF) ^ (1 << bit_t)
    return u - 256 * (u >= 128).long()


def _dequantized(state: Codes) -> Direction:
    """Weight tensors Δ·q of an int8 state."""
    return {name: scale * q.to(scale.dtype) for name, (q, scale) in state.items()}


def _direction(model: nn.Module, state: Codes) -> Direction:
    """The step from the model's float weights to the int8 weights Δ·q of ``state`` (biases unchanged)."""
    weights = _dequantized(state)
    return {n: weights[n] - t if n in weights else torch.zeros_like(t) for n, t in parameters_of(model).items()}


def flip_direction(model: nn.Module, flips: list[tuple[str, int, int]]) -> Direction:
    """The int8 model (:func:`int8_codes`) with the given flips — (weight tensor name, index into the
    flattened tensor, bit) — as a direction from the float weights."""
    state = int8_codes(model)
    if not isinstance(flips, (list, tuple)):
        raise TypeError(f"flips must be a list of (tensor name, index, bit) triples, got {type(flips).__name__}")
    for i, flip in enumerate(flips):
        if not isinstance(flip, (list, tuple)) or len(flip) != 3:
            raise ValueError(f"flips[{i}] must be a (tensor name, index, bit) triple, got {flip!r}")
        name, index, bit = flip
        checks.one_of(f"flips[{i}] tensor name", name, tuple(state))
        q, scale = state[name]
        index = checks.integer(f"flips[{i}] index", index, minimum=0, maximum=q.numel() - 1)
        bit = checks.integer(f"flips[{i}] bit", bit, minimum=0, maximum=7)
        flat = q.flatten().clone()
        flat[index] = flip_bits(flat[index], bit)
        state[name] = (flat.view_as(q), scale)
    return _direction(model, state)


def random_bit_flips(model: nn.Module, n_flips: int, *, generator: torch.Generator | None = None) -> Direction:
    """The int8 model (:func:`int8_codes`) with exactly ``n_flips`` distinct bits flipped, chosen uniformly
    among all 8·(number of weights) bits, as a direction (:func:`flip_direction`). The bits are drawn on the
    generator's device without enumerating them all: draws with replacement are merged until there are
    enough distinct ones, and a random subset of those is kept (uniform, by symmetry)."""
    state = int8_codes(model)
    sizes = {name: q.numel() for name, (q, _) in state.items()}
    n_bits = 8 * sum(sizes.values())
    n_flips = checks.integer("n_flips", n_flips, minimum=0, maximum=n_bits)
    gen = config.resolve_generator(generator, checks.model_device(model))
    chosen = torch.empty(0, dtype=torch.int64, device=gen.device)
    while len(chosen) < n_flips:
        draw = torch.randint(n_bits, (2 * n_flips,), generator=gen, device=gen.device)
        chosen = torch.unique(torch.cat([chosen, draw]))
    chosen = chosen[torch.randperm(len(chosen), generator=gen, device=gen.device)[:n_flips]].cpu()
    names = list(sizes)
    starts = 8 * torch.tensor([0, *list(sizes.values())[:-1]]).cumsum(0)  # first bit of each tensor
    layer = torch.searchsorted(starts, chosen, right=True) - 1
    offset = chosen - starts[layer]
    flips = [(names[i], o // 8, o % 8) for i, o in zip(layer.tolist(), offset.tolist(), strict=True)]
    return flip_direction(model, flips)


def bit_flip_attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_flips: int
) -> tuple[Direction, list[float], list[tuple[str, int, int]]]:
    """Progressive bit search (Rakin et al., 2019) on the int8 model, fit on (x, y): at each of ``n_flips``
    steps, rank every not yet flipped bit of each weight tensor by the first-order loss change g·Δw
    (Δw = Δ·(q' − q)), try the best bit of each tensor, and keep the one that raises the loss most.
    Returns the attack as a direction (exactly ``n_flips`` distinct bits flipped), the loss on (x, y) after
    each flip, and the flips in order as (tensor name, index, bit): ``flip_direction(model, flips[:k])`` is
    the attack after k flips, so one run serves every flip count (score them on data the attack did not
    see)."""
    n_flips = checks.integer("n_flips", n_flips, minimum=0)
    state = int8_codes(model)
    n_bits = 8 * sum(q.numel() for q, _ in state.values())
    if n_flips > n_bits:
        raise ValueError(f"n_flips must be at most the number of bits, {n_bits}; got {n_flips}")
    loss_fn, gradient_at = loss_function(model, x, y), gradient_function(model, x, y)
    floats = parameters_of(model)
    done = {n: torch.zeros(q.numel() * 8, dtype=torch.bool, device=q.device) for n, (q, _) in state.items()}
    history, flips = [], []
    bits = torch.arange(8, device=checks.model_device(model))
    for _ in range(n_flips):
        params = {**floats, **_dequantized(state)}
        g = gradient_at(params)
        trials = []
        for name, (q, scale) in state.items():
            gain = g[name][..., None] * scale[..., None] * (flip_bits(q[..., None], bits) - q[..., None])
            pos = int(gain.flatten().masked_fill(done[name], -math.inf).argmax())
            flat = q.flatten().clone()
            flat[pos // 8] = flip_bits(flat[pos // 8], pos % 8)
            loss = loss_fn({**params, name: scale * flat.view_as(q).to(scale.dtype)}).item()
            trials.append((loss, name, pos, flat.view_as(q)))
        loss, name, pos, q_new = max(trials, key=lambda t: t[0])
        state[name] = (q_new, state[name][1])
        done[name][pos] = True
        history.append(loss)
        flips.append((name, pos // 8, pos % 8))
    return _direction(model, state), history, flips
