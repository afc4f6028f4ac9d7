"""Wrong answer to ch6 q2: marks a weight as frozen only where its *rounded* code would fall outside the range,
|x/Δ| > q_max + ½; but the STE's clamp cuts the gradient as soon as |x/Δ| > q_max, so the weights with
|x/Δ| in (q_max, q_max + ½] are missed (at 2 bits on the MSE grid: 6% counted instead of 25%)."""
from utils import quant


def zero_gradient_mask(x, scale, bits):
    q_max = 2 ** (bits - 1) - 1
    return (x / scale).abs() > q_max + 0.5


mse_scale, _ = quant.qparams(conv2, quant.QuantSpec.for_weights(2, calibration=quant.MSE()))  # noqa: F821
clipped_fraction_2bit = zero_gradient_mask(conv2, mse_scale, 2).float().mean().item()  # noqa: F821
