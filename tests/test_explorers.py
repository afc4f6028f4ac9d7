import time

import matplotlib
import pandas as pd
import pytest
import torch

from utils import config, directions, explorers, models, perturbations, train, weights
from utils.chapters import ch01_decision_boundaries as ch1
from utils.chapters import ch02_input_perturbations as ch2
from utils.chapters import ch03_weight_perturbations as ch3
from utils.chapters import ch04_post_training_quantization as ch4
from utils.data import load_dataset

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def small_digits_mlp():
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = models.build_model("mlp", data, hidden=(16,))
    train.fit(model, data, epochs=3, lr=3e-3, batch_size=64, progress=False, device="cpu",
              generator=torch.Generator().manual_seed(0))
    return model.eval(), data


def exercise(explorer: explorers.Explorer, moves: dict) -> None:
    """Move every control through the given values; each redraw must work and the display offer both forms."""
    explorer.widget()
    for name, values in moves.items():
        for value in values:
            explorer.controls[name].value = value
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and bundle["image/png"]
    start = time.perf_counter()
    explorer.update()
    assert time.perf_counter() - start < 5  # a sanity bound only; the benchmark measures the real latency


def test_dimension_explorer_draws_every_dimension():
    sweep = pd.DataFrame(ch1.dimension_sweep(load_dataset("moons", n_samples=200), [2, 8, 32], n_points=10,
                                                     n_directions=4))
    assert all(len(r) > 0 for r in sweep["ratios"])
    exercise(ch1.explorer(sweep, 0.1), {"d": [2, 8, 32]})


def test_budget_grid_and_explorer(small_digits_mlp):
    model, data = small_digits_mlp
    eps = {"l2": [0.5, 2.0], "linf": [0.05, 0.2]}
    grid = ch2.budget_grid(model, data.x_test[:3], eps, generator=torch.Generator().manual_seed(0))
    x, pred, margin = grid["l2", 1, "pgd"]
    assert x.shape == (3, 1, 8, 8) and pred.shape == (3,) and (margin >= 0).all()
    assert ((x - grid["x"]).flatten(1).norm(dim=1) <= 2.0 + 1e-4).all()
    curves = pd.DataFrame([{"model": "m", **r} for norm, values in eps.items() for r in perturbations.flip_curves(
        model, data.x_test[:20], values, norm=norm, methods=("pgd", "sphere"), progress=False)])
    exercise(ch2.explorer(grid, curves, eps, "m"), {"image": [0, 2], "norm": ["linf", "l2"], "step": [0, 1]})


def test_slice_grid_matches_the_loss_at_zero_and_the_explorer_zooms(small_digits_mlp):
    model, data = small_digits_mlp
    d = directions.random_direction(model, generator=torch.Generator().manual_seed(0))
    grid = ch3.slice_grid(model, data.x_test, data.y_test, {"random": d}, n_points=10)
    measured, quadratic = grid["random"]
    assert grid["alpha"][10] == 0 and measured[10] == pytest.approx(train.mean_loss(model, data.x_test, data.y_test),
                                                                     rel=1e-5)
    assert abs(measured[11] - quadratic[11]) < 1e-4  # α = 10⁻³: the quadratic model is exact to third order
    exercise(ch3.explorer(grid, "mlp"), {"zoom": [0.01, 0.1, 1.0]})


def test_rounding_grid_and_explorer(small_digits_mlp):
    model, data = small_digits_mlp
    config.use("small")
    zero = {n: torch.zeros_like(p) for n, p in weights.parameters_of(model).items()}
    grid = ch4.rounding_grid(model, data.x_test, data.y_test, (data.x_train[:100], data.y_train[:100]),
                                     "layers.0.weight", diag_h=zero, bits=(4, 2), generator=torch.Generator())
    g = grid[4, True, "nearest"]
    assert ((g["q"] - g["w"]).abs() <= g["step"] / 2 + 1e-7).all() and g["predicted"] == 0.0
    assert grid[4, True, "adversarial"]["predicted"] is None
    assert grid[2, False, "adversarial"]["loss change"] > grid[2, False, "nearest"]["loss change"]
    exercise(ch4.explorer(grid, "layers.0.weight"),
             {"bits": [2, 4], "scales": ["per tensor", "per channel"], "kind": ["stochastic", "adversarial"]})


def test_explorers_need_controls_and_drawings():
    with pytest.raises(ValueError, match="an explorer needs controls"):
        explorers.Explorer({}, lambda axes: None, lambda: None)
