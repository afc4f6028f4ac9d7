import numpy as np
import pytest

from utils import stats


def test_power_law_fit_recovers_an_exact_law():
    x = np.array([2.0, 4, 8, 16, 32])
    slope, intercept = stats.power_law_fit(x, 3 * x**0.5)
    assert slope == pytest.approx(0.5) and np.exp(intercept) == pytest.approx(3)


def test_power_law_fit_rejects_non_positive_values():
    with pytest.raises(ValueError, match="must be finite and positive"):
        stats.power_law_fit([1, 2], [0, 1])
    with pytest.raises(ValueError, match="equal length"):
        stats.power_law_fit([1, 2, 3], [1, 2])

