"""How fast the interactive explorers respond: the time of one redraw after a control moves (budget 0.2 s on
a 2-core CPU), and the time their precomputation takes, at the small scale.

    python benchmarks/explorers.py
"""

from __future__ import annotations

import statistics
import time

import matplotlib
import pandas as pd
import torch

from utils import config, curvature, data, directions, explorers, perturbations, setups
from utils.chapters import ch01_decision_boundaries as ch1
from utils.chapters import ch02_input_perturbations as ch2
from utils.chapters import ch03_weight_perturbations as ch3
from utils.chapters import ch04_post_training_quantization as ch4


def redraws(explorer: explorers.Explorer, moves: dict) -> list[float]:
    """Seconds per redraw (drawing the figure and encoding the PNG the widget shows) while every control
    steps through ``moves``."""
    explorer.widget()
    times = []
    for name, values in moves.items():
        control = explorer.controls[name]
        for value in values:
            if value == control.value:
                continue  # not a move: nothing redraws
            start = time.perf_counter()
            control.value = value  # the widget redraws, as it does when a reader moves it
            times.append(time.perf_counter() - start)
    return times


def report(name: str, precompute: float, times: list[float]) -> None:
    print(f"{name:12s} precompute {precompute:5.1f} s; redraw median {statistics.median(times) * 1e3:4.0f} ms, "
          f"worst {max(times) * 1e3:4.0f} ms over {len(times)} moves")


def main() -> None:
    matplotlib.use("Agg")
    config.use("small", 0)
    t = setups.load(setups.WEIGHT_SPACE, progress=False)["mlp on digits"]
    start = time.perf_counter()
    sweep = pd.DataFrame(ch1.dimension_sweep(data.load_dataset("moons"), [2, 8, 32, 128, 512, 1024],
                                                     n_points=150, n_directions=32))
    report("dimension", time.perf_counter() - start, redraws(ch1.explorer(sweep, 0.1), {"d": [2, 32, 1024]}))
    eps = {"l2": [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0], "linf": [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3]}
    start = time.perf_counter()
    grid = ch2.budget_grid(t.model, t.x[:6], eps, generator=config.generator("bench"))
    curves = pd.DataFrame([{"model": "m", **r} for norm, v in eps.items() for r in perturbations.flip_curves(
        t.model, t.x, v, norm=norm, methods=("pgd", "sphere"), progress=False)])
    report("budget", time.perf_counter() - start, redraws(ch2.explorer(grid, curves, eps, "m"),
                                                          {"image": [1, 2], "norm": ["linf", "l2"], "step": [2, 5]}))
    d = {"random": directions.random_direction(t.model, generator=config.generator("bench slice")),
         "adversarial": directions.adversarial_direction(t.model, t.x_fit, t.y_fit, eps=0.05)}
    start = time.perf_counter()
    grid = ch3.slice_grid(t.model, t.x, t.y, d)
    report("slice", time.perf_counter() - start, redraws(ch3.explorer(grid, "mlp"), {"zoom": [0.1, 0.01]}))
    start = time.perf_counter()
    diag, _ = curvature.hessian_diagonal(t.model, t.x, t.y, n_probes=50, generator=torch.Generator().manual_seed(0))
    grid = ch4.rounding_grid(t.model, t.x, t.y, (t.x_fit, t.y_fit), "layers.0.weight", diag_h=diag)
    report("rounding", time.perf_counter() - start, redraws(ch4.explorer(grid, "layers.0.weight"), {
        "bits": [8, 3, 2], "scales": ["per tensor", "per channel"], "kind": ["stochastic", "adversarial"]}))


if __name__ == "__main__":
    main()
