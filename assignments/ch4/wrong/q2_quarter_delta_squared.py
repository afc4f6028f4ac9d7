"""Wrong answer to ch4 q2: takes the variance of the error to be (Δ/2)², its largest square, instead of the
mean square Δ²/12 of a uniform error. The measurement is right."""
from utils import rounding


def rounding_variance(delta):
    return delta**2 / 4


errors, steps = rounding.rounding_error(cnn, 8), rounding.step_sizes(cnn, 8)  # noqa: F821 (the notebook's cnn)
squared_errors = sum(e.pow(2).sum() for e in errors.values())
measured_ratio_8bit = (squared_errors / sum(s.pow(2).sum() for s in steps.values())).item()
