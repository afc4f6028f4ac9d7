"""Experiment drivers: the multi-step measurements chapters run, built from the package's maths.

- :func:`dimension_sweep` (chapter 1): the same 2-D problem embedded in ℝ^d, one model per d, the
  minimal and random-direction distances to its boundary.
- :func:`flip_curves` (chapters 2 and 6): prediction-flip rate against the budget, attacks against noise.
- :func:`rounding_analysis` (chapter 4): rounding the weights as a perturbation, predicted from the
  curvature and measured.
- :func:`budget_grid`, :func:`slice_grid`, :func:`rounding_grid`: the precomputed results the interactive
  explorers of chapters 2–4 redraw (:mod:`utils.explorers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import checks, config, curvature, rounding, weights
from .attacks import fgsm, flip_rate, pgd
from .data import Dataset, embed
from .geometry import flat_boundary_ratio, logit_margin, margin_gradient, normal_and_random_radii
from .models import MLP
from .noise import KINDS, NORMS, random_flip_fraction, random_perturbation
from .quant import QuantSpec, as_spec, check_layers, quantize_weights
from .train import evaluate, fit, logits, mean_loss, predict

FLIP_METHODS = ("fgsm", "pgd", "sphere", "gaussian", "sign")  # flip_curves' default: two attacks, three noises


def dimension_sweep(
    data: Dataset,
    dims: Sequence[int],
    *,
    n_points: int = 150,
    n_directions: int = 32,
    eps: float = 0.1,
    hidden: tuple[int, ...] = (64, 64),
    **kwargs,
) -> list[dict[str, float]]:
    """For each dim: embed the 2-D ``data`` in ℝ^dim (:func:`data.embed`), train an MLP there (Adam,
    100 epochs; initial weights and data order from the book's seed), and measure on ``n_points`` test
    points the minimal radius r_min (along the descent direction of the margin), the ratio r_random/r_min
    over ``n_directions`` random lines (median, and the flat-boundary prediction
    :func:`geometry.flat_boundary_ratio`), and the flip rates of steps of length ``eps`` along the descent
    direction and along random directions; ``ratios`` holds every r_random/r_min (inf where a line met no
    boundary). Points whose r_min
    is not found (inf) are left out. Keywords go to :func:`geometry.distance_along`."""
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or not dims:
        raise ValueError(f"dims must be a non-empty list of integers >= 2, got {dims!r}")
    dims = [checks.integer(f"dims[{i}]", d, minimum=2) for i, d in enumerate(dims)]
    n_points, n_directions = checks.integer("n_points", n_points), checks.integer("n_directions", n_directions)
    eps = checks.positive("eps", eps)
    rows, dev = [], config.device()
    for dim in dims:
        emb = embed(data, dim).to(dev)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.derived_seed("dimension sweep init", dim))
            model = MLP(dim, hidden, data.num_classes)
        fit(model, emb, epochs=100, lr=1e-2, batch_size=100, progress=False, device=dev,
            generator=config.generator("dimension sweep fit", dim, device=dev))
        x = emb.x_test[:n_points]
        gen = config.generator("dimension sweep directions", dim, device=dev)
        normal = -margin_gradient(model, x)
        r_min, r_random = normal_and_random_radii(model, x, n_directions, generator=gen, descent=normal, **kwargs)
        ok = torch.isfinite(r_min)
        unit_normal = normal / normal.norm(dim=1, keepdim=True)
        ratios = r_random[ok] / r_min[ok, None]
        rows.append({
            "dim": dim,
            "test_accuracy": evaluate(model, emb.x_test, emb.y_test),
            "median_r_min": r_min[ok].median().item(),
            "median_ratio": ratios.median().item(),
            "flat_prediction": flat_boundary_ratio(dim),
            "flip_rate_normal": (predict(model, x + eps * unit_normal) != predict(model, x)).float().mean().item(),
            "flip_rate_random": random_flip_fraction(model, x, eps, n_directions, generator=gen).mean().item(),
            "points_used": int(ok.sum()),
            "ratios": ratios.flatten().cpu().numpy(),
        })
    return rows


def flip_curves(
    model: nn.Module,
    x: torch.Tensor,
    eps_values: Sequence[float],
    *,
    norm: str = "l2",
    methods: Sequence[str] = FLIP_METHODS,
    n_draws: int = 10,
    steps: int = 20,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> list[dict[str, float | str]]:
    """Prediction-flip rate vs ε for attacks (``fgsm``, ``pgd``) and random noise of the same norm
    (``sphere``, ``ball``, ``gaussian``, ``sign``, averaged over ``n_draws`` draws per sample): one row
    ``{"norm", "method", "eps", "flip_rate"}`` per method and ε."""
    checks.one_of("norm", norm, NORMS)
    for i, m in enumerate(methods):
        checks.one_of(f"methods[{i}]", m, ("fgsm", "pgd", *KINDS))
    if isinstance(eps_values, (str, bytes)) or not isinstance(eps_values, Sequence) or not eps_values:
        raise ValueError(f"eps_values must be a non-empty list of budgets >= 0, got {eps_values!r}")
    eps_values = [checks.non_negative(f"eps_values[{i}]", e) for i, e in enumerate(eps_values)]
    label, rows = predict(model, x), []
    for eps in tqdm(eps_values, desc=f"flip rates ({norm})", leave=False, **config.progress_options(progress)):
        for method in methods:
            if method in KINDS:
                rate = random_flip_fraction(model, x, eps, n_draws, norm=norm, kind=method,
                                            generator=generator).mean().item()
            elif method == "fgsm":
                rate = flip_rate(model, x, fgsm(model, x, label, eps, norm=norm))
            else:
                rate = flip_rate(model, x, pgd(model, x, label, eps, norm=norm, steps=steps, generator=generator))
            rows.append({"norm": norm, "method": method, "eps": eps, "flip_rate": rate})
    return rows


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
    """Rounding the weight tensors ``layers`` (default: all) on the grid ``spec`` (default per channel),
    seen as a weight perturbation δ, with the curvature estimated once for all calls (``diag_h``, from
    :func:`curvature.hessian_diagonal`, and the gradient ``grad_at_theta``):

    - ``predicted``: E[ΔL] = Σᵢ (Δᵢ²/24)·Hᵢᵢ for noise with rounding's variance Δᵢ²/12;
    - ``spread``: the standard deviation √(Σᵢ gᵢ²Δᵢ²/12) of the first-order term gᵀδ for such noise;
    - ``noise``: measured ½[L(θ+u) + L(θ−u)] − L(θ) for uniform noise u (``n_pairs`` antithetic pairs), whose
      first-order term cancels;
    - ``rtn``: measured ΔL of round-to-nearest, and ``rtn_first`` = gᵀδ, ``rtn_second`` = ½δᵀHδ of its
      actual error δ.
    """
    spec = as_spec(spec, {}, per_channel=True)
    layers = check_layers(model, layers)
    n_pairs = checks.integer("n_pairs", n_pairs)
    steps = rounding.step_sizes(model, spec, layers=layers)
    gen = config.resolve_generator(generator, checks.model_device(model))
    base = weights.loss_surface(model, x, y, [steps], torch.zeros(1, 1))[0].item()
    noise = [{n: t * (torch.rand(t.shape, generator=gen, device=gen.device).to(t) - 0.5) for n, t in steps.items()}
             for _ in range(n_pairs)]
    antithetic = torch.cat([torch.eye(n_pairs), -torch.eye(n_pairs)])
    noise_loss = weights.loss_surface(model, x, y, noise, antithetic)[0].mean().item()
    error = rounding.rounding_error(model, spec, layers=layers)
    rtn_loss = weights.loss_surface(model, x, y, [error], torch.ones(1, 1))[0].item()
    first, second = curvature.quadratic_terms(model, x, y, error, grad_at_theta=grad_at_theta)
    return {"bits": spec.bits, "predicted": rounding.predicted_increase(diag_h, steps),
            "spread": rounding.first_order_spread(grad_at_theta, steps), "noise": noise_loss - base,
            "rtn": rtn_loss - base, "rtn_first": first, "rtn_second": second}



def adversarial_halving_size(
    model: nn.Module, x_fit: torch.Tensor, y_fit: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
    low: float = 1e-3, high: float = 1.0, n_bisect: int = 12,
) -> float:
    """The smallest relative size s = ‖δ_l‖/‖θ_l‖ at which the per-layer adversarial weight direction, fit on
    (x_fit, y_fit), brings the accuracy on (x, y) to 50% or below: geometric bisection on [low, high]
    (``high`` if even that size does not halve it)."""
    low, high = checks.positive("low", low), checks.positive("high", high)
    n_bisect = checks.integer("n_bisect", n_bisect)

    def halves(s: float) -> bool:
        with weights.perturbed(model, weights.adversarial_direction(model, x_fit, y_fit, eps=s), s):
            return evaluate(model, x, y) <= 0.5

    if not halves(high):
        return high
    for _ in range(n_bisect):
        mid = (low * high) ** 0.5
        low, high = (low, mid) if halves(mid) else (mid, high)
    return high


def budget_grid(
    model: nn.Module, images: torch.Tensor, eps_values: dict[str, Sequence[float]], *,
    generator: torch.Generator | None = None,
) -> dict:
    """For a few ``images`` (in [0, 1]) and each norm and budget of ``eps_values`` ({"l2": [...], "linf":
    [...]}): the images with random noise (uniform on the sphere) and with 20-step PGD of that budget, and
    every version's prediction and logit margin — what :func:`explorers.budget` shows."""
    checks.batch(images, unit_box=True)
    z0 = logits(model, images)
    labels = z0.argmax(1)
    grid = {"x": images.cpu(), "pred": labels.cpu(), "margin": logit_margin(z0).cpu()}
    for norm, values in eps_values.items():
        checks.one_of("norm", norm, NORMS)
        for i, eps in enumerate(values):
            eps = checks.positive(f"eps_values[{norm!r}][{i}]", eps)
            noisy = images + random_perturbation(images, eps, norm=norm, generator=generator)
            attacked = pgd(model, images, labels, eps, norm=norm, generator=generator)
            for name, version in (("noise", noisy), ("pgd", attacked)):
                z = logits(model, version)
                grid[norm, i, name] = (version.cpu(), z.argmax(1).cpu(), logit_margin(z).cpu())
    return grid


def slice_grid(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, directions: dict[str, weights.Direction], *,
    n_points: int = 60,
) -> dict:
    """Loss along θ + α·d for each named direction d, on a grid of α dense near 0 (±geometric from 10⁻³ to 1,
    and 0), with the second-order prediction L(θ) + α·gᵀd + ½α²·dᵀHd — what :func:`explorers.weight_slice`
    shows."""
    n_points = checks.integer("n_points", n_points, minimum=2)
    side = torch.logspace(-3, 0, n_points)
    alphas = torch.cat([-side.flip(0), torch.zeros(1), side])
    g = weights.gradient(model, x, y)
    out = {"alpha": alphas.numpy()}
    for name, d in directions.items():
        loss = weights.loss_surface(model, x, y, [d], alphas[:, None])[0].numpy()
        first, second = curvature.quadratic_terms(model, x, y, d, grad_at_theta=g)
        base = loss[n_points]
        out[name] = (loss, base + alphas.numpy() * first + alphas.numpy() ** 2 * second)
    return out


def rounding_grid(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, fit: tuple[torch.Tensor, torch.Tensor], layer: str, *,
    diag_h: weights.Direction, bits: Sequence[int] = (8, 7, 6, 5, 4, 3, 2), generator: torch.Generator | None = None,
) -> dict:
    """For every bit-width, per-channel or per-tensor grid, and rounding (``nearest``, ``stochastic``,
    ``random up/down``, ``adversarial`` fit on ``fit``): the weight tensor ``layer`` before and after, its grid
    step, and the whole network's accuracy and loss change on (x, y) with the curvature's prediction
    Σᵢ E[eᵢ²]·Hᵢᵢ/2 (E[e²] = Δ²/12, Δ²/6, Δ²/3 for the three random roundings; none for the adversary) —
    what :func:`explorers.rounding` shows."""
    layer = check_layers(model, [layer])[0]
    bits = [checks.integer("bits", b, minimum=2, maximum=8) for b in bits]
    base_loss, grid, w = mean_loss(model, x, y), {}, weights.parameters_of(model)[layer].cpu()
    variance = {"nearest": 1 / 12, "stochastic": 1 / 6, "random up/down": 1 / 3, "adversarial": None}
    for b in bits:
        for per_channel in (True, False):
            spec = QuantSpec(b, per_channel=per_channel)
            steps = rounding.step_sizes(model, spec)
            uniform = rounding.predicted_increase(diag_h, steps)  # for E[e²] = Δ²/12
            for kind, var in variance.items():
                if kind in ("nearest", "stochastic"):
                    q = quantize_weights(model, spec.but(rounding=kind), generator=generator)
                elif kind == "random up/down":
                    q = rounding.random_rounding(model, spec, generator=generator)
                else:
                    q = rounding.adversarial_rounding(model, *fit, spec)
                grid[b, per_channel, kind] = {
                    "w": w, "q": weights.parameters_of(q)[layer].cpu(),
                    "step": steps[layer].cpu(), "accuracy": evaluate(q, x, y),
                    "predicted": None if var is None else 12 * var * uniform,
                    "loss change": mean_loss(q, x, y) - base_loss}
    return grid
