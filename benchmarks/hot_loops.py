"""The cost of validating arguments inside inner loops: the boundary search ``geometry.distance_along`` on the
chapters' digits CNN, timed, with the argument checks it runs counted.

    python benchmarks/hot_loops.py                       # this version of the package
    PYTHONPATH=/path/to/old/checkout python benchmarks/hot_loops.py   # another version, to compare

Each of the search's scan and bisection steps is one batched forward pass. The package validates a call's
arguments once, at its public entry, and runs the steps on unchecked kernels; a version that validated inside
the loop ran ``checks.batch`` (an ``isfinite`` over every ray) and ``checks.accepts`` (a one-sample forward
pass) on every step. The script reports the median of five runs and the number of checks made.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter

import torch

import utils
from utils import checks, config, geometry, train


def main() -> None:
    config.use("small", 0)
    data = utils.data.load_dataset("digits", seed=0)
    model = train.pretrained("cnn", "digits", data=data, seed=0, progress=False)
    x = data.x_test[:50]
    gen = torch.Generator().manual_seed(0)
    directions = torch.randn(len(x), 16, *x.shape[1:], generator=gen)
    counts: Counter[str] = Counter()
    for name in ("batch", "accepts"):
        original = getattr(checks, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        setattr(checks, name, counted)
    times = []
    for _ in range(5):
        counts.clear()
        start = time.perf_counter()
        geometry.distance_along(model, x, directions)
        times.append(time.perf_counter() - start)
    print(f"package {utils.__file__}")
    print(f"distance_along, {len(x)} images x 16 directions on the digits CNN: median {statistics.median(times):.3f} s "
          f"over 5 runs; checks per call: batch {counts['batch']}, accepts {counts['accepts']}")


if __name__ == "__main__":
    main()
