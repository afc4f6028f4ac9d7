"""Small statistics helpers shared by the chapters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def power_law_fit(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Least-squares fit of log y = a + s·log x; returns (s, a), the slope and intercept in natural logs."""
    try:
        x, y = np.asarray(x, float), np.asarray(y, float)
    except (TypeError, ValueError):
        raise TypeError(f"x and y must be numbers, got {x!r} and {y!r}"[:200]) from None
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"x and y must be 1-D arrays of equal length >= 2, got shapes {x.shape} and {y.shape}")
    if (x <= 0).any() or (y <= 0).any() or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite and positive for a power-law fit")
    if np.ptp(x) == 0:
        raise ValueError("x must take at least two different values to fit a slope")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)

