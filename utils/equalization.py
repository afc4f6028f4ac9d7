"""Compensation in closed form without touching the rounding: bias correction and cross-layer equalization
(Nagel et al. 2019, *data-free quantization*), and the layers' inputs, read with forward hooks, that they and
:mod:`utils.compensation` (AdaRound, GPTQ) work from.

- A linear or convolution layer computes z = W x + b on rows x: a linear layer's inputs, or a convolution's
  input patches (``F.unfold``; its weight flattened to (out, C·k·k) in the same order). Its *output error*
  on calibration rows X (N rows) after the weights move by δ is E(δ) = (1/N)‖δ Xᵀ‖² = Σ_rows δ_r G δ_rᵀ with
  G = XᵀX/N: a quadratic form, ½δᵀHδ with H = 2G — chapter 3's second-order expansion, exact for one layer.
- **Bias correction**: rounding shifts the mean output by (W̃ − W)E[x]; b ← b − (W̃ E[x̃] − W E[x]), with x̃
  the layer's input in the network whose earlier layers are rounded and corrected (the first layer: x̃ = x,
  the paper's b ← b − E[(W̃ − W)x]; later layers also lose the mean shift passed on from before).
- **Cross-layer equalization**: for two layers with only ReLU, max-pooling or flattening between them,
  W₁ ← S⁻¹W₁, b₁ ← S⁻¹b₁, W₂ ← W₂S leaves the function unchanged (ReLU(s·a) = s·ReLU(a) for s > 0: the
  rescaling chapter 4 uses to plant an outlier channel); sᵢ = √(r₁ᵢ r₂ᵢ)/r₂ᵢ gives output channel i of W₁
  and input channel i of W₂ the same range √(r₁ᵢ r₂ᵢ) (rᵢ = max |w| over the channel).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import checks
from .outputs import hooked_forward_unchecked
from .ptq import check_layers
from .weights import Direction, difference

LAYERS = (nn.Linear, nn.Conv2d)
HOMOGENEOUS = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Identity, nn.Dropout)
"""Modules f with f(s·a) = s·f(a) per channel for s > 0: what may stand between two layers to equalize."""


def layer_of(model: nn.Module, name: str) -> nn.Module:
    """The linear or (ungrouped) convolution layer whose weight tensor is called ``name``."""
    module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    if not isinstance(module, LAYERS) or not name.endswith(".weight") or (
            isinstance(module, nn.Conv2d) and module.groups != 1):
        raise ValueError(f"{name} is not the weight of a linear or ungrouped convolution layer, the layers "
                         "compensation works on")
    return module


def input_rows(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A layer's input as the rows its weight (flattened to (out, d)) multiplies: (N, d) for a linear layer,
    (N·L, C·k·k) input patches for a convolution (L output positions, zero padding included)."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(h, module.kernel_size, dilation=module.dilation, padding=module.padding,
                           stride=module.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return h.reshape(-1, h.shape[-1])


@dataclass(frozen=True)
class Statistics:
    """A layer's input rows on calibration data: their ``mean`` E[x] (d,) and ``gram`` G = XᵀX/N (d, d)."""

    mean: torch.Tensor
    gram: torch.Tensor


def statistics(rows: torch.Tensor, chunk: int = 65536) -> Statistics:
    """E[x] and G = XᵀX/N of ``rows`` (N, d), accumulated in float64, ``chunk`` rows at a time."""
    rows = checks.tensor("rows", rows, min_dim=2)
    gram = sum(part.double().T @ part.double() for part in rows.split(chunk))
    return Statistics(rows.mean(0, dtype=torch.float64), gram / len(rows))


def layer_statistics(model: nn.Module, x: torch.Tensor, layers: list[str] | None = None) -> dict[str, Statistics]:
    """:class:`Statistics` of the inputs of the layers whose weights are ``layers`` (default: all) when the
    float ``model`` runs on the calibration batch ``x`` (one pass, eval mode, read by forward pre-hooks)."""
    chosen = check_layers(model, layers)
    checks.batch(x)
    checks.accepts(model, x)
    found: dict[str, Statistics] = {}

    def hook(name: str) -> Callable:
        def read(mod: nn.Module, inputs: tuple) -> None:
            if name not in found:  # a layer called twice: its first call
                found[name] = statistics(input_rows(mod, inputs[0].detach()))
        return read

    hooked_forward_unchecked(model, x, [layer_of(model, n).register_forward_pre_hook(hook(n)) for n in chosen])
    return found


def output_error(delta: torch.Tensor, stats: Statistics) -> float:
    """E(δ) = Σ_r δ_r G δ_rᵀ = ½ tr(δ H δᵀ) with H = 2G: the layer's squared output error, summed over its
    outputs and averaged over the calibration rows, when its weights move by δ (shaped like the weight)."""
    d = delta.detach().flatten(1).to(stats.gram)
    return ((d @ stats.gram) * d).sum().item()


def layer_errors(model: nn.Module, direction: Direction, stats: dict[str, Statistics]) -> dict[str, float]:
    """:func:`output_error` of each layer in ``stats`` (from :func:`layer_statistics`) for the weight moves
    ``direction`` (e.g. a rounding method's) — each layer with the float network's inputs."""
    checks.model("model", model)
    return {n: output_error(direction[n], s) for n, s in stats.items()}


def _conv_to_norm(model: nn.Module, x: torch.Tensor) -> dict[nn.Module, nn.Module]:
    """{convolution: the batch norm that reads its output and nothing else in between} (found in one pass)."""
    seen: dict[int, nn.Module] = {}
    pairs: dict[nn.Module, nn.Module] = {}
    keep: list[torch.Tensor] = []  # keeps the outputs alive, so that their ids stay unique during the pass

    def out_hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        keep.append(out)
        seen[id(out)] = mod

    def norm_hook(mod: nn.Module, inp: tuple) -> None:
        if id(inp[0]) in seen:
            pairs[seen[id(inp[0])]] = mod

    hooks = [m.register_forward_hook(out_hook) for m in model.modules() if isinstance(m, LAYERS)]
    hooks += [m.register_forward_pre_hook(norm_hook) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        with torch.no_grad(), checks.eval_mode(model):
            model(x[:2])
    finally:
        for h in hooks:
            h.remove()
    return pairs


def bias_correction(model: nn.Module, quantized: nn.Module, x: torch.Tensor, *,
                    layers: list[str] | None = None) -> nn.Module:
    """A copy of ``quantized`` (``model`` with moved weights, e.g. rounded) whose layers ``layers`` (default:
    all) have the float ``model``'s mean output on the calibration batch ``x``: layer by layer, in the order
    the network runs them, b ← b − (E[W̃x̃ + b] − E[Wx + b]) per output channel, with x̃ the layer's input in
    the copy corrected so far (one pass with forward hooks). A layer without a bias must feed a batch norm,
    whose running mean absorbs the correction (μ ← μ + c)."""
    chosen = check_layers(model, layers)
    difference(model, quantized)  # the same parameters, names and shapes
    checks.batch(x)
    checks.accepts(model, x)
    x = x.to(checks.model_device(model))
    out = copy.deepcopy(quantized)
    norms, target, done = _conv_to_norm(out, x), output_means(model, x, chosen), set()

    def correct(name: str) -> Callable:
        def hook(mod: nn.Module, inputs: tuple, z: torch.Tensor) -> torch.Tensor | None:
            if name in done:  # a layer called twice is corrected once
                return None
            done.add(name)
            shift = _channel_mean(z) - target[name]
            if mod.bias is not None:
                mod.bias.sub_(shift)
                return z - shift.view(-1, *[1] * (z.dim() - 2))
            if mod not in norms:
                raise ValueError(f"{name} has no bias and no batch norm after it to absorb a bias correction")
            norms[mod].running_mean.add_(shift)  # the norm runs next: it sees the corrected mean
            return None
        return hook

    hooked_forward_unchecked(out, x, [layer_of(out, n).register_forward_hook(correct(n)) for n in chosen])
    return out


def _channel_mean(z: torch.Tensor) -> torch.Tensor:
    """The mean of a layer's output per channel (axis 1), over the batch and any positions."""
    return z.transpose(0, 1).reshape(z.shape[1], -1).mean(1)


def output_means(model: nn.Module, x: torch.Tensor, layers: list[str] | None = None, *,
                 through_norms: bool = False) -> dict[str, torch.Tensor]:
    """E[Wx + b] per output channel of the layers whose weights are ``layers`` (default: all), over the batch
    ``x`` (and every position of a convolution's output): one pass in eval mode, read by forward hooks. With
    ``through_norms``, a layer without a bias is read after the batch norm that follows it — where
    :func:`bias_correction` puts its correction."""
    chosen = check_layers(model, layers)
    checks.batch(x)
    checks.accepts(model, x)
    x = x.to(checks.model_device(model))
    norms = _conv_to_norm(model, x) if checks.flag("through_norms", through_norms) else {}
    found: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable:
        def read(mod: nn.Module, inputs: tuple, z: torch.Tensor) -> None:
            if name not in found:  # a layer called twice: its first call
                found[name] = _channel_mean(z.detach())
        return read

    modules = {n: layer_of(model, n) for n in chosen}
    hooked_forward_unchecked(model, x, [(norms[m] if m.bias is None and m in norms else m).register_forward_hook(
        hook(n)) for n, m in modules.items()])
    return found


def equalization_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Pairs (first, second) of weight names of consecutive layers with only :data:`HOMOGENEOUS` modules (or
    ``relu``/``flatten`` calls) between them, each step with one user — read from the ``torch.fx`` graph. A
    batch norm or a residual addition in between ends a chain: those pairs are not equalized."""
    try:
        graph = torch.fx.symbolic_trace(checks.model("model", model)).graph
    except Exception as err:  # noqa: BLE001 (any tracing failure means: no graph to read pairs from)
        raise ValueError(f"model cannot be traced by torch.fx, so its layer pairs are unknown: {err}") from None
    modules, pairs = dict(model.named_modules()), []

    def kind(node: torch.fx.Node) -> str:
        if node.op == "call_module":
            m = modules[node.target]
            is_layer = isinstance(m, LAYERS) and not (isinstance(m, nn.Conv2d) and m.groups != 1)
            return "layer" if is_layer else "through" if isinstance(m, HOMOGENEOUS) else "stop"
        name = getattr(node.target, "__name__", str(node.target))
        return "through" if node.op in ("call_method", "call_function") and name in ("relu", "flatten") else "stop"

    for node in graph.nodes:
        if kind(node) != "layer":
            continue
        step = node
        while len(step.users) == 1:
            step = next(iter(step.users))
            if kind(step) == "layer":
                pairs.append((f"{node.target}.weight", f"{step.target}.weight"))
            if kind(step) != "through":
                break
    return pairs


def equalize(model: nn.Module, *, sweeps: int = 20, tol: float = 1e-6) -> nn.Module:
    """A copy of ``model`` computing the same function with every pair of :func:`equalization_pairs`
    equalized: W₁ ← S⁻¹W₁, b₁ ← S⁻¹b₁, W₂ ← W₂S with sᵢ = √(r₁ᵢ r₂ᵢ)/r₂ᵢ (r₁ᵢ = max |w| of output channel i
    of W₁, r₂ᵢ of input channel i of W₂, a block of columns after a flatten), repeated over all pairs until
    no sᵢ differs from 1 by more than ``tol`` (at most ``sweeps`` times): a layer in two pairs is balanced
    against both."""
    sweeps = checks.integer("sweeps", sweeps)
    tol = checks.positive("tol", tol)
    out = copy.deepcopy(model)
    pairs = [(layer_of(out, a), layer_of(out, b)) for a, b in equalization_pairs(out)]
    with torch.no_grad():
        for _ in range(sweeps):
            worst = 0.0
            for first, second in pairs:
                w2 = second.weight.view(second.weight.shape[0], first.weight.shape[0], -1)  # (out, C, k)
                r1, r2 = first.weight.flatten(1).abs().amax(1), w2.abs().amax(dim=(0, 2))
                s = torch.where((r1 > 0) & (r2 > 0), (r1 / r2.clamp_min(1e-30)).sqrt(), torch.ones_like(r1))
                first.weight.div_(s.view(-1, *[1] * (first.weight.dim() - 1)))
                if first.bias is not None:
                    first.bias.div_(s)
                w2.mul_(s.view(1, -1, 1))
                worst = max(worst, (s - 1).abs().max().item())
            if worst <= tol:
                break
    return out
