"""Wrong answer to ch4 q3: returns the weighted trace Σ (Δ_i²/12) H_ii itself, forgetting the ½ of the
second-order term ½ δᵀHδ — a prediction twice too large."""
import math

from utils import curvature, rounding


def predicted_rounding_increase(model, x, y, bits, n_probes, generator):
    scale = {name: step / math.sqrt(12) for name, step in rounding.step_sizes(model, bits).items()}
    estimate, _ = curvature.hessian_trace(model, x, y, n_probes=n_probes, scale=scale, generator=generator)
    return estimate
