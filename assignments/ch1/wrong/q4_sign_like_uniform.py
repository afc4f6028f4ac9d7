"""Wrong answers to ch1 q4: takes a random sign vector to behave like a uniform direction even against an
axis-aligned normal (the median 47.4 instead of exactly √1024 = 32), and counts both sides of the line
(P(|cos θ| ≥ 1/5), twice the probability for a one-sided step). The scaling factors are right."""
from scipy import stats

margin_factor = 10
distance_factor = 1
sign_ratio_axis_1024 = 47.4
flip_probability_64_at_5 = float(stats.beta.sf(1 / 25, 0.5, 63 / 2))
