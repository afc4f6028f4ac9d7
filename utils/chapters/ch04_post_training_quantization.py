"""Chapter 4, post-training quantization: the models it studies, rounding seen as a weight perturbation
(predicted from the curvature and measured), and the grid of roundings its explorer redraws."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .. import checks, config, curvature, explorers, perturbations, rounding, weights
from ..outputs import evaluate, mean_loss
from ..ptq import check_layers
from ..quant import PerAxis, PerTensor, QuantSpec, as_spec
from ..setups import WEIGHT_SPACE

SETUPS = WEIGHT_SPACE


def rounding_analysis(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: QuantSpec | int,
    *,
    diag_h: weights.Direction,
    grad_at_theta: weights.Direction,
    layers: list[str] | None = None,
    n_pairs: int = 8,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Rounding the weight tensors ``layers`` (default: all) on the grid ``spec`` (a number of bits:
    :meth:`QuantSpec.for_weights`), seen as a weight perturbation δ, with the curvature estimated once for all
    calls (``diag_h``, from :func:`curvature.hessian_diagonal`, and the gradient ``grad_at_theta``):

    - ``predicted``: E[ΔL] = Σᵢ (Δᵢ²/24)·Hᵢᵢ for noise with rounding's variance Δᵢ²/12 (second order);
    - ``spread``: √(Σᵢ gᵢ²Δᵢ²/12), the standard deviation of the first-order term gᵀδ for such noise;
    - ``adversarial gain``: Σᵢ |gᵢ|Δᵢ/2, the first-order gain adversarial rounding collects on average, and
      ``weights``: the number P of weights rounded (the gain is about √P times the spread);
    - ``noise``: measured ½[L(θ+u) + L(θ−u)] − L(θ) for uniform noise u with rounding's distribution
      (``n_pairs`` antithetic pairs), whose first-order term cancels; ``noise sd``: the standard deviation of
      the 2·``n_pairs`` one-sided changes L(θ ± u) − L(θ), the spread of one draw;
    - ``rtn``: measured ΔL of round-to-nearest, ``rtn z`` = (rtn − mean of the one-sided changes) / noise sd,
      and ``rtn_first`` = gᵀδ, ``rtn_second`` = ½δᵀHδ of its actual error δ.
    """
    spec = as_spec(spec, "weights")
    layers = check_layers(model, layers)
    n_pairs = checks.integer("n_pairs", n_pairs, minimum=2)
    steps = rounding.step_sizes(model, spec, layers=layers)
    gen = config.resolve_generator(generator, checks.model_device(model))
    base = weights.loss_surface(model, x, y, [steps], torch.zeros(1, 1))[0].item()
    noise = [rounding.uniform_noise(model, spec, layers=layers, generator=gen) for _ in range(n_pairs)]
    antithetic = torch.cat([torch.eye(n_pairs), -torch.eye(n_pairs)])
    one_sided = weights.loss_surface(model, x, y, noise, antithetic)[0] - base
    error = rounding.rounding_error(model, spec, layers=layers)
    rtn_loss = weights.loss_surface(model, x, y, [error], torch.ones(1, 1))[0].item() - base
    first, second = curvature.quadratic_terms(model, x, y, error, grad_at_theta=grad_at_theta)
    sd = one_sided.std().item()
    return {"bits": spec.bits, "predicted": rounding.predicted_increase(diag_h, steps),
            "spread": rounding.first_order_spread(grad_at_theta, steps),
            "adversarial gain": rounding.adversarial_gain(grad_at_theta, steps),
            "weights": sum(int(torch.count_nonzero(t)) for t in steps.values()),
            "noise": one_sided.mean().item(), "noise sd": sd, "rtn": rtn_loss,
            "rtn z": (rtn_loss - one_sided.mean().item()) / max(sd, 1e-30), "rtn_first": first, "rtn_second": second}


def rounding_grid(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, fit: tuple[torch.Tensor, torch.Tensor], layer: str, *,
    diag_h: weights.Direction, bits: Sequence[int] = (8, 7, 6, 5, 4, 3, 2),
    methods: Sequence[str] = ("nearest", "stochastic", "random up/down", "adversarial"),
    generator: torch.Generator | None = None,
) -> dict:
    """For every bit-width, per-channel or per-tensor grid, and registered rounding method
    (:data:`perturbations.ROUNDING_METHODS`; those that need data are fit on ``fit``): the weight tensor
    ``layer`` before and after, its grid step, and the whole network's accuracy and loss change on (x, y) with
    the curvature's prediction Σᵢ E[eᵢ²]·Hᵢᵢ/2 (E[e²] = the method's variance × Δ²; none for a method whose
    error depends on the data, like the adversary's) — what :func:`explorer` shows."""
    layer = check_layers(model, [layer])[0]
    bits = [checks.integer(f"bits[{i}]", b, minimum=2, maximum=8) for i, b in enumerate(bits)]
    chosen = perturbations.rounding_methods(methods)
    fit = check_data_pair(model, fit) if any(m.fit for m in chosen) else None
    base_loss, grid, w = mean_loss(model, x, y), {}, weights.parameters_of(model)[layer].cpu()
    for b in bits:
        for granularity in (PerAxis(0), PerTensor()):
            spec = QuantSpec.for_weights(b, granularity=granularity)
            steps = rounding.step_sizes(model, spec)
            uniform = rounding.predicted_increase(diag_h, steps)  # for E[e²] = Δ²/12
            for method in chosen:
                q = weights.applied(model, method.fn(model, spec, fit=fit, generator=generator))
                grid[b, spec.per_channel, method.name] = {
                    "w": w, "q": weights.parameters_of(q)[layer].cpu(),
                    "step": steps[layer].cpu(), "accuracy": evaluate(q, x, y),
                    "predicted": None if method.variance is None else 12 * method.variance * uniform,
                    "loss change": mean_loss(q, x, y) - base_loss}
    return grid


def check_data_pair(model: nn.Module, fit: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``fit`` if it is a labelled batch (x, y) for ``model``."""
    if not isinstance(fit, (tuple, list)) or len(fit) != 2:
        raise TypeError(f"fit must be a pair (x, y) of inputs and labels, got {type(fit).__name__}")
    weights.check_data(model, *fit)
    return tuple(fit)


def explorer(grid: dict, layer: str) -> explorers.Explorer:
    """Chapter 4: choose the bits, the grid (per channel or per tensor) and the rounding; see one layer's
    weights on the grid, its rounding error against U(−Δ/2, Δ/2), and the network's loss change beside the
    curvature's prediction (from :func:`rounding_grid`)."""
    import ipywidgets as widgets

    bits = sorted({b for b, _, _ in grid}, reverse=True)
    kinds = list(dict.fromkeys(k for _, _, k in grid))
    controls = {"bits": explorers.slider(bits, 4, "bits"),
                "scales": widgets.ToggleButtons(options=["per channel", "per tensor"], description="scales"),
                "kind": widgets.Dropdown(options=kinds, description="rounding")}

    def error(ax: plt.Axes, b: int, scales: str = "per channel", kind: str = "nearest") -> None:
        g = grid[b, scales == "per channel", kind]
        e = ((g["q"] - g["w"]) / g["step"]).flatten().numpy()
        ax.hist(e, bins=41, range=(-1.1, 1.1), density=True, alpha=0.7, histtype="stepfilled")
        ax.plot([-0.5, -0.5, 0.5, 0.5], [0, 1, 1, 0], "k--", lw=1, label=r"$U(-\frac{1}{2}, \frac{1}{2})$")
        ax.set(xlabel="rounding error / Δ", ylabel="density", title=f"{b} bits: accuracy {g['accuracy']:.1%}")
        ax.legend(fontsize="small")

    def draw(axes, bits: int, scales: str, kind: str) -> None:
        g = grid[bits, scales == "per channel", kind]
        w, step = g["w"][0].flatten().numpy(), g["step"][0].flatten()[0].item()
        axes[0].hist(w, bins=60, color="lightgrey", histtype="stepfilled")
        levels = np.arange(np.floor(w.min() / step), np.ceil(w.max() / step) + 1) * step
        axes[0].vlines(levels, 0, 1, transform=axes[0].get_xaxis_transform(), color="k", lw=0.5, alpha=0.5)
        axes[0].set(xlabel="weight value (first output channel)", ylabel="count", title=f"{layer}: the grid")
        error(axes[1], bits, scales, kind)
        bars = {"measured": g["loss change"], "predicted": g["predicted"] or 0.0}
        axes[2].bar(list(bars), list(bars.values()), color=["C0", "C1"])
        axes[2].set(ylabel="test loss change", title="whole network" + ("" if g["predicted"] else
                                                                        " (no prediction for the adversary)"))

    shown = [b for b in (8, 6, 4, 3, 2) if b in bits]
    return explorers.Explorer(controls, draw, lambda: explorers.small_multiples(shown, error, ncols=3,
                                                            title=f"{layer}: round-to-nearest error, per channel"),
                    panels=3, size=(3.8, 3.2))
