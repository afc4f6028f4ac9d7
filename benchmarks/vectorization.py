"""What vectorization buys at the small scale: each batched routine against the same work done one item at a
time, on the chapters' models (seed 0).

    python benchmarks/vectorization.py

- Hessian-vector products: ``curvature.batched_hvp`` on 10 probes at once (``torch.func.vmap``) against
  ``curvature.hessian_vector_product`` called once per probe;
- boundary distances: ``geometry.distance_along`` on every (point, direction) ray of a batch at once
  against one call per point.
"""

from __future__ import annotations

import time

import torch

from utils import budgets, config, curvature, geometry, setups, weights


def seconds(fn, repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    config.use("small", 0)
    t = setups.load(setups.WEIGHT_SPACE, progress=False)["cnn on digits"]
    theta = weights.parameters_of(t.model)
    probes = torch.randn(10, weights.flatten(theta).numel(), generator=torch.Generator().manual_seed(0))
    hvp = curvature.batched_hvp(t.model, t.x, t.y)
    batched = seconds(lambda: hvp(probes))
    single = seconds(lambda: [curvature.hessian_vector_product(t.model, t.x, t.y, weights.unflatten(p, theta))
                              for p in probes])
    print(f"Hessian-vector products, {len(probes)} probes, {t.setup.key} ({probes.shape[1]:,} parameters): "
          f"batched {batched:.2f} s, one at a time {single:.2f} s ({single / batched:.1f}x)")

    x = t.x[:50]
    directions = budgets.sample_sphere(len(x) * 16, x.shape[1:], generator=torch.Generator().manual_seed(0))
    directions = directions.view(len(x), 16, *x.shape[1:])
    batched = seconds(lambda: geometry.distance_along(t.model, x, directions), repeat=1)
    single = seconds(lambda: [geometry.distance_along(t.model, x[i:i + 1], directions[i:i + 1])
                              for i in range(len(x))], repeat=1)
    print(f"boundary distances, {len(x)} images x 16 directions: batched {batched:.2f} s, one image at a time "
          f"{single:.2f} s ({single / batched:.1f}x)")


if __name__ == "__main__":
    main()
