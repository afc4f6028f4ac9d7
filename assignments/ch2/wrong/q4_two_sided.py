"""Wrong answer to ch2 q4: solves P(|cos θ| ≥ 1/t) = 1% — a line through the image rather than a step — which
counts both sides of the boundary and gives t about 10% too small."""
from scipy import optimize, stats

t_one_percent = {
    d: optimize.brentq(lambda t, d=d: stats.beta.sf(1 / t**2, 0.5, (d - 1) / 2) - 0.01, 1.0001, 1e3)
    for d in (64, 784, 3072)
}
