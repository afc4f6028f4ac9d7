"""Wrong answer to ch3 q1: Gaussian probes v ~ N(0, I). The estimator is still unbiased, but vᵀDv = Σ d_i v_i²
is no longer exact for a diagonal matrix, and its variance is larger (2‖H‖²_F instead of 2 Σ_{i≠j} H_ij²)."""
import math

import torch


def hutchinson_trace(hvp, dim, n_probes, generator):
    v = torch.randn(n_probes, dim, generator=generator)
    values = (v * hvp(v)).sum(dim=1).double()
    return values.mean().item(), (values.std() / math.sqrt(n_probes)).item()
